//! Customers, created by order intake.

pub mod api;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::AppResult;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: Uuid,
    pub email: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub const CUSTOMER_COLUMNS: &str = "id, email, full_name, phone, created_at";

impl Customer {
    pub fn from_row(row: &Row) -> AppResult<Customer> {
        Ok(Customer {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            full_name: row.try_get("full_name")?,
            phone: row.try_get("phone")?,
            created_at: row.try_get("created_at")?,
        })
    }
}
