//! Request bodies (and query strings). Each body is a typed struct (serde with `deny_unknown_fields`,
//! documented by `ToSchema`) whose fields are [`Field`]s: a field of the wrong
//! shape is kept as a problem instead of failing the whole body, so that a
//! [`Problems`] collector can turn the struct into domain values and answer
//! one 422 naming every field path at once.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use chrono::{DateTime, Utc};

use super::pagination::{DEFAULT_LIMIT, PageParams, PageRequest, PeriodParams, Position, parse_time};
use crate::error::{AppError, FieldError};

/// One field of a request body, read leniently.
#[derive(Debug, Default)]
pub enum Field<T> {
    /// Not sent (only for fields marked `#[serde(default)]`; a required field
    /// that is missing reads as `Null`).
    #[default]
    Absent,
    Null,
    Given(T),
    /// The value sent, but not a `T`: where inside it (empty for the value
    /// itself) and why.
    Invalid {
        path: String,
        message: String,
    },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `Option`: serde hands a missing field to `deserialize_option`
        // as none, so a required field's absence is not a hard error either.
        let Some(value) = Option::<Value>::deserialize(deserializer)? else {
            return Ok(Field::Null);
        };
        // serde lets a struct be sent as an array of its fields; the API
        // takes objects only (no request field is a list).
        let is_array = value.is_array();
        Ok(match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) if !is_array => Field::Given(v),
            Err(err) if !is_array || err.path().to_string() == "." => {
                let path = err.path().to_string();
                let (path, message) = describe(if path == "." { "" } else { &path }, &err.into_inner().to_string());
                Field::Invalid { path, message }
            }
            _ => Field::Invalid { path: String::new(), message: "must be a JSON object".into() },
        })
    }
}

impl<T> Field<T> {
    /// `null` as a value of its own (`None`), for fields that null clears.
    pub fn nullable(self) -> Field<Option<T>> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Given(None),
            Field::Given(v) => Field::Given(Some(v)),
            Field::Invalid { path, message } => Field::Invalid { path, message },
        }
    }
}

// The document shows a field as the type it must be (the `ToSchema` derive
// renders a generic field type through this hidden trait).
impl<T: utoipa::__dev::ComposeSchema> utoipa::__dev::ComposeSchema for Field<T> {
    fn compose(generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        match generics.into_iter().next() {
            Some(inner) => inner,
            None => T::compose(Vec::new()),
        }
    }
}

impl<T: ToSchema + utoipa::__dev::ComposeSchema> ToSchema for Field<T> {
    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(schemas)
    }
}

/// serde's message as the API words it, and the path it belongs to (serde
/// names an unknown field at its parent).
pub(crate) fn describe(path: &str, message: &str) -> (String, String) {
    let join = |name: &str| match path.rsplit('.').next() {
        // serde_path_to_error already went into an unknown field.
        Some(last) if last == name => path.to_string(),
        _ if path.is_empty() => name.to_string(),
        _ => format!("{path}.{name}"),
    };
    if let Some(name) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
        return (join(name), "is not a known field".into());
    }
    if let Some(name) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
        return (join(name), "is required".into());
    }
    if let Some(expected) = message.strip_prefix("unknown variant `").and_then(|rest| rest.split_once(", expected ")) {
        let names = expected.1.trim_start_matches("one of ").replace('`', "");
        return (path.to_string(), format!("must be one of {names}"));
    }
    let expected = message.strip_prefix("invalid type: ").and_then(|rest| rest.split_once(", expected ")).map(|x| x.1);
    let message = match expected {
        Some("a string") => "must be a string".to_string(),
        Some("a boolean") => "must be true or false".to_string(),
        Some("a map") => "must be a JSON object".to_string(),
        Some(ty) if is_integer(ty) => "must be an integer".to_string(),
        Some(other) => format!("must be {other}"),
        None if message.starts_with("invalid value: ")
            && message.split(", expected ").nth(1).is_some_and(is_integer) =>
        {
            "must be an integer".to_string()
        }
        None => message.to_string(),
    };
    (path.to_string(), message)
}

fn is_integer(expected: &str) -> bool {
    matches!(expected, "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64")
}

/// Turns a field's value into a domain value, or says what is wrong with it.
pub trait Parse<T, U>: FnOnce(T) -> Result<U, String> {}

impl<T, U, F: FnOnce(T) -> Result<U, String>> Parse<T, U> for F {}

/// Collects every field problem of one body (or of a nested object, under a
/// path prefix) while its fields are converted.
#[derive(Debug, Default)]
pub struct Problems {
    prefix: String,
    errors: Vec<FieldError>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    fn path(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{key}", self.prefix),
        }
    }

    /// Records a problem with `key`.
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(FieldError::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    fn check<T, U>(&mut self, key: &str, value: T, parse: impl Parse<T, U>) -> Option<U> {
        parse(value).map_err(|message| self.add(key, message)).ok()
    }

    fn invalid(&mut self, key: &str, path: &str, message: String) {
        let key = if path.is_empty() { key.to_string() } else { format!("{key}.{path}") };
        self.add(&key, message);
    }

    /// A field that must be sent and not be null.
    pub fn required<T, U>(&mut self, key: &str, field: Field<T>, parse: impl Parse<T, U>) -> Option<U> {
        match field {
            Field::Given(v) => self.check(key, v, parse),
            Field::Absent | Field::Null => {
                self.add(key, "is required");
                None
            }
            Field::Invalid { path, message } => {
                self.invalid(key, &path, message);
                None
            }
        }
    }

    /// A field that may be left out or null.
    pub fn optional<T, U>(&mut self, key: &str, field: Field<T>, parse: impl Parse<T, U>) -> Option<U> {
        match field {
            Field::Absent | Field::Null => None,
            other => self.required(key, other, parse),
        }
    }

    /// A change to a field that cannot be cleared: `None` when not sent.
    pub fn change<T, U>(&mut self, key: &str, field: Field<T>, parse: impl Parse<T, U>) -> Option<U> {
        match field {
            Field::Absent => None,
            other => self.required(key, other, parse),
        }
    }

    /// A change to a field that `null` clears: `None` when not sent,
    /// `Some(None)` for null.
    pub fn nullable_change<T, U>(&mut self, key: &str, field: Field<T>, parse: impl Parse<T, U>) -> Option<Option<U>> {
        self.change(key, field.nullable(), |v: Option<T>| v.map(parse).transpose())
    }

    /// A required object whose own fields are converted under `key.`.
    pub fn nested<T, U>(
        &mut self,
        key: &str,
        field: Field<T>,
        convert: impl FnOnce(T, &mut Problems) -> Option<U>,
    ) -> Option<U> {
        let value = self.required(key, field, Ok)?;
        let mut inner = Problems { prefix: self.path(key), errors: Vec::new() };
        let converted = convert(value, &mut inner);
        self.errors.append(&mut inner.errors);
        converted
    }

    /// An optional query parameter; empty is the same as absent.
    pub fn param<U>(&mut self, key: &str, raw: Option<String>, parse: impl for<'a> Parse<&'a str, U>) -> Option<U> {
        let raw = raw.filter(|r| !r.is_empty())?;
        self.check(key, raw.as_str(), parse)
    }

    /// The page asked for by `limit` and `cursor` (the first page of the
    /// default size when they are wrong, which is then reported).
    pub fn page(&mut self, params: &PageParams) -> PageRequest {
        PageRequest::parse(params).unwrap_or_else(|errors| {
            self.errors.extend(errors);
            PageRequest { limit: DEFAULT_LIMIT, after: Position::start() }
        })
    }

    /// The `from` and `to` times of a list filter.
    pub fn period(&mut self, params: PeriodParams) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.param("from", params.from, parse_time), self.param("to", params.to, parse_time))
    }

    /// A 422 naming every problem, or `Ok` when there is none.
    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() { Ok(()) } else { Err(AppError::Validation(self.errors)) }
    }

    /// The 422 for a conversion that produced no value.
    pub fn into_error(self) -> AppError {
        AppError::Validation(self.errors)
    }
}

/// Declares a request body for creating something and the body for
/// changing it from one list of fields, so the two cannot drift. In the
/// create body a field is required unless marked `optional`; in the change
/// body every field may be left out. Each field is a [`Field`] (absent,
/// null or given); `as` names the documented type where it differs, and
/// `#[schema(...)]` carries its documented constraints.
///
/// ```text
/// request_bodies! {
///     /// A new price.
///     pub(crate) struct PriceInput;
///     /// The fields sent change.
///     pub(crate) struct PriceChanges;
///     #[schema(min_length = 1)] name: String;
///     /// Defaults to true.
///     optional is_active: bool;
/// }
/// ```
macro_rules! request_bodies {
    (
        $(#[$create_meta:meta])* $vis:vis struct $create:ident;
        $(#[$change_meta:meta])* $change_vis:vis struct $change:ident;
        $($fields:tt)*
    ) => {
        $crate::http::body::request_bodies!(@munch
            [[$(#[$create_meta])* $vis struct $create] [$(#[$change_meta])* $change_vis struct $change]]
            [] [] $($fields)*);
    };
    // One field at a time; `optional` ones the create body may leave out too.
    (@munch $heads:tt $c:tt $x:tt $(#[$m:meta])* optional $field:ident: $ty:ty $(as $s:ty)?; $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@typed $heads $c $x [$(#[$m])*] optional $field $ty [$($s)?] $($rest)*);
    };
    (@munch $heads:tt $c:tt $x:tt $(#[$m:meta])* $field:ident: $ty:ty $(as $s:ty)?; $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@typed $heads $c $x [$(#[$m])*] required $field $ty [$($s)?] $($rest)*);
    };
    // The documented type: the one after `as`, else the field's own.
    (@typed $heads:tt $c:tt $x:tt $m:tt $kind:ident $field:ident $ty:ty [] $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@typed $heads $c $x $m $kind $field $ty [$ty] $($rest)*);
    };
    (@typed $heads:tt [$($c:tt)*] $x:tt [$($m:tt)*] required $field:ident $ty:ty [$s:ty] $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@change $heads
            [$($c)* $($m)* #[schema(value_type = $s)] $field: $crate::http::body::Field<$ty>,] $x [$($m)*] $field [$ty] [$s] $($rest)*);
    };
    (@typed $heads:tt [$($c:tt)*] $x:tt [$($m:tt)*] optional $field:ident $ty:ty [$s:ty] $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@change $heads
            [$($c)* $($m)* #[serde(default)] #[schema(value_type = Option<$s>)] $field: $crate::http::body::Field<$ty>,]
            $x [$($m)*] $field [$ty] [$s] $($rest)*);
    };
    // In the change body every field may be left out.
    (@change $heads:tt $c:tt [$($x:tt)*] [$($m:tt)*] $field:ident [$ty:ty] [$s:ty] $($rest:tt)*) => {
        $crate::http::body::request_bodies!(@munch $heads $c
            [$($x)* $($m)* #[serde(default)] #[schema(value_type = Option<$s>)] $field: $crate::http::body::Field<$ty>,]
            $($rest)*);
    };
    (@munch [[$($create:tt)*] [$($change:tt)*]] [$($c:tt)*] [$($x:tt)*]) => {
        #[derive(serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        $($create)* { $($c)* }

        #[derive(serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        $($change)* { $($x)* }
    };
}
pub(crate) use request_bodies;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use utoipa::PartialSchema;

    use super::*;
    use crate::http::extract::parse_json;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Customer {
        #[schema(value_type = String)]
        email: Field<String>,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Order {
        #[schema(value_type = String, max_length = 5)]
        name: Field<String>,
        #[schema(value_type = i64, minimum = 0)]
        amount_cents: Field<i64>,
        /// A note.
        #[serde(default)]
        #[schema(value_type = Option<String>, max_length = 3)]
        note: Field<String>,
        #[serde(default)]
        #[schema(value_type = bool)]
        active: Field<bool>,
        #[schema(value_type = Customer)]
        customer: Field<Customer>,
    }

    fn collect(body: Value) -> Vec<(String, String)> {
        let order: Order = match parse_json(body.to_string().as_bytes()) {
            Ok(order) => order,
            Err(AppError::Validation(errors)) => return errors.into_iter().map(|e| (e.field, e.message)).collect(),
            Err(other) => panic!("{other:?}"),
        };
        let mut p = Problems::new();
        p.required("name", order.name, |s: String| if s.is_empty() { Err("must not be empty".into()) } else { Ok(s) });
        p.required("amountCents", order.amount_cents, Ok);
        p.optional("note", order.note, Ok);
        p.change("active", order.active, Ok);
        p.nested("customer", order.customer, |c, p| p.required("email", c.email, Ok));
        match p.finish() {
            Ok(()) => Vec::new(),
            Err(AppError::Validation(errors)) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn fields(problems: &[(String, String)]) -> Vec<&str> {
        problems.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let problems = collect(json!({"name": 5, "amountCents": "x", "active": null, "customer": {"email": 1}}));
        assert_eq!(fields(&problems), ["name", "amountCents", "active", "customer.email"]);
        assert_eq!(problems[0].1, "must be a string");
        assert_eq!(problems[1].1, "must be an integer");
        assert_eq!(problems[2].1, "is required");
    }

    #[test]
    fn missing_and_null_required_fields_are_required() {
        let problems = collect(json!({"name": null}));
        assert_eq!(fields(&problems), ["name", "amountCents", "customer"]);
        assert!(problems.iter().all(|(_, m)| m == "is required"));
        assert!(collect(json!({"name": "n", "amountCents": 1, "note": null, "customer": {"email": "e"}})).is_empty());
    }

    #[test]
    fn unknown_fields_are_named_where_they_are() {
        let top = collect(json!({"name": "n", "amountCents": 1, "customer": {"email": "e"}, "extra": 1}));
        assert_eq!(top, [("extra".to_string(), "is not a known field".to_string())]);
        let nested = collect(json!({"name": "n", "amountCents": 1, "customer": {"email": "e", "x": 1}}));
        assert_eq!(nested, [("customer.x".to_string(), "is not a known field".to_string())]);
        let shape = collect(json!({"name": "n", "amountCents": 1, "customer": [1]}));
        assert_eq!(fields(&shape), ["customer"]);
    }

    #[test]
    fn the_document_shows_the_inner_types() {
        let schema = serde_json::to_value(Order::schema()).expect("schema");
        assert_eq!(schema["properties"]["name"]["type"], "string", "{schema}");
        assert_eq!(schema["properties"]["amountCents"]["type"], "integer", "{schema}");
        let required: Vec<&str> =
            schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
        assert_eq!(required, ["name", "amountCents", "customer"], "{schema}");
    }
}
