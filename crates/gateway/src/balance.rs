//! Several instances of one service behind the gateway (a repeated `--upstream svc=URL`), and
//! which of them a request goes to.
//!
//! Requests take the instances in turn. An instance that refuses a connection is set aside at
//! once, and the request goes on to the next; one whose `/readyz` does not answer `200` is set
//! aside at the next probe ([`PROBE_EVERY`]), and each set-aside one is taken back when its
//! `/readyz` does. Set-aside instances are still tried after every ready one: better a try than
//! a certain `503`. With one URL per service (a Kubernetes Service, which balances itself) this
//! is the same code with one instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Url;
use tanda_core::lifecycle::Lifecycle;
use tracing::{info, warn};

/// How often each instance's `/readyz` is asked.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The instances of one service.
#[derive(Debug)]
pub(crate) struct Instances {
    pub service: &'static str,
    members: Vec<Member>,
    turn: AtomicUsize,
}

#[derive(Debug)]
struct Member {
    base: Url,
    aside: AtomicBool,
}

impl Instances {
    pub fn new(service: &'static str, bases: Vec<Url>) -> Self {
        assert!(!bases.is_empty(), "{service} has at least one instance");
        let members = bases
            .into_iter()
            .map(|base| Member {
                base,
                aside: AtomicBool::new(false),
            })
            .collect();
        Self {
            service,
            members,
            turn: AtomicUsize::new(0),
        }
    }

    /// Where each instance is, in the order given.
    pub fn bases(&self) -> impl Iterator<Item = &Url> {
        self.members.iter().map(|m| &m.base)
    }

    /// The instances one request tries, in order: the ready ones from the next in turn, then
    /// those set aside.
    pub fn order(&self) -> Vec<usize> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let (mut ready, aside): (Vec<usize>, Vec<usize>) =
            (0..self.members.len()).partition(|&i| !self.members[i].aside.load(Ordering::Relaxed));
        if !ready.is_empty() {
            let by = turn % ready.len();
            ready.rotate_left(by);
        }
        ready.into_iter().chain(aside).collect()
    }

    pub fn base(&self, i: usize) -> &Url {
        &self.members[i].base
    }

    /// Sets instance `i` aside until its `/readyz` answers `200` again.
    pub fn set_aside(&self, i: usize) {
        if !self.members[i].aside.swap(true, Ordering::Relaxed) {
            warn!(service = self.service, instance = %self.members[i].base, "instance set aside");
        }
    }

    fn take_back(&self, i: usize) {
        if self.members[i].aside.swap(false, Ordering::Relaxed) {
            info!(service = self.service, instance = %self.members[i].base, "instance taken back");
        }
    }

    /// Asks every instance's `/readyz` once: sets aside those not ready, takes back the others.
    pub async fn probe(&self, client: &reqwest::Client) {
        let asks = self.members.iter().map(|m| async move {
            let answer = client
                .get(readyz(&m.base))
                .timeout(PROBE_TIMEOUT)
                .send()
                .await;
            answer.is_ok_and(|a| a.status().is_success())
        });
        let answers = futures::future::join_all(asks).await;
        for (i, ready) in answers.into_iter().enumerate() {
            if ready {
                self.take_back(i);
            } else {
                self.set_aside(i);
            }
        }
    }

    /// Probes every [`PROBE_EVERY`] until shutdown (only with more than one instance: a single
    /// one is asked whatever it says).
    pub fn watch(self: &Arc<Self>, client: &reqwest::Client, lifecycle: &Lifecycle) {
        if self.members.len() < 2 {
            return;
        }
        let (this, client, cancel) = (self.clone(), client.clone(), lifecycle.token());
        lifecycle.spawn(async move {
            loop {
                this.probe(&client).await;
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        });
    }
}

/// An instance's `/readyz`, below the path its base may have (as every path sent to it is).
fn readyz(base: &Url) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/readyz", base.path().trim_end_matches('/')));
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Instances {
        let url = |p| format!("http://127.0.0.1:{p}").parse().unwrap();
        Instances::new("book", vec![url(1), url(2), url(3)])
    }

    #[test]
    fn readiness_is_asked_below_the_bases_path() {
        let at = |base: &str| readyz(&base.parse().unwrap()).to_string();
        assert_eq!(at("http://10.0.0.5:8080"), "http://10.0.0.5:8080/readyz");
        assert_eq!(at("http://10.0.0.5/book"), "http://10.0.0.5/book/readyz");
        assert_eq!(at("http://10.0.0.5/book/"), "http://10.0.0.5/book/readyz");
    }

    #[test]
    fn requests_take_the_instances_in_turn() {
        let instances = three();
        let firsts: Vec<usize> = (0..6).map(|_| instances.order()[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(instances.order(), [0, 1, 2]);
    }

    #[test]
    fn an_instance_set_aside_is_tried_last_until_taken_back() {
        let instances = three();
        instances.set_aside(1);
        assert_eq!(instances.order(), [0, 2, 1]);
        assert_eq!(instances.order(), [2, 0, 1]);
        assert_eq!(instances.order(), [0, 2, 1]);
        instances.take_back(1);
        assert_eq!(instances.order(), [0, 1, 2]);
        for i in 0..3 {
            instances.set_aside(i);
        }
        assert_eq!(
            instances.order(),
            [0, 1, 2],
            "all aside: each is still tried"
        );
    }
}
