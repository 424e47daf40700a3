//! Keyset pagination over `(created_at DESC, id DESC)`: `?limit=` (default
//! 50, max 200) and an opaque `?cursor=`, answered with
//! `{"items": [...], "nextCursor": "..."|null}`.

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

use crate::db::DbPool;
use crate::error::{AppResult, FieldError};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The list position a page starts after (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Position {
    /// Sorts after every real row, so the first page needs no special query.
    pub fn start() -> Position {
        Position {
            created_at: Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single().unwrap_or_else(Utc::now),
            id: Uuid::max(),
        }
    }

    fn encode(&self) -> String {
        let raw = format!("{}|{}", self.created_at.timestamp_micros(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(cursor: &str) -> Option<Position> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (micros, id) = raw.split_once('|')?;
        Some(Position {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The `limit` and `cursor` query parameters every list takes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// The `from` (inclusive) and `to` (exclusive) times a list may be cut to.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PeriodParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Position,
}

impl PageRequest {
    pub fn parse(params: &PageParams) -> Result<PageRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = match params.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new("limit", format!("must be an integer from 1 to {MAX_LIMIT}")));
                    DEFAULT_LIMIT
                }
            },
        };
        let after = match params.cursor.as_deref() {
            None | Some("") => Position::start(),
            Some(raw) => Position::decode(raw).unwrap_or_else(|| {
                errors.push(FieldError::new("cursor", "is not a cursor this API returned"));
                Position::start()
            }),
        };
        if errors.is_empty() { Ok(PageRequest { limit, after }) } else { Err(errors) }
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `fetch()` rows in list order.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, position: impl Fn(&T) -> Position) -> Page<T> {
        let has_more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_cursor = if has_more { rows.last().map(|last| position(last).encode()) } else { None };
        Page { items: rows, next_cursor }
    }
}

/// Parses an RFC 3339 time filter (`from`, `to`).
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z".to_string())
}

/// One page of a tenant's list, as the answer: `filtered` sees the tenant
/// id as `$1` and `params` after it (see [`fetch_page`]).
pub async fn tenant_page<T>(
    db: &DbPool,
    tenant_id: Uuid,
    filtered: &str,
    key: (&str, &str),
    params: &[(&(dyn ToSql + Sync), Type)],
    page: &PageRequest,
    from_row: impl Fn(&Row) -> AppResult<T>,
) -> AppResult<axum::Json<Page<T>>> {
    let client = db.get().await?;
    let mut all: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&tenant_id, Type::UUID)];
    all.extend_from_slice(params);
    fetch_page(&**client, filtered, key, &all, page, from_row).await.map(axum::Json)
}

/// One page of a list query. `filtered` is `SELECT <columns> FROM ... WHERE
/// <filters>` over the caller's `params` ($1...); the page's position, order
/// and limit are added after them. `key` names the `created_at` and `id`
/// columns as the query can see them (e.g. `s.created_at`, `s.id`); the rows
/// must return both as `created_at` and `id`.
pub async fn fetch_page<T>(
    client: &impl GenericClient,
    filtered: &str,
    key: (&str, &str),
    params: &[(&(dyn ToSql + Sync), Type)],
    page: &PageRequest,
    from_row: impl Fn(&Row) -> AppResult<T>,
) -> AppResult<Page<T>> {
    let (created_at, id) = key;
    let n = params.len();
    let sql = format!(
        "{filtered} AND ({created_at}, {id}) < (${}, ${}) ORDER BY {created_at} DESC, {id} DESC LIMIT ${}",
        n + 1,
        n + 2,
        n + 3
    );
    let fetch = page.fetch();
    let mut all: Vec<(&(dyn ToSql + Sync), Type)> = params.to_vec();
    all.extend([
        (&page.after.created_at as &(dyn ToSql + Sync), Type::TIMESTAMPTZ),
        (&page.after.id, Type::UUID),
        (&fetch, Type::INT8),
    ]);
    let rows = client.query_typed(&sql, &all).await?;
    let placed = rows
        .iter()
        .map(|row| Ok((Position { created_at: row.try_get("created_at")?, id: row.try_get("id")? }, row)))
        .collect::<AppResult<Vec<_>>>()?;
    let Page { items, next_cursor } = Page::from_rows(placed, page, |(position, _)| *position);
    let items = items.into_iter().map(|(_, row)| from_row(row)).collect::<AppResult<Vec<T>>>()?;
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let p = Position {
            created_at: DateTime::from_timestamp_micros(1_795_611_600_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("garbage!"), None);
    }

    #[test]
    fn limits() {
        let parse = |limit: &str| PageRequest::parse(&PageParams { limit: Some(limit.into()), cursor: None });
        assert_eq!(parse("1").unwrap().limit, 1);
        assert_eq!(parse("200").unwrap().limit, 200);
        for bad in ["0", "201", "-1", "ten", "1.5"] {
            assert_eq!(parse(bad).unwrap_err()[0].field, "limit", "{bad}");
        }
        assert_eq!(PageRequest::parse(&PageParams::default()).unwrap().limit, DEFAULT_LIMIT);
        let bad_cursor = PageRequest::parse(&PageParams { limit: None, cursor: Some("nope".into()) });
        assert_eq!(bad_cursor.unwrap_err()[0].field, "cursor");
    }

    #[test]
    fn page_has_next_cursor_only_when_more_rows_exist() {
        let request = PageRequest { limit: 2, after: Position::start() };
        // Postgres keeps microseconds; so do cursors.
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        let rows: Vec<Position> = (0..3).map(|_| Position { created_at: now, id: Uuid::new_v4() }).collect();
        let page = Page::from_rows(rows.clone(), &request, |p| *p);
        assert_eq!(page.items.len(), 2);
        assert_eq!(Position::decode(page.next_cursor.as_deref().unwrap()), Some(rows[1]));
        let last = Page::from_rows(rows[..2].to_vec(), &request, |p| *p);
        assert!(last.next_cursor.is_none());
    }
}
