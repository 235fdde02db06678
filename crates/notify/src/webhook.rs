//! Optional webhook delivery: every stored notification is POSTed, in order and at least once, to
//! the configured URL, with its id as `Idempotency-Key`. The table is the queue
//! (`delivered_at IS NULL`), so nothing is lost across restarts; a failing endpoint is retried
//! with backoff, never skipped. A repeat (a crash between the 2xx and marking it delivered, or
//! several instances sending) carries the same key, so the receiver can drop it.

use std::time::Duration;

use reqwest::{Client, Url};
use tanda_core::Db;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Error;
use crate::store::{self, Notification};

/// Fallback look at the table when no commit signal arrives (another process may insert).
const POLL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);
const BATCH: i64 = 100;

pub struct Webhook {
    db: Db,
    client: Client,
    url: Url,
}

impl Webhook {
    pub fn new(db: Db, url: &str) -> Result<Self, Error> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "http" && u.host().is_some())
            .ok_or_else(|| Error::InvalidWebhook(url.to_owned()))?;
        let client = Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()?;
        Ok(Self {
            db,
            client,
            url: parsed,
        })
    }

    /// Delivers until `cancel`: the rest is picked up on the next start.
    pub async fn run(self, mut wake: watch::Receiver<u64>, cancel: CancellationToken) {
        info!("delivering notifications to the webhook");
        // An unreachable receiver is the infrastructure's failure: waited out (`core::retry`).
        let mut waits = tanda_core::retry::backoff();
        loop {
            wake.borrow_and_update();
            let batch = match store::undelivered(&self.db, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    warn!(error = %e, "cannot read undelivered notifications; retrying");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    Ok(()) = wake.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            for n in &batch {
                // In order: the next one waits until this one got through.
                loop {
                    let outcome = tokio::select! {
                        outcome = self.deliver(n) => outcome,
                        _ = cancel.cancelled() => return,
                    };
                    match outcome {
                        Ok(()) => {
                            waits = tanda_core::retry::backoff();
                            break;
                        }
                        Err(e) => {
                            let pause = waits.next().unwrap_or(tanda_core::retry::CAP);
                            warn!(error = %e, id = %n.notification_id, retry_in = ?pause, "webhook delivery failed");
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = cancel.cancelled() => return,
                            }
                        }
                    }
                }
            }
        }
    }

    async fn deliver(&self, n: &Notification) -> Result<(), Error> {
        let response = self
            .client
            .post(self.url.clone())
            .header("idempotency-key", &n.notification_id)
            .json(n)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::WebhookStatus(status.as_u16()));
        }
        Ok(store::mark_delivered(&self.db, &n.notification_id).await?)
    }
}
