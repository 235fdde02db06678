//! The pay call over HTTP, for when pay runs as its own process: `POST {pay}/pays`, an internal
//! route, with the service credential, and pay's answer read back as a payment or the reason
//! there is none. Timeouts, retries and the breaker are `payment`'s, around any transport.
//!
//! No `Idempotency-Key` is sent: the dispatch id in the body is pay's idempotency key already, and
//! a key over the whole request would turn a retry with another card (replaced after a decline) or
//! another amount into `422 idempotency_key_reused` instead of pay's own answer, as in-process.

use async_trait::async_trait;
use reqwest::header::AUTHORIZATION;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_core::credential::ServiceSecret;

use crate::{PayCallError, PayTransport};

pub struct HttpPay {
    client: reqwest::Client,
    pays: Url,
    authorization: String,
}

impl HttpPay {
    /// Pay at `base`, e.g. `http://127.0.0.1:8083` (a path in it is kept as a prefix), called
    /// with the service credential `secret`.
    pub fn new(base: Url, secret: &ServiceSecret) -> Self {
        let mut pays = base.clone();
        pays.set_path(&format!("{}/pays", base.path().trim_end_matches('/')));
        let client = reqwest::Client::builder()
            // Before pay's idle timeout closes them, so a call never races the close.
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain-HTTP client has no TLS backend that could fail to start");
        Self {
            client,
            pays,
            authorization: secret.authorization(),
        }
    }
}

/// What pay's problem answers say about themselves.
#[derive(Deserialize)]
struct Problem {
    detail: String,
    #[serde(default)]
    code: String,
}

#[async_trait]
impl PayTransport for HttpPay {
    async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError> {
        let answer = self
            .client
            .post(self.pays.clone())
            .header(AUTHORIZATION, &self.authorization)
            .json(request)
            .send()
            .await
            .map_err(|e| PayCallError::Unavailable(format!("pay cannot be reached: {e}")))?;
        match answer.status() {
            StatusCode::OK | StatusCode::CREATED => answer.json().await.map_err(|e| {
                PayCallError::Unavailable(format!("pay's answer cannot be read: {e}"))
            }),
            StatusCode::PAYMENT_REQUIRED => Err(PayCallError::Declined(detail(answer).await)),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Err(PayCallError::Invalid(detail(answer).await))
            }
            // A configuration error, not an outage: retrying will not help.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(PayCallError::Invalid(format!(
                    "pay refused dispatch's service credential ({}); both need the same --service-secret",
                    detail(answer).await
                )))
            }
            status => {
                let problem = problem(answer).await;
                if status == StatusCode::CONFLICT && problem.code == "amount_mismatch" {
                    return Err(PayCallError::AmountMismatch(problem.detail));
                }
                Err(PayCallError::Unavailable(format!(
                    "pay answered {status}: {}",
                    problem.detail
                )))
            }
        }
    }
}

/// The problem's `detail`, or the status when the answer is not a problem.
async fn detail(answer: reqwest::Response) -> String {
    problem(answer).await.detail
}

/// The answer as a problem; one that is not a problem reads as its status.
async fn problem(answer: reqwest::Response) -> Problem {
    let status = answer.status();
    answer.json::<Problem>().await.unwrap_or_else(|_| Problem {
        detail: status.to_string(),
        code: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use tanda_core::Problem;
    use tokio::net::TcpListener;

    use super::*;

    type Seen = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

    const SECRET: &str = "a-shared-secret-of-32-characters";

    fn secret() -> ServiceSecret {
        ServiceSecret::new(SECRET).unwrap()
    }

    /// A stand-in for pay, behind the service credential, whose answer depends on the card token.
    async fn pay_service(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
        let request: PayRequest = serde_json::from_str(&body).unwrap();
        let key = headers
            .get("idempotency-key")
            .map(|k| k.to_str().unwrap().to_owned());
        seen.lock()
            .unwrap()
            .push((key, serde_json::from_str(&body).unwrap()));
        let pay = Pay {
            pay_id: "pay-1".into(),
            book_id: request.book_id,
            dispatch_id: request.dispatch_id,
            amount: request.amount,
            method: "CARD".into(),
            card_last4: Some("4242".into()),
            status: "PAID".into(),
            paid_at: "2026-01-01T00:00:00.000Z".into(),
        };
        match request.card_token.as_str() {
            "new" => (StatusCode::CREATED, Json(pay)).into_response(),
            "again" => Json(pay).into_response(),
            "declined" => Problem::payment_declined("the card was declined (insufficient funds)")
                .into_response(),
            "forged" => {
                Problem::bad_request("invalid_payment", "cardToken is not a token").into_response()
            }
            "reused" => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "key used for another request",
            )
            .into_response(),
            "outage" => Problem::unavailable(
                "card_network_unavailable",
                "the card network is unavailable",
                1,
            )
            .into_response(),
            "charged" => Problem::conflict(
                "amount_mismatch",
                "dispatch d1 was already charged 1 won; this request asks for 5200 won",
            )
            .into_response(),
            "busy" => Problem::conflict("concurrent_update", "pay changed concurrently; retry")
                .into_response(),
            "crash" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
            _ => (StatusCode::CREATED, "not a payment").into_response(),
        }
    }

    /// Pay on a random port, reached through a base URL ending in `/`.
    async fn pay() -> (HttpPay, Seen) {
        let seen = Seen::default();
        let router = Router::new()
            .route("/pays", post(pay_service))
            .with_state(seen.clone());
        let router = tanda_core::credential::require(secret(), router);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (HttpPay::new(base.parse().unwrap(), &secret()), seen)
    }

    fn request(card_token: &str) -> PayRequest {
        PayRequest {
            book_id: "b1".into(),
            customer_id: "c1".into(),
            dispatch_id: "d1".into(),
            amount: 5200,
            card_token: card_token.into(),
            method: "CARD".into(),
        }
    }

    #[tokio::test]
    async fn posts_the_request_and_reads_the_payment() {
        let (pay, seen) = pay().await;
        for token in ["new", "again"] {
            let paid = pay.pay(&request(token)).await.unwrap();
            assert_eq!(paid.pay_id, "pay-1");
            assert_eq!((paid.dispatch_id.as_str(), paid.amount), ("d1", 5200));
        }
        let (key, body) = seen.lock().unwrap()[0].clone();
        assert_eq!(key, None, "the dispatch id in the body is pay's key");
        assert_eq!(
            body,
            serde_json::json!({"bookId": "b1", "customerId": "c1", "dispatchId": "d1", "amount": 5200, "cardToken": "new", "method": "CARD"})
        );
    }

    #[tokio::test]
    async fn each_refusal_becomes_its_reason() {
        let (pay, _) = pay().await;
        let cases = [
            (
                "declined",
                PayCallError::Declined("the card was declined (insufficient funds)".into()),
            ),
            (
                "forged",
                PayCallError::Invalid("cardToken is not a token".into()),
            ),
            (
                "reused",
                PayCallError::Invalid("key used for another request".into()),
            ),
            (
                "outage",
                PayCallError::Unavailable(
                    "pay answered 503 Service Unavailable: the card network is unavailable".into(),
                ),
            ),
            (
                "charged",
                PayCallError::AmountMismatch(
                    "dispatch d1 was already charged 1 won; this request asks for 5200 won".into(),
                ),
            ),
            (
                "busy",
                PayCallError::Unavailable(
                    "pay answered 409 Conflict: pay changed concurrently; retry".into(),
                ),
            ),
            (
                "crash",
                PayCallError::Unavailable(
                    "pay answered 500 Internal Server Error: 500 Internal Server Error".into(),
                ),
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(pay.pay(&request(token)).await.unwrap_err(), expected);
        }
    }

    #[tokio::test]
    async fn a_credential_pay_refuses_is_a_configuration_error_not_an_outage() {
        let (pay, seen) = pay().await;
        let base = pay.pays.as_str().trim_end_matches("pays").to_owned();
        let wrong = ServiceSecret::new("another-secret-of-32-characters").unwrap();
        let err = HttpPay::new(base.parse().unwrap(), &wrong)
            .pay(&request("new"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PayCallError::Invalid(r) if r.contains("--service-secret")),
            "{err:?}"
        );
        assert!(seen.lock().unwrap().is_empty(), "pay never ran the call");
    }

    #[tokio::test]
    async fn an_unreadable_answer_is_unavailable() {
        let (pay, _) = pay().await;
        let err = pay.pay(&request("garbled")).await.unwrap_err();
        assert!(matches!(err, PayCallError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn pay_not_listening_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = HttpPay::new(base.parse().unwrap(), &secret())
            .pay(&request("new"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PayCallError::Unavailable(r) if r.starts_with("pay cannot be reached")),
            "{err:?}"
        );
    }
}
