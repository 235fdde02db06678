//! The bench's table: each figure with the ceiling it is set against and the ratio, as aligned
//! text for the terminal and as markdown for BENCHMARKS.md.

use super::BenchArgs;
use super::cpu::CpuUse;
use super::load::Samples;
use crate::RunConfig;

pub struct Row {
    figure: String,
    value: String,
    /// `x% of <ceiling> (<value>)`.
    versus: String,
    note: String,
}

impl Row {
    pub fn plain(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            versus: String::new(),
            note: String::new(),
        }
    }

    /// A ceiling's own rate, with its latency.
    pub fn ceiling(figure: &str, rate: f64, samples: &Samples) -> Row {
        Row {
            note: format!(
                "p50 {:.2} ms, p99 {:.2} ms",
                samples.quantile_ms(0.5),
                samples.quantile_ms(0.99)
            ),
            ..Row::plain(figure, format!("{rate:.0}"))
        }
    }

    /// Successful operations per second, with the failures noted.
    pub fn rate(figure: impl Into<String>, samples: &Samples) -> Row {
        Row {
            note: format!("{} ok, failures: {}", samples.ok(), samples.failures_text()),
            ..Row::plain(figure, format!("{:.0}", samples.rate()))
        }
    }

    /// Sets this rate against a ceiling measured in the same run.
    pub fn against(mut self, ceiling: &str, ceiling_rate: f64) -> Row {
        let rate: f64 = self.value.parse().unwrap_or(0.0);
        let percent = if ceiling_rate > 0.0 {
            100.0 * rate / ceiling_rate
        } else {
            0.0
        };
        self.versus = format!("{percent:.1}% of {ceiling} ({ceiling_rate:.0})");
        self
    }

    /// What the machine's CPU spent per operation during a load, every process counted, set
    /// against a ceiling's CPU per operation when there is one, and the most operations a second
    /// the cores would allow at that cost.
    pub fn cpu(figure: &str, spent: &CpuUse, operations: u64, ceiling: Option<(&str, f64)>) -> Row {
        let ms = spent.ms_per(operations);
        let versus = match ceiling {
            Some((name, ceiling_ms)) if ceiling_ms > 0.0 => {
                format!("{:.0}× {name} ({ceiling_ms:.3} ms)", ms / ceiling_ms)
            }
            _ => String::new(),
        };
        Row {
            versus,
            note: format!(
                "{:.0}% of {} cores busy: at most {:.0}/s at this cost",
                100.0 * spent.busy_share(),
                spent.cores,
                spent.most_per_second(ms)
            ),
            ..Row::plain(figure, format!("{ms:.3} ms"))
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    pub fn latency(figure: &str, samples: &Samples) -> Row {
        Row::plain(
            figure,
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
                samples.quantile_ms(0.5),
                samples.quantile_ms(0.99),
                samples.quantile_ms(1.0)
            ),
        )
    }
}

pub struct Table {
    header: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    pub fn new(args: &BenchArgs, run: &RunConfig) -> Table {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let header = vec![
            format!(
                "tanda {} bench {:?}, {} clients, up to {:?} or {} operations per figure",
                env!("CARGO_PKG_VERSION"),
                args.scenario,
                args.concurrency,
                args.duration,
                args.operations
            ),
            format!(
                "machine: {cores} cores, {cpu}; generator on the same machine; SQLite synchronous={:?}",
                run.sqlite_synchronous
            ),
        ];
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn extend(&mut self, rows: impl IntoIterator<Item = Row>) {
        self.rows.extend(rows);
    }

    pub fn text(&self) -> String {
        let w = |f: fn(&Row) -> &str| {
            self.rows
                .iter()
                .map(|r| f(r).chars().count())
                .max()
                .unwrap_or(0)
        };
        let (wf, wv, wx) = (w(|r| &r.figure), w(|r| &r.value), w(|r| &r.versus));
        let mut out = self.header.join("\n") + "\n\n";
        for r in &self.rows {
            let line = format!(
                "{:wf$}  {:>wv$}  {:wx$}  {}",
                r.figure, r.value, r.versus, r.note
            );
            out += line.trim_end();
            out.push('\n');
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out: String = self.header.iter().map(|h| format!("{h}  \n")).collect();
        out += "\n| figure | value | against the same-run ceiling | notes |\n|---|---:|---|---|\n";
        for r in &self.rows {
            out += &format!(
                "| {} | {} | {} | {} |\n",
                r.figure, r.value, r.versus, r.note
            );
        }
        out
    }
}
