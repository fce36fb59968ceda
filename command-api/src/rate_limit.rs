//! A request budget per caller on the write routes: past it, 429 with `Retry-After`, before
//! anything is read or decided. Callers are keyed by principal; every request without a valid
//! token shares one budget, so made-up tokens cannot grow the table.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::ApiError;
use crate::routes::CommandState;

/// Shared by every write route of a node; cheap to clone.
#[derive(Debug, Clone)]
pub struct CommandRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl CommandRateLimit {
    /// `per_second` sustained, up to `burst` at once, per caller.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Seconds until `caller` may send again, or `None` if it may now.
    fn wait_for(&self, caller: String) -> Option<u64> {
        self.limiter.check_key(&caller).err().map(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

pub async fn limit(State(state): State<CommandState>, request: Request, next: Next) -> Response {
    let caller = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|secret| state.auth.authenticate(secret))
        .map_or_else(|| "<unauthenticated>".to_owned(), |p| p.name);
    match state.rate_limit.wait_for(caller) {
        None => next.run(request).await,
        Some(retry_after) => {
            metrics::counter!("commands_rate_limited_total").increment(1);
            ApiError::TooManyRequests { retry_after }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_past_its_burst_waits_and_others_do_not() {
        let limit = CommandRateLimit::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(2).unwrap());
        assert_eq!(limit.wait_for("a".into()), None);
        assert_eq!(limit.wait_for("a".into()), None);
        assert_eq!(limit.wait_for("a".into()), Some(1));
        assert_eq!(limit.wait_for("b".into()), None);
    }
}
