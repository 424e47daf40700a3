//! The signed-webhook pipeline every inbound webhook goes through: body
//! limit, Standard Webhooks verification, JSON, the domain's parse, replay by
//! `webhook-id`, one transaction around the domain's step and the delivery
//! record, dispatch of the jobs it created, and the `Idempotent-Replayed`
//! answer. A webhook supplies only its parse and its step.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::extract::{from_value, parse_json, require_json};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Webhook bodies are small; anything larger is refused before parsing.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Set on an answer that repeats an earlier delivery's.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// One kind of signed webhook: how its body is read and what it does.
pub trait SignedWebhook: Sized + Send + 'static {
    /// `webhook_deliveries.source`: deliveries are replayed per source.
    const SOURCE: &'static str;
    /// The status of every answer, the first and its replays (200 unless
    /// the webhook creates something).
    const STATUS: StatusCode = StatusCode::OK;
    type Answer: Serialize + Send;
    /// The typed request body (documented in the API description); turning
    /// it into the domain's request checks every field, into one 422.
    type Body: DeserializeOwned + TryInto<Self, Error = AppError>;

    /// The domain's step, inside the transaction that also records the delivery.
    fn apply(
        self,
        tx: &Transaction<'_>,
        delivery: &Delivery,
    ) -> impl Future<Output = AppResult<Applied<Self::Answer>>> + Send;
}

/// The verified delivery a step runs for.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    /// SHA-256 of the canonical body: tells a replay of the same request
    /// from a conflicting reuse of the same business key.
    pub request_hash: [u8; 32],
}

/// What a step did.
pub enum Applied<A> {
    /// New work: its answer, and the jobs to dispatch once committed.
    Done { tenant_id: Uuid, answer: A, order_id: Option<Uuid>, jobs: Vec<Uuid> },
    /// The same request arrived before under another `webhook-id`: its first
    /// answer is given again, and this delivery recorded beside it.
    Repeat { tenant_id: Uuid, answer: Value, order_id: Option<Uuid> },
}

/// Runs one delivery of `W` through the pipeline.
pub async fn receive<W: SignedWebhook>(state: &AppState, headers: &HeaderMap, body: Body) -> AppResult<Response> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| AppError::PayloadTooLarge)?;
    let key = state
        .config
        .webhook_secret
        .as_ref()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("MARKETING_WEBHOOK_SECRET not configured")))?;
    let webhook = crate::webhooks::verify(headers, &bytes, key.expose(), Utc::now().timestamp())?;
    require_json(headers)?;
    let value: Value = parse_json(&bytes)?;
    let request: W = from_value::<W::Body>(value.clone())?.try_into()?;
    let delivery = Delivery { webhook_id: webhook.id, request_hash: canonical_hash(&value)? };

    // Fast path for redeliveries; repeated under the lock below.
    if let Some(first) = recorded_answer(&**state.db.get().await?, W::SOURCE, &delivery.webhook_id).await? {
        return Ok(answer(W::STATUS, first, true));
    }
    let (body, jobs, replayed) = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            // Serialises deliveries of one webhook id; the losers replay.
            tx.query_typed(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))",
                &[(&W::SOURCE, Type::TEXT), (&delivery.webhook_id, Type::TEXT)],
            )
            .await?;
            if let Some(first) = recorded_answer(tx, W::SOURCE, &delivery.webhook_id).await? {
                return Ok((first, Vec::new(), true));
            }
            match request.apply(tx, &delivery).await? {
                Applied::Done { tenant_id, answer, order_id, jobs } => {
                    let body = serde_json::to_value(answer).map_err(AppError::internal)?;
                    record::<W>(tx, &delivery, tenant_id, &body, order_id).await?;
                    Ok((body, jobs, false))
                }
                Applied::Repeat { tenant_id, answer, order_id } => {
                    record::<W>(tx, &delivery, tenant_id, &answer, order_id).await?;
                    Ok((answer, Vec::new(), true))
                }
            }
        })
    })
    .await?;
    if !jobs.is_empty() {
        // After commit; a failure here is the sweep's to repair.
        state.dispatcher.dispatch(&state.db, &jobs).await;
    }
    Ok(answer(W::STATUS, body, replayed))
}

/// SHA-256 of the body as serde_json writes it back.
pub fn canonical_hash(body: &Value) -> AppResult<[u8; 32]> {
    let canonical = serde_json::to_vec(body).map_err(AppError::internal)?;
    Ok(Sha256::digest(&canonical).into())
}

/// The answer recorded for this source's webhook id, if any.
async fn recorded_answer(client: &impl GenericClient, source: &str, webhook_id: &str) -> AppResult<Option<Value>> {
    let row = client
        .query_typed_opt(
            "SELECT response_body FROM webhook_deliveries WHERE source = $1 AND webhook_id = $2",
            &[(&source, Type::TEXT), (&webhook_id, Type::TEXT)],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn record<W: SignedWebhook>(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    tenant_id: Uuid,
    body: &Value,
    order_id: Option<Uuid>,
) -> AppResult<()> {
    tx.query_typed(
        "INSERT INTO webhook_deliveries (tenant_id, source, webhook_id, request_hash, response_status, response_body, order_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            (&tenant_id, Type::UUID),
            (&W::SOURCE, Type::TEXT),
            (&delivery.webhook_id, Type::TEXT),
            (&delivery.request_hash.as_slice(), Type::BYTEA),
            (&i32::from(W::STATUS.as_u16()), Type::INT4),
            (body, Type::JSONB),
            (&order_id, Type::UUID),
        ],
    )
    .await?;
    Ok(())
}

fn answer(status: StatusCode, body: Value, replayed: bool) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        let body =
            json!({"tenantSlug": "demo", "customer": {"email": "jo@example.org", "fullName": "Jo Doe"}, "amount": 999});
        let reordered: Value = serde_json::from_str(
            r#"{ "amount":999, "customer":{"fullName":"Jo Doe","email":"jo@example.org"},"tenantSlug":"demo"}"#,
        )
        .unwrap();
        assert_eq!(canonical_hash(&body).unwrap(), canonical_hash(&reordered).unwrap());
        let mut changed = body.clone();
        changed["amount"] = json!(1000);
        assert_ne!(canonical_hash(&body).unwrap(), canonical_hash(&changed).unwrap());
    }
}
