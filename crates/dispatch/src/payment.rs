//! The pay call at the end of a trip, made safe to depend on: a timeout per attempt, retries with
//! backoff while pay is unreachable (safe, because the dispatch id is pay's idempotency key), and
//! a circuit breaker, so that an outage answers drivers at once with a `Retry-After` instead of
//! making each of them wait out every timeout.

use std::sync::Arc;
use std::time::Duration;

use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_core::breaker::{BreakerState, CircuitBreaker};

use crate::error::Error;
use crate::{PayCallError, PayTransport, PaymentPolicy};

/// Clients are told to come back after this long when the breaker is not open.
const RETRY_SOON: Duration = Duration::from_secs(1);

pub struct Payments {
    transport: Arc<dyn PayTransport>,
    policy: PaymentPolicy,
    breaker: Arc<CircuitBreaker>,
}

impl Payments {
    pub fn new(transport: Arc<dyn PayTransport>, policy: PaymentPolicy) -> Self {
        let payments = Self {
            transport,
            policy,
            breaker: Arc::new(CircuitBreaker::new(
                policy.breaker_failures,
                policy.breaker_open_for,
            )),
        };
        payments.report();
        payments
    }

    /// The breaker guarding calls to pay, for the operational endpoints.
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        self.breaker.clone()
    }

    /// Charges the trip exactly `request.amount`. A declined card, a refused request or a payment
    /// of another amount is pay answering: it counts toward the breaker as a healthy call and is
    /// never retried. A payment is returned only if it is of this dispatch and this amount, so
    /// the fare a trip records is always the one dispatch computed.
    pub async fn pay(&self, request: &PayRequest) -> Result<Pay, Error> {
        let mut attempt = 0;
        // The pauses between tries: the same policy as every other retry (`core::retry`), cut
        // short by `policy.retries`, since a driver is waiting for the answer.
        let mut waits = tanda_core::retry::backoff();
        loop {
            if let Err(rejected) = self.breaker.acquire() {
                self.report();
                return Err(Error::PaymentUnavailable {
                    reason: "pay is failing; calls are paused".to_owned(),
                    retry_after: rejected.retry_after,
                });
            }
            let outcome = tokio::time::timeout(self.policy.timeout, self.transport.pay(request));
            let reason = match outcome.await {
                Ok(Ok(pay)) => return self.healthy(check(request, pay)),
                Ok(Err(PayCallError::AmountMismatch(r))) => {
                    return self.healthy(Err(Error::PaymentMismatch(r)));
                }
                Ok(Err(PayCallError::Declined(r))) => {
                    return self.healthy(Err(Error::PaymentDeclined(r)));
                }
                Ok(Err(PayCallError::Invalid(r))) => {
                    return self.healthy(Err(Error::PaymentInvalid(r)));
                }
                Ok(Err(PayCallError::Unavailable(r))) => r,
                Err(_) => format!("no answer within {:?}", self.policy.timeout),
            };
            self.breaker.on_failure();
            self.report();
            if attempt >= self.policy.retries {
                let retry_after = match self.breaker.state() {
                    BreakerState::Open => self.policy.breaker_open_for,
                    _ => RETRY_SOON,
                };
                return Err(Error::PaymentUnavailable {
                    reason,
                    retry_after,
                });
            }
            let pause = waits.next().unwrap_or(tanda_core::retry::CAP);
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn healthy(&self, outcome: Result<Pay, Error>) -> Result<Pay, Error> {
        self.breaker.on_success();
        self.report();
        outcome
    }

    /// `tanda_breaker_state{name="pay"}`: 0 closed, 1 half-open, 2 open.
    fn report(&self) {
        metrics::gauge!("tanda_breaker_state", "name" => "pay").set(self.breaker.state().gauge());
    }
}

/// `pay`, if it is the payment asked for: this dispatch, this amount.
fn check(request: &PayRequest, pay: Pay) -> Result<Pay, Error> {
    if pay.dispatch_id == request.dispatch_id && pay.amount == request.amount {
        return Ok(pay);
    }
    tracing::warn!(
        dispatch_id = %request.dispatch_id,
        asked = request.amount,
        answered_dispatch_id = %pay.dispatch_id,
        answered = pay.amount,
        "pay answered with a payment other than the one asked for"
    );
    Err(Error::PaymentMismatch(format!(
        "pay answered with a payment of {} won for dispatch {}, not {} won for dispatch {}",
        pay.amount, pay.dispatch_id, request.amount, request.dispatch_id
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// Answers from a script (then approves), or hangs when the script says `None`.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Option<Result<(), PayCallError>>>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(script: impl IntoIterator<Item = Option<Result<(), PayCallError>>>) -> Arc<Self> {
            Arc::new(Self {
                script: Mutex::new(script.into_iter().collect()),
                calls: AtomicU32::new(0),
            })
        }
        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl PayTransport for Scripted {
        async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Some(Ok(())));
            let Some(result) = next else {
                return std::future::pending().await;
            };
            result.map(|()| Pay {
                pay_id: "pay-1".into(),
                book_id: request.book_id.clone(),
                dispatch_id: request.dispatch_id.clone(),
                amount: request.amount,
                method: "CARD".into(),
                card_last4: Some("4242".into()),
                status: "PAID".into(),
                paid_at: "2026-01-01T00:00:00.000Z".into(),
            })
        }
    }

    fn request() -> PayRequest {
        PayRequest {
            book_id: "b1".into(),
            customer_id: "c1".into(),
            dispatch_id: "d1".into(),
            amount: 4800,
            card_token: "tok".into(),
            method: "CARD".into(),
        }
    }

    fn down() -> Option<Result<(), PayCallError>> {
        Some(Err(PayCallError::Unavailable("down".into())))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_while_unavailable_or_silent_then_succeeds() {
        let pay = Scripted::new([down(), None]);
        let payments = Payments::new(pay.clone(), PaymentPolicy::default());
        let paid = payments.pay(&request()).await.unwrap();
        assert_eq!(paid.amount, 4800);
        assert_eq!(pay.calls(), 3);
        assert_eq!(payments.breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_retries() {
        let pay = Scripted::new([down(), down(), down(), down()]);
        let payments = Payments::new(pay.clone(), PaymentPolicy::default());
        let err = payments.pay(&request()).await.unwrap_err();
        assert!(
            matches!(err, Error::PaymentUnavailable { retry_after, .. } if retry_after == RETRY_SOON),
            "{err:?}"
        );
        assert_eq!(pay.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn declines_are_answers_not_failures() {
        let declined = || Some(Err(PayCallError::Declined("card_declined".into())));
        let pay = Scripted::new((0..10).map(|_| declined()));
        let policy = PaymentPolicy {
            breaker_failures: 2,
            ..PaymentPolicy::default()
        };
        let payments = Payments::new(pay.clone(), policy);
        for _ in 0..10 {
            let err = payments.pay(&request()).await.unwrap_err();
            assert!(matches!(err, Error::PaymentDeclined(_)), "{err:?}");
        }
        assert_eq!(pay.calls(), 10, "a decline is never retried");
        assert_eq!(payments.breaker.state(), BreakerState::Closed);
    }

    /// Approves every call with a payment of its own amount.
    struct Answers(i64);

    #[async_trait]
    impl PayTransport for Answers {
        async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError> {
            Ok(Pay {
                pay_id: "pay-1".into(),
                book_id: request.book_id.clone(),
                dispatch_id: request.dispatch_id.clone(),
                amount: self.0,
                method: "CARD".into(),
                card_last4: Some("4242".into()),
                status: "PAID".into(),
                paid_at: "2026-01-01T00:00:00.000Z".into(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_of_another_amount_is_a_mismatch_never_the_fare() {
        let payments = Payments::new(Arc::new(Answers(1)), PaymentPolicy::default());
        let err = payments.pay(&request()).await.unwrap_err();
        assert!(
            matches!(&err, Error::PaymentMismatch(r) if r.contains("1 won") && r.contains("4800 won")),
            "{err:?}"
        );
        assert_eq!(payments.breaker.state(), BreakerState::Closed);

        let refused = Scripted::new([Some(Err(PayCallError::AmountMismatch("charged".into())))]);
        let payments = Payments::new(refused.clone(), PaymentPolicy::default());
        let err = payments.pay(&request()).await.unwrap_err();
        assert!(matches!(err, Error::PaymentMismatch(_)), "{err:?}");
        assert_eq!(refused.calls(), 1, "a mismatch is never retried");

        let agreed = Payments::new(Arc::new(Answers(4800)), PaymentPolicy::default());
        assert_eq!(agreed.pay(&request()).await.unwrap().amount, 4800);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_fails_fast_and_recovers() {
        let pay = Scripted::new([down(), down()]);
        let policy = PaymentPolicy {
            retries: 0,
            breaker_failures: 2,
            breaker_open_for: Duration::from_secs(30),
            ..PaymentPolicy::default()
        };
        let payments = Payments::new(pay.clone(), policy);
        for _ in 0..2 {
            payments.pay(&request()).await.unwrap_err();
        }
        assert_eq!(payments.breaker.state(), BreakerState::Open);

        let err = payments.pay(&request()).await.unwrap_err();
        assert!(
            matches!(err, Error::PaymentUnavailable { retry_after, .. } if retry_after == Duration::from_secs(30)),
            "{err:?}"
        );
        assert_eq!(pay.calls(), 2, "an open breaker does not call pay");

        tokio::time::advance(Duration::from_secs(30)).await;
        payments.pay(&request()).await.unwrap();
        assert_eq!(payments.breaker.state(), BreakerState::Closed);
        assert_eq!(pay.calls(), 3);
    }
}
