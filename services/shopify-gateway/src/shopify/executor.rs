//! The executor: every call to Shopify goes through here, so the budget, retries and the single "outgoing call"
//! span live in one place. An operation is a value (document, variables, expected cost); the executor estimates its
//! cost (corrected by what Shopify reported for the same operation before), waits for budget, sends it, and retries
//! what is worth retrying with backoff and jitter until the deadline.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::Rng;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::{
    budget::{Budget, Lane},
    documents::Document,
    http::{Answer, FatalKind, ShopifyHttp},
    wire::{self, Request},
};

/// One GraphQL call to make.
#[derive(Debug, Clone)]
pub struct Operation {
    pub document: Document,
    pub variables: Value,
    /// The cost the caller expects from Shopify's documented rules; Shopify's own figure replaces it once seen.
    /// A call is retried with the same variables: a mutation must be safe to apply twice, or carry an idempotency
    /// key Shopify honours (`@idempotent(key: $idempotencyKey)` on the inventory mutations, see `idempotency`).
    pub expected_cost: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// How long a call may keep retrying before it is reported as failed.
    pub deadline_secs: u64,
}

/// A call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{message}")]
    Fatal { kind: FatalKind, message: String },
    #[error("gave up after {attempts} attempts within the deadline: {last}")]
    DeadlineExceeded { attempts: u32, last: String },
}

pub struct Executor {
    http: ShopifyHttp,
    budget: Budget,
    retry: RetrySettings,
    /// Shopify's requestedQueryCost by (document, expected cost): exact for the same shape of call.
    learned_costs: Mutex<HashMap<(&'static str, u64), f64>>,
}

/// How a call sent at most once ([`Executor::call_once`]) ended.
#[derive(Debug)]
pub enum Once {
    Answered(Value),
    /// No answer came (timeout, dropped connection, 5xx, 429): Shopify may or may not have run it.
    Unanswered(String),
}

/// What a shop's call needs: its domain and its access token.
pub struct ShopCredentials {
    pub domain: String,
    pub token: SecretString,
    /// Whether this process may still call the shop, checked before each call (a replica that lost the shop's
    /// partition stops calling it at once); None where one process alone calls it.
    pub fence: Option<Fence>,
}

/// Asked before each call: may this process still call the shop?
pub type Fence = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

impl Executor {
    pub fn new(http: ShopifyHttp, budget: Budget, retry: RetrySettings) -> Self {
        Self {
            http,
            budget,
            retry,
            learned_costs: Mutex::new(HashMap::new()),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The API version `shop` last answered with (see `ShopifySettings::api_version`).
    pub fn served_version(&self, shop: &str) -> Option<String> {
        self.http.served_version(shop)
    }

    fn estimate(&self, op: &Operation) -> f64 {
        let key = (op.document.name, op.expected_cost.round() as u64);
        self.learned_costs
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(op.expected_cost)
    }

    fn learn(&self, op: &Operation, requested: Option<f64>) {
        if let Some(requested) = requested {
            let key = (op.document.name, op.expected_cost.round() as u64);
            self.learned_costs.lock().unwrap().insert(key, requested);
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .retry
            .base_delay_ms
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry.max_delay_ms);
        // Full jitter keeps many callers from retrying in step.
        let jittered = Duration::from_millis(rand::rng().random_range(exp / 2..=exp.max(1)));
        retry_after.map_or(jittered, |after| after.max(jittered))
    }

    /// How long a call may keep retrying (`RetrySettings::deadline_secs`).
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.retry.deadline_secs)
    }

    /// Sends a typed request (see `wire`) for `shop` in `lane`; returns its answer, decoded.
    pub async fn send<R: Request>(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        request: &R,
        expected_cost: f64,
    ) -> Result<R::Response, CallError> {
        let op = Operation {
            document: R::DOCUMENT,
            variables: wire::variables(request),
            expected_cost,
        };
        let data = self.call(shop, lane, &op).await?;
        wire::decode(R::DOCUMENT, data)
    }

    /// Runs `op` for `shop` in `lane`; returns the response's `data`.
    pub async fn call(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        op: &Operation,
    ) -> Result<Value, CallError> {
        let span = tracing::info_span!("shopify_call", shop = %shop.domain, operation = op.document.name, lane = lane.as_str());
        match self
            .call_inner(shop, lane, op, true)
            .instrument(span)
            .await?
        {
            Once::Answered(data) => Ok(data),
            // call_inner resends until the deadline; it never gives up on an unanswered call otherwise.
            Once::Unanswered(last) => Err(CallError::DeadlineExceeded { attempts: 1, last }),
        }
    }

    /// Like [`call`](Self::call), but a call that got no answer is not sent again: for a mutation Shopify does not
    /// de-duplicate and whose effect the caller can look for first (a bulk operation start). Throttled calls, which
    /// did not run, are still sent again.
    pub async fn call_once(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        op: &Operation,
    ) -> Result<Once, CallError> {
        let span = tracing::info_span!("shopify_call", shop = %shop.domain, operation = op.document.name, lane = lane.as_str());
        self.call_inner(shop, lane, op, false)
            .instrument(span)
            .await
    }

    async fn call_inner(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        op: &Operation,
        resend_unanswered: bool,
    ) -> Result<Once, CallError> {
        let deadline = Instant::now() + Duration::from_secs(self.retry.deadline_secs);
        let labels = [
            ("shop", shop.domain.clone()),
            ("operation", op.document.name.to_string()),
        ];
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self
                .budget
                .acquire(&shop.domain, lane, self.estimate(op))
                .await;
            // Checked after the budget wait, the longest one: a replica deposed meanwhile sends nothing more.
            if shop.fence.as_ref().is_some_and(|holds| !holds()) {
                return Err(CallError::Fatal {
                    kind: FatalKind::Deposed,
                    message: format!(
                        "this replica no longer holds the partition of {}: the call was not sent",
                        shop.domain
                    ),
                });
            }
            metrics::histogram!("gateway_budget_wait_seconds", "shop" => shop.domain.clone(), "lane" => lane.as_str())
                .record(permit.waited.as_secs_f64());
            metrics::counter!("gateway_calls_total", &labels).increment(1);
            let answer = self
                .http
                .post(&shop.domain, &shop.token, op.document.text, &op.variables)
                .await;
            let (reason, retry_after) = match answer {
                Answer::Data { data, cost } => {
                    self.learn(op, cost.requested);
                    self.budget.settle(permit, cost.throttle);
                    if let Some(actual) = cost.actual {
                        metrics::counter!("gateway_points_consumed_total", "shop" => shop.domain.clone())
                            .increment(actual.round() as u64);
                    }
                    return Ok(Once::Answered(data));
                }
                Answer::Throttled { cost } => {
                    self.learn(op, cost.requested);
                    self.budget.settle(permit, cost.throttle);
                    metrics::counter!("gateway_throttled_total", "shop" => shop.domain.clone())
                        .increment(1);
                    tracing::warn!("throttled by Shopify; the budget has been corrected");
                    // The budget now knows the bucket; waiting for it is the right backoff.
                    attempt -= 1;
                    (String::from("throttled"), Some(Duration::ZERO))
                }
                Answer::Transient {
                    reason,
                    retry_after,
                } => {
                    drop(permit);
                    metrics::counter!("gateway_transient_failures_total", &labels).increment(1);
                    if !resend_unanswered {
                        return Ok(Once::Unanswered(reason));
                    }
                    (reason, retry_after)
                }
                Answer::Fatal {
                    kind,
                    message,
                    cost,
                } => {
                    self.budget.settle(permit, cost.throttle);
                    return Err(CallError::Fatal { kind, message });
                }
            };
            let delay = if retry_after == Some(Duration::ZERO) {
                Duration::ZERO
            } else {
                self.backoff(attempt, retry_after)
            };
            if Instant::now() + delay > deadline {
                return Err(CallError::DeadlineExceeded {
                    attempts: attempt,
                    last: reason,
                });
            }
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, reason = %reason, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}
