//! Recorded answers of commands sent with an `Idempotency-Key`.

use std::collections::HashMap;

use crate::append::StoredResponse;
use crate::error::StoreError;
use crate::store::EventStore;

/// A previously recorded answer to a command sent with an idempotency key.
#[derive(Debug, Clone)]
pub struct RecordedAnswer {
    pub fingerprint: String,
    pub response: StoredResponse,
}

impl EventStore {
    /// The answer recorded for `(principal, key)`, if a command with that key committed.
    pub async fn recorded_answer(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<RecordedAnswer>, StoreError> {
        let row: Option<(String, i16, serde_json::Value)> = sqlx::query_as(
            "SELECT request_fingerprint, response_status, response_body
               FROM idempotency_keys WHERE principal = $1 AND key = $2",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(fingerprint, status, body)| RecordedAnswer {
            fingerprint,
            response: StoredResponse {
                status: u16::try_from(status).unwrap_or(200),
                body,
            },
        }))
    }

    /// The answers recorded for any of `keys` of `principal`, by key, in one query (a batch of
    /// import lines checks its keys at once).
    pub async fn recorded_answers(
        &self,
        principal: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, RecordedAnswer>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, i16, serde_json::Value)> = sqlx::query_as(
            "SELECT key, request_fingerprint, response_status, response_body
               FROM idempotency_keys WHERE principal = $1 AND key = ANY($2)",
        )
        .bind(principal)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, fingerprint, status, body)| {
                let response = StoredResponse {
                    status: u16::try_from(status).unwrap_or(200),
                    body,
                };
                (
                    key,
                    RecordedAnswer {
                        fingerprint,
                        response,
                    },
                )
            })
            .collect())
    }
}
