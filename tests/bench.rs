//! `tanda bench` itself works: every scenario runs against the Tanda it starts, stops by itself
//! and reports its figures. No figure is judged here (benchmarks are not tests); only that each
//! is measured, with no failed operation.

use std::process::Command;

/// The value column of the markdown row whose figure starts with `figure`.
fn value<'a>(markdown: &'a str, figure: &str) -> &'a str {
    markdown
        .lines()
        .find(|l| l.starts_with(&format!("| {figure}")))
        .and_then(|l| l.split('|').nth(2))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no row {figure:?} in\n{markdown}"))
}

fn number(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text:?} is not a figure"))
}

#[test]
fn every_scenario_runs_and_reports_each_figure() {
    let dir = tempfile::tempdir().unwrap();
    let markdown = dir.path().join("bench.md");
    let output = Command::new(env!("CARGO_BIN_EXE_tanda"))
        .args([
            "bench",
            "all",
            "--duration",
            "1s",
            "--concurrency",
            "4",
            "--markdown",
        ])
        .arg(&markdown)
        .output()
        .expect("tanda bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tanda bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        stdout.contains("bookings accepted/s"),
        "the table is printed too"
    );

    for ceiling in [
        "HTTP ceiling: GET /hello req/s",
        "SQLite single-row commits/s (C API)",
        "the same through Tanda's Db",
    ] {
        assert!(number(value(&table, ceiling)) > 0.0, "{ceiling}");
    }
    for flow in [
        "bookings accepted/s",
        "rides completed/s",
        "reservations confirmed/s",
    ] {
        assert!(number(value(&table, flow)) > 0.0, "{flow}");
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {flow}")))
            .unwrap();
        assert!(row.contains("failures: none"), "{row}");
        assert!(row.contains("% of"), "set against a ceiling: {row}");
    }
    let per_booking = value(&table, "commits per booking");
    assert!(number(per_booking) >= 1.0, "{per_booking}");
    assert!(per_booking.contains("transactions"), "{per_booking}");
    for figure in [
        "start → ready, all-in-one",
        "idle RSS, whole system",
        "peak RSS under load",
        "start → ready, one service process",
        "idle RSS, one service process",
    ] {
        assert!(number(value(&table, figure)) > 0.0, "{figure}");
    }
    // What each flow cost the machine in CPU, and which process spent it.
    for flow in ["booking", "ride", "reservation"] {
        let figure = format!("machine CPU per {flow}");
        assert!(number(value(&table, &figure)) > 0.0, "{figure}");
    }
    let system = number(value(&table, "  of which tanda (all-in-one)"));
    assert!(system > 0.0, "the system under test is named");
}
