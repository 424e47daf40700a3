//! Reading a JSON object field by field, collecting every problem (with its
//! field path) instead of stopping at the first, so a 422 lists them all.

use serde_json::{Map, Value};

use crate::error::{AppError, FieldError};

pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// The body must be a JSON object.
    pub fn new(value: &'a Value) -> Result<Fields<'a>, AppError> {
        Fields::nested(value, "")
    }

    /// Fields of a nested object, reported as `prefix.field`.
    pub fn nested(value: &'a Value, prefix: &str) -> Result<Fields<'a>, AppError> {
        match value {
            Value::Object(map) => Ok(Fields { map, prefix: prefix.to_string(), errors: Vec::new() }),
            _ => Err(AppError::validation(if prefix.is_empty() { "body" } else { prefix }, "must be a JSON object")),
        }
    }

    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}.{key}", self.prefix) }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(FieldError::new(path, message));
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// A required string.
    pub fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                self.error(key, "is required");
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.error(key, "must be a string");
                None
            }
        }
    }

    /// Absent → `None`; `null` → `Some(None)`; a string → `Some(Some(s))`.
    pub fn opt_string(&mut self, key: &str) -> Option<Option<&'a str>> {
        match self.map.get(key) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.error(key, "must be a string or null");
                None
            }
        }
    }

    /// A required integer.
    pub fn int(&mut self, key: &str) -> Option<i64> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                self.error(key, "is required");
                None
            }
            Some(v) => self.as_int(key, v),
        }
    }

    pub fn opt_int(&mut self, key: &str) -> Option<i64> {
        match self.map.get(key) {
            None => None,
            Some(v) => self.as_int(key, v),
        }
    }

    fn as_int(&mut self, key: &str, v: &Value) -> Option<i64> {
        match v.as_i64() {
            Some(n) => Some(n),
            None => {
                self.error(key, "must be an integer");
                None
            }
        }
    }

    pub fn opt_bool(&mut self, key: &str) -> Option<bool> {
        match self.map.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(key, "must be true or false");
                None
            }
        }
    }

    /// Applies a parser to a present value, recording its error under `key`.
    pub fn parse<T>(
        &mut self,
        key: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = raw?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(key, message);
                None
            }
        }
    }

    /// Records a validation result under `key`.
    pub fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(key, message);
                None
            }
        }
    }

    /// Takes the errors of a nested reader into this one.
    pub fn absorb(&mut self, other: Fields<'_>) {
        self.errors.extend(other.errors);
    }

    /// Fails with every collected problem, plus one per unknown field.
    pub fn finish(mut self, known: &[&str]) -> Result<(), AppError> {
        let unknown: Vec<String> = self.map.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.error(&key, "is not a known field");
        }
        if self.errors.is_empty() { Ok(()) } else { Err(AppError::Validation(self.errors)) }
    }

    /// Like [`finish`](Self::finish) but keeps going (for nested readers).
    pub fn finish_nested(mut self, known: &[&str]) -> Vec<FieldError> {
        let unknown: Vec<String> = self.map.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.error(&key, "is not a known field");
        }
        self.errors
    }

    pub fn push_errors(&mut self, errors: Vec<FieldError>) {
        self.errors.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_problem() {
        let body = json!({"name": 5, "amount": "x", "extra": true});
        let mut f = Fields::new(&body).unwrap();
        assert!(f.string("name").is_none());
        assert!(f.int("amount").is_none());
        assert!(f.string("slug").is_none());
        match f.finish(&["name", "amount", "slug"]) {
            Err(AppError::Validation(errors)) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "amount", "slug", "extra"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nested_paths_and_nulls() {
        let body = json!({"email": null, "x": 1});
        let mut f = Fields::nested(&body, "customer").unwrap();
        assert_eq!(f.opt_string("email"), Some(None));
        f.error("email", "bad");
        let errors = f.finish_nested(&["email"]);
        assert_eq!(errors[0].field, "customer.email");
        assert_eq!(errors[1].field, "customer.x");
        assert!(Fields::new(&json!([1, 2])).is_err());
    }
}
