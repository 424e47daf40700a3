//! The catalogue: products and their prices, per tenant.

pub mod api;
pub mod public;

use std::fmt;

use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::AppResult;

crate::types::named_enum! {
    pub enum ProductType {
        SharedHosting,
        Vps,
        Email,
        Dns,
        Addon,
    }
}

crate::types::named_enum! {
    pub enum Interval {
        Monthly,
        Quarterly,
        SemiAnnually,
        Yearly,
        Biennially,
        Triennially,
        OneTime,
    }
}

impl Interval {
    /// Billing period length; `None` for one-time purchases.
    pub fn months(self) -> Option<u32> {
        match self {
            Interval::Monthly => Some(1),
            Interval::Quarterly => Some(3),
            Interval::SemiAnnually => Some(6),
            Interval::Yearly => Some(12),
            Interval::Biennially => Some(24),
            Interval::Triennially => Some(36),
            Interval::OneTime => None,
        }
    }

    /// End of a period starting at `start` (calendar months, clamped to month ends).
    pub fn period_end(self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.months().and_then(|m| start.checked_add_months(Months::new(m)))
    }
}

/// An ISO 4217 currency code (upper case, a real currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(raw: &str) -> Result<Currency, String> {
        const NOT_MONEY: [&str; 2] = ["XXX", "XTS"]; // "no currency" and the testing code
        if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_uppercase()) || NOT_MONEY.contains(&raw) {
            return Err("must be an upper-case ISO 4217 currency code, e.g. USD".into());
        }
        iso_currency::Currency::from_code(raw)
            .map(Currency)
            .ok_or_else(|| "must be an upper-case ISO 4217 currency code, e.g. USD".into())
    }

    pub fn code(&self) -> String {
        self.0.code().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code())
    }
}

/// `limits`: an object of non-negative integers keyed by camelCase names.
pub fn parse_limits(value: &Value) -> Result<Value, String> {
    let Value::Object(map) = value else {
        return Err("must be an object of non-negative integers".into());
    };
    if map.len() > 32 {
        return Err("may have at most 32 entries".into());
    }
    let mut clean = Map::new();
    for (key, v) in map {
        let valid_key = key.len() <= 64
            && key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_key {
            return Err(format!("{key:?} is not a camelCase name"));
        }
        match v.as_u64() {
            Some(n) if n <= i32::MAX as u64 => {
                clean.insert(key.clone(), Value::from(n));
            }
            _ => return Err(format!("{key} must be a non-negative integer")),
        }
    }
    Ok(Value::Object(clean))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub slug: String,
    pub interval: String,
    pub amount_cents: i64,
    pub currency: String,
    pub is_popular: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const PRICE_COLUMNS: &str =
    "id, product_id, name, slug, interval, amount_cents, currency, is_popular, is_active, created_at, updated_at";

impl Price {
    pub fn from_row(row: &Row) -> AppResult<Price> {
        Ok(Price {
            id: row.try_get("id")?,
            product_id: row.try_get("product_id")?,
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            interval: row.try_get("interval")?,
            amount_cents: row.try_get("amount_cents")?,
            currency: row.try_get("currency")?,
            is_popular: row.try_get("is_popular")?,
            is_active: row.try_get("is_active")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    #[serde(rename = "type")]
    pub product_type: String,
    pub description: Option<String>,
    pub limits: Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub prices: Vec<Price>,
}

pub const PRODUCT_COLUMNS: &str = "id, name, slug, type, description, limits, is_active, created_at, updated_at";

impl Product {
    pub fn from_row(row: &Row) -> AppResult<Product> {
        Ok(Product {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            product_type: row.try_get("type")?,
            description: row.try_get("description")?,
            limits: row.try_get("limits")?,
            is_active: row.try_get("is_active")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            prices: Vec::new(),
        })
    }
}

/// A subscription locked (`FOR UPDATE`) for the rest of the transaction,
/// with its plan and its live domain: what the actions on one site check
/// before they change it.
pub struct LockedPlan {
    pub status: String,
    pub product_type: String,
    pub limits: Value,
    /// The domain not yet released: its id and name.
    pub domain: Option<(Uuid, String)>,
}

/// `None` when the subscription is not this tenant's.
pub async fn lock_plan(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
) -> AppResult<Option<LockedPlan>> {
    use tokio_postgres::types::Type;
    let Some(row) = tx
        .query_typed_opt(
            "SELECT s.status, p.type, p.limits FROM subscriptions s JOIN products p ON p.id = s.product_id
             WHERE s.id = $1 AND s.tenant_id = $2 FOR UPDATE OF s",
            &[(&subscription_id, Type::UUID), (&tenant_id, Type::UUID)],
        )
        .await?
    else {
        return Ok(None);
    };
    let domain = tx
        .query_typed_opt(
            "SELECT id, name FROM domains WHERE subscription_id = $1 AND status <> 'RELEASED'",
            &[(&subscription_id, Type::UUID)],
        )
        .await?
        .map(|domain| Ok::<_, tokio_postgres::Error>((domain.try_get(0)?, domain.try_get(1)?)))
        .transpose()?;
    Ok(Some(LockedPlan { status: row.try_get(0)?, product_type: row.try_get(1)?, limits: row.try_get(2)?, domain }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Named;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn enums_parse_exactly() {
        for &t in ProductType::all() {
            assert_eq!(ProductType::from_name(t.as_str()).unwrap(), t);
        }
        assert!("shared_hosting".parse::<ProductType>().is_err());
        for &i in Interval::all() {
            assert_eq!(Interval::from_name(i.as_str()).unwrap(), i);
        }
        assert!("WEEKLY".parse::<Interval>().is_err());
    }

    #[test]
    fn currencies() {
        assert_eq!(Currency::parse("USD").unwrap().code(), "USD");
        assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
        for bad in ["usd", "US", "USDD", "ABC", "XXX", "XTS", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limits(&json!({"emails": 5, "diskMb": 1024})).unwrap(), json!({"emails": 5, "diskMb": 1024}));
        assert!(parse_limits(&json!({})).is_ok());
        for bad in [
            json!({"emails": -1}),
            json!({"emails": 1.5}),
            json!({"emails": "5"}),
            json!({"emails": null}),
            json!({"Emails": 1}),
            json!({"disk-mb": 1}),
            json!([1]),
            json!("x"),
        ] {
            assert!(parse_limits(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods() {
        let jan31 = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(Interval::Monthly.period_end(jan31), Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).single());
        assert_eq!(Interval::Yearly.period_end(jan31), Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).single());
        assert_eq!(Interval::OneTime.period_end(jan31), None);
    }
}
