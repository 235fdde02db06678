//! The ceilings each figure is set against, measured in the same run: how fast this machine
//! commits single-row transactions to SQLite (with Tanda's own connection settings) and to
//! PostgreSQL (pgbench).

// The SQLite ceiling is measured through SQLite's C API directly, with nothing of Tanda between.
#![expect(unsafe_code)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tanda_core::db::Durability;
use tanda_core::sql::query;
use tanda_core::{Db, SystemClock};

use super::cpu::CpuClock;

/// The raw commit ceiling: single-row insert transactions per second through SQLite's own C API
/// (prepared statements, no driver, no async), on a fresh file in WAL mode with the given
/// `synchronous`. The services link this same SQLite.
pub fn sqlite_raw_commits(durability: Durability, duration: Duration) -> anyhow::Result<f64> {
    use libsqlite3_sys as ffi;
    use std::ffi::{CStr, CString};
    use std::ptr;

    let dir = tempfile::tempdir()?;
    let path = CString::new(dir.path().join("raw.db").display().to_string())?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let check = |db: *mut ffi::sqlite3, rc: i32, what: &str| -> anyhow::Result<()> {
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
            return Ok(());
        }
        // SAFETY: `db` is a handle sqlite3_open gave us; the message lives until the next call.
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
        bail!("{what}: SQLite error {rc}: {}", message.to_string_lossy())
    };
    // SAFETY: plain use of the C API on one thread: every handle comes from SQLite, is used only
    // while open, and is finalized/closed before returning.
    unsafe {
        let mut db = ptr::null_mut();
        check(db, ffi::sqlite3_open(path.as_ptr(), &mut db), "open")?;
        let setup = CString::new(format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE rows (id INTEGER PRIMARY KEY, v BIGINT NOT NULL);"
        ))?;
        let rc = ffi::sqlite3_exec(db, setup.as_ptr(), None, ptr::null_mut(), ptr::null_mut());
        check(db, rc, "setup")?;
        let mut statements = Vec::new();
        for sql in [
            "BEGIN IMMEDIATE",
            "INSERT INTO rows (v) VALUES (?1)",
            "COMMIT",
        ] {
            let sql = CString::new(sql)?;
            let mut stmt = ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut());
            check(db, rc, "prepare")?;
            statements.push(stmt);
        }
        let started = Instant::now();
        let mut n: i64 = 0;
        let outcome = loop {
            if started.elapsed() >= duration {
                break Ok(n as f64 / started.elapsed().as_secs_f64());
            }
            ffi::sqlite3_bind_int64(statements[1], 1, n);
            let step = statements.iter().try_for_each(|stmt| {
                let rc = ffi::sqlite3_step(*stmt);
                ffi::sqlite3_reset(*stmt);
                check(db, rc, "insert")
            });
            if let Err(e) = step {
                break Err(e);
            }
            n += 1;
        };
        for stmt in statements {
            ffi::sqlite3_finalize(stmt);
        }
        ffi::sqlite3_close(db);
        outcome
    }
}

/// Single-row insert transactions per second, one after another, through Tanda's own database
/// layer (`Db`: one writer connection behind the write gate, statements prepared and cached), on a fresh SQLite file opened
/// exactly as a service opens its own.
pub async fn sqlite_commits(durability: Durability, duration: Duration) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_sqlite(dir.path(), "ceiling", durability, Arc::new(SystemClock)).await?;
    {
        let mut uow = db.begin().await?;
        query("CREATE TABLE rows (id VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)")
            .execute(uow.conn())
            .await?;
        uow.commit().await?;
    }
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < duration {
        let mut uow = db.begin().await?;
        query("INSERT INTO rows (id, v) VALUES ($1, $2)")
            .bind(tanda_core::id::new_id())
            .bind(n as i64)
            .execute(uow.conn())
            .await?;
        uow.commit().await?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// What pgbench measured: single-row inserts a second, and the machine's CPU per insert (pgbench
/// and PostgreSQL together).
pub struct Pgbench {
    pub rate: f64,
    pub cpu_ms_per_insert: Option<f64>,
}

/// pgbench's rate of single-row insert transactions on `postgres_url` (a scratch database is
/// created and dropped), with `clients` connections for `duration`.
pub fn pgbench_inserts(
    postgres_url: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Pgbench> {
    let database = format!("tanda_bench_{}", std::process::id());
    let psql = |sql: &str, db: &str| -> anyhow::Result<()> {
        let url = format!("{}/{db}", postgres_url.trim_end_matches('/'));
        let status = Command::new("psql")
            .args([url.as_str(), "-qAtc", sql])
            .status()
            .context("running psql (PostgreSQL's client)")?;
        if !status.success() {
            bail!("psql failed: {sql}");
        }
        Ok(())
    };
    psql(&format!("CREATE DATABASE {database}"), "postgres")?;
    let outcome = (|| {
        psql(
            "CREATE TABLE rows (id BIGSERIAL PRIMARY KEY, v BIGINT NOT NULL)",
            &database,
        )?;
        let script = tempfile::NamedTempFile::new()?;
        std::fs::write(script.path(), "INSERT INTO rows (v) VALUES (1);\n")?;
        let url = format!("{}/{database}", postgres_url.trim_end_matches('/'));
        let clock = CpuClock::now();
        let output = Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-f"])
            .arg(script.path())
            .args(["-c", &clients.to_string(), "-j", "2", "-T"])
            .arg(duration.as_secs().max(1).to_string())
            .arg(&url)
            .output()
            .context("running pgbench (apt-get install postgresql-contrib)")?;
        if !output.status.success() {
            bail!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let spent = clock.and_then(|c| c.since(&Default::default()));
        let text = String::from_utf8_lossy(&output.stdout);
        let rate = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .context("no tps in pgbench's report")?;
        let inserts = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|rest| rest.split('/').next()?.trim().parse::<u64>().ok());
        Ok(Pgbench {
            rate,
            cpu_ms_per_insert: spent.zip(inserts).map(|(spent, n)| spent.ms_per(n)),
        })
    })();
    let _ = psql(&format!("DROP DATABASE IF EXISTS {database}"), "postgres");
    outcome
}
