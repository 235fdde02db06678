//! The process-wide metrics recorder (Prometheus): installed once, on first use, by whatever
//! records first — a database counting its commits, or the HTTP host — and rendered by the host's
//! `/metrics`. Storage and the host both use it; neither depends on the other for it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus recorder (installed once, even with several apps in one test).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test harness); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            // Histograms keep their samples until upkeep folds them in: without it they pile up
            // between scrapes (or for ever, with no scraper).
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            handle
        })
        .clone()
}

/// The buckets of every histogram (seconds): fixed, so that the series of several replicas add up
/// (quantiles of a summary do not), fine around the milliseconds a request takes, up to the
/// seconds of a payment call that times out.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often the exporter's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
