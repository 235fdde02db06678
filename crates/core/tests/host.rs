//! The HTTP host as a stranger meets it: request metrics that made-up requests cannot grow.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use axum::routing::get;
use tanda_core::host::{metrics_handle, with_common_layers};
use tower::ServiceExt;

/// The distinct `tanda_http_requests_total` series the recorder holds now.
fn request_series() -> usize {
    metrics_handle()
        .render()
        .lines()
        .filter(|line| line.starts_with("tanda_http_requests_total{"))
        .count()
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_request_metrics() {
    metrics_handle(); // the recorder, installed before anything is recorded
    let router = with_common_layers(Router::new().route("/things", get(|| async { "ok" })));
    let send = async |method: Method, path: &str| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    };
    // Every kind of answer once, with real methods, so the series they need exist.
    for method in [Method::GET, Method::POST, Method::DELETE] {
        send(method.clone(), "/things").await;
        send(method, "/nowhere").await;
    }
    let before = request_series();

    for i in 0..300 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        send(method.clone(), "/things").await;
        send(method, &format!("/nowhere/{i}")).await;
    }

    let after = request_series();
    assert!(
        after <= before + 2,
        "300 made-up methods grew the request series from {before} to {after}"
    );
    let metrics = metrics_handle().render();
    assert!(
        !metrics.contains("MADEUP"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"other\""));
}
