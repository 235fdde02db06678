//! What a load cost the whole machine in CPU time, read from `/proc` before and after: every
//! process counts (the system under test, its databases and broker, and the load generator), so
//! a figure's cost per operation can be set against the cores there are, and split by process.
//! `None` where `/proc/stat` does not exist (not Linux).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The machine's CPU counters at one instant, in total and per process.
pub struct CpuClock {
    busy: u64,
    total: u64,
    processes: HashMap<u32, (String, u64)>,
    at: Instant,
}

/// The CPU a load took: core-seconds spent, over how long, on how many cores; and per process
/// name (`comm`), or per the name the bench gave a process it started.
pub struct CpuUse {
    pub core_seconds: f64,
    pub wall: Duration,
    pub cores: usize,
    /// Core-seconds by process name, most first; what no process accounts for (the kernel's
    /// interrupt work, processes that ended during the load) is not in it. The kernel keeps
    /// these counters apart from the machine's (a process's run time as the scheduler measured
    /// it; the machine's by sampling at each tick), so their sum may differ from `core_seconds`:
    /// by up to a fifth seen here, more where short bursts of disk writeback are many.
    pub by_process: Vec<(String, f64)>,
}

impl CpuClock {
    pub fn now() -> Option<CpuClock> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (busy, total) = parse(&stat)?;
        Some(CpuClock {
            busy,
            total,
            processes: processes(),
            at: Instant::now(),
        })
    }

    /// What the machine spent since `self` was read; `names` renames the processes it lists
    /// (by pid), and every process of the same name is summed.
    pub fn since(&self, names: &HashMap<u32, String>) -> Option<CpuUse> {
        let now = CpuClock::now()?;
        let total = now.total.checked_sub(self.total).filter(|t| *t > 0)?;
        let busy = now.busy.saturating_sub(self.busy);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let wall = now.at - self.at;
        // Both files count in the same ticks: a share of all ticks, times the core-seconds there
        // were, is core-seconds.
        let seconds = |ticks: u64| ticks as f64 / total as f64 * cores as f64 * wall.as_secs_f64();
        let mut by_name: HashMap<String, u64> = HashMap::new();
        for (pid, (comm, ticks)) in &now.processes {
            // A process that started during the load spent all its ticks in it.
            let before = self
                .processes
                .get(pid)
                .filter(|(c, _)| c == comm)
                .map_or(0, |(_, t)| *t);
            let name = match names.get(pid) {
                Some(name) => name.as_str(),
                // Kernel worker threads carry what they work on in their names.
                None if comm.starts_with("kworker/") => "kernel workers",
                None => comm,
            };
            *by_name.entry(name.to_owned()).or_default() += ticks.saturating_sub(before);
        }
        let mut by_process: Vec<(String, f64)> = by_name
            .into_iter()
            .filter(|(_, ticks)| *ticks > 0)
            .map(|(name, ticks)| (name, seconds(ticks)))
            .collect();
        by_process.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Some(CpuUse {
            core_seconds: seconds(busy),
            wall,
            cores,
            by_process,
        })
    }
}

/// `pid → (comm, utime + stime)` of every process now.
fn processes() -> HashMap<u32, (String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some((pid, parse_process(&stat)?))
    })
    .collect()
}

/// `(comm, utime + stime)` from a `/proc/<pid>/stat` line. The name is in parentheses and may
/// hold spaces and parentheses itself, so the fields are counted from the last `)`.
fn parse_process(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime ...
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

impl CpuUse {
    /// Milliseconds of CPU per operation, when there were `operations`.
    pub fn ms_per(&self, operations: u64) -> f64 {
        1000.0 * self.core_seconds / operations.max(1) as f64
    }

    /// The share of the machine's cores that were busy.
    pub fn busy_share(&self) -> f64 {
        self.core_seconds / (self.cores as f64 * self.wall.as_secs_f64()).max(f64::EPSILON)
    }

    /// The most operations a second the machine's cores could do at `ms_per` each.
    pub fn most_per_second(&self, ms_per: f64) -> f64 {
        if ms_per > 0.0 {
            self.cores as f64 * 1000.0 / ms_per
        } else {
            0.0
        }
    }
}

/// `(busy, total)` jiffies from the aggregate `cpu` line: idle and iowait are not busy; guest time
/// is already inside user and nice.
fn parse(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 5 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields[4];
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_everything_but_idle_and_iowait() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 5 50 800 20 3 7 0 40 0\ncpu0 50 2 25 400 10 1 3 0 20 0\n";
        assert_eq!(parse(stat), Some((165, 985)));
        assert_eq!(parse("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_process_name_may_hold_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 170 30 0 0 20 0 4 0";
        assert_eq!(parse_process(stat), Some(("tokio (rt) 1".to_owned(), 200)));
        assert_eq!(parse_process("4242 (cut"), None);
    }

    #[test]
    fn this_process_is_seen_spending_what_it_spends() {
        let me = std::process::id();
        let own_ticks = || {
            processes()
                .get(&me)
                .map(|(_, t)| *t)
                .expect("own /proc entry")
        };
        let clock = CpuClock::now().expect("/proc/stat on Linux");
        // Spin until this process has spent 0.3 s of CPU (ticks are 10 ms), however busy the
        // machine is.
        let (start, started) = (own_ticks(), Instant::now());
        let mut x = 0u64;
        while own_ticks() < start + 30 && started.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let names = HashMap::from([(me, "this test".to_owned())]);
        let spent = clock.since(&names).expect("counters moved");
        let mine = spent
            .by_process
            .iter()
            .find(|(name, _)| name == "this test")
            .map(|(_, s)| *s)
            .expect("this process is listed under the name given");
        // Other tests may run in this process meanwhile: at least what it spun, never more
        // than the machine spent.
        assert!(mine >= 0.25, "spent {mine} s");
        assert!(
            mine <= spent.core_seconds + 0.05,
            "{mine} > {}",
            spent.core_seconds
        );
    }

    #[test]
    fn cost_per_operation_and_the_most_the_cores_allow() {
        let spent = CpuUse {
            core_seconds: 1.5,
            wall: Duration::from_secs(1),
            cores: 2,
            by_process: Vec::new(),
        };
        assert_eq!(spent.ms_per(30), 50.0);
        assert_eq!(spent.busy_share(), 0.75);
        assert_eq!(spent.most_per_second(50.0), 40.0);
    }
}
