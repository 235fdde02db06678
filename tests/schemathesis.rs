//! The API fuzzed against its own document: schemathesis (PyPI, in `./.venv`, which `.ci/run`
//! makes from `.ci/requirements.txt`) reads `/openapi.json` from the all-in-one binary and sends
//! it the documented examples, then generated requests, as a signed-in operator and as a
//! signed-in customer. Every answer must be a documented status with a documented body and
//! content type, and none a server error. Each run is bounded in time.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// Each identity's fuzzing budget: enough to reach every operation many times over.
const MAX_TIME: Duration = Duration::from_secs(45);

/// What every answer is held to.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance";

fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis");
    let path = std::env::var_os("TANDA_SCHEMATHESIS").map_or(venv, PathBuf::from);
    assert!(
        path.exists(),
        "schemathesis is not at {}: run .ci/run, or `python3 -m venv .venv && \
         .venv/bin/pip install -r .ci/requirements.txt`",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_generated_requests_as_its_document_says() {
    let program = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), &[]);
    let operator = tanda.api.bearer_token().await;
    let customer = tanda
        .api
        .signed_up("fuzz-customer", "customer")
        .await
        .bearer_token()
        .await;
    for (who, token) in [("operator", operator), ("customer", customer)] {
        let mut output = fuzz(&program, &tanda.api.base, &token).await;
        for _ in 1..INTERPRETER_ATTEMPTS {
            if !interpreter_crashed(&output) {
                break;
            }
            // Not an answer of Tanda's: see `interpreter_crashed`. The same run, once more.
            output = fuzz(&program, &tanda.api.base, &token).await;
        }
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis as the {who} found problems:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            report.contains("passed"),
            "schemathesis as the {who} tested nothing:\n{report}"
        );
    }
}

/// One schemathesis run against the Tanda at `base`, as the holder of `token`.
async fn fuzz(program: &std::path::Path, base: &str, token: &str) -> std::process::Output {
    tokio::process::Command::new(program)
        .arg("--config-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/schemathesis.toml"
        ))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-time", &MAX_TIME.as_secs().to_string()])
        .args(["--phases", "examples,coverage,fuzzing"])
        // A stream never ends by itself: its answer is checked by the scenarios instead.
        .args(["--exclude-path", "/notifications/stream"])
        .args(["--request-timeout", "10", "--workers", "2"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs")
}

/// Runs of one caller a crashed interpreter may take (see `interpreter_crashed`).
const INTERPRETER_ATTEMPTS: usize = 3;

/// Whether schemathesis stopped on a crash of its own Python interpreter rather than on anything
/// Tanda answered: CPython before 3.11.8 can fail parsing a lambda's source deep in a stack with
/// "AST constructor recursion depth mismatch" (CPython issue 106905), which Hypothesis then
/// reports as a flaky test case. `.ci/run` builds `.venv` on a later Python where the machine has
/// one; on an earlier one, such a run is repeated.
fn interpreter_crashed(output: &std::process::Output) -> bool {
    !output.status.success()
        && String::from_utf8_lossy(&output.stdout)
            .contains("SystemError: AST constructor recursion depth mismatch")
}
