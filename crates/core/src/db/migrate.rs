//! Migrations: the core tables every service database has, then the service's own, each once.

use super::*;

/// A schema step of one service. Applied once, in order, recorded in `schema_migrations`.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the text, as kept in `schema_migrations.checksum` once applied.
    pub(super) fn checksum(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.sql.as_bytes()))
    }
}

impl Db {
    /// Applies the core tables (outbox, inbox, cursors, timers, dead letters, idempotency) and then
    /// the service's own migrations, each once, each in a transaction of its own. Instances that
    /// start together take turns (on PostgreSQL each transaction first takes an advisory lock of
    /// the database's migrations), and each applied migration's checksum is kept: a migration
    /// whose text changed after it was applied stops the start, rather than leave the schema
    /// silently different from what the code says.
    pub async fn migrate(&self, service: &[Migration]) -> Result<(), DbError> {
        let mut uow = self.begin_migration().await?;
        query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at BIGINT NOT NULL,
                 checksum VARCHAR(64))",
        )
        .execute(uow.conn())
        .await?;
        self.add_checksum_column(&mut uow).await?;
        uow.commit().await?;
        let core = match self.dialect() {
            Dialect::Sqlite => CORE_SQLITE,
            Dialect::Postgres => CORE_POSTGRES,
        };
        for m in core.iter().chain(service) {
            let mut uow = self.begin_migration().await?;
            let checksum = m.checksum();
            let applied = query("SELECT checksum FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(uow.conn())
                .await?;
            match applied.map(|row| row.get::<Option<String>, _>("checksum")) {
                Some(Some(kept)) if kept == checksum => continue,
                Some(Some(_)) => {
                    return Err(DbError::MigrationChanged {
                        version: m.version,
                        name: m.name.to_owned(),
                    });
                }
                // Applied before checksums were kept: this text is taken as the one applied.
                Some(None) => {
                    query("UPDATE schema_migrations SET checksum = $1 WHERE version = $2")
                        .bind(checksum)
                        .bind(m.version)
                        .execute(uow.conn())
                        .await?;
                }
                None => {
                    crate::sql::execute_script(m.sql, uow.conn()).await?;
                    let now = uow.now();
                    query(
                        "INSERT INTO schema_migrations (version, name, applied_at, checksum)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now)
                    .bind(checksum)
                    .execute(uow.conn())
                    .await?;
                }
            }
            uow.commit().await?;
        }
        Ok(())
    }

    /// A unit of work for a migration: on PostgreSQL, one at a time among every instance on this
    /// database (a transaction-scoped advisory lock, released by its commit or rollback).
    pub(super) async fn begin_migration(&self) -> Result<Uow, DbError> {
        let mut uow = self.begin().await?;
        if self.dialect() == Dialect::Postgres {
            let key = stable_hash(&format!("{}/migrations", self.name())) as i64;
            query("SELECT pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(uow.conn())
                .await?;
        }
        Ok(uow)
    }

    /// `schema_migrations.checksum`, for a table made before it existed.
    pub(super) async fn add_checksum_column(&self, uow: &mut Uow) -> Result<(), DbError> {
        match self.dialect() {
            Dialect::Postgres => {
                query(
                    "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum VARCHAR(64)",
                )
                .execute(uow.conn())
                .await?;
            }
            Dialect::Sqlite => {
                let has: i64 = query_scalar(
                    "SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'checksum'",
                )
                .fetch_one(uow.conn())
                .await?;
                if has == 0 {
                    query("ALTER TABLE schema_migrations ADD COLUMN checksum VARCHAR(64)")
                        .execute(uow.conn())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// Core tables every service database has; only the outbox sequence column differs by engine.
macro_rules! core_tables {
    ($outbox_seq:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS outbox (
                seq ", $outbox_seq, ", id VARCHAR(64) NOT NULL UNIQUE, type VARCHAR(200) NOT NULL,
                aggregate_id VARCHAR(200) NOT NULL, envelope TEXT NOT NULL, created_at BIGINT NOT NULL,
                published_at BIGINT);
            CREATE TABLE IF NOT EXISTS inbox (
                consumer VARCHAR(100) NOT NULL, event_id VARCHAR(64) NOT NULL, processed_at BIGINT NOT NULL,
                PRIMARY KEY (consumer, event_id));
            CREATE TABLE IF NOT EXISTS consumer_cursors (
                consumer VARCHAR(100) NOT NULL, source VARCHAR(100) NOT NULL, position BIGINT NOT NULL,
                PRIMARY KEY (consumer, source));
            CREATE TABLE IF NOT EXISTS timers (
                id VARCHAR(64) PRIMARY KEY, kind VARCHAR(100) NOT NULL, key VARCHAR(200) NOT NULL,
                fire_at BIGINT NOT NULL, payload TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS timers_fire_at ON timers (fire_at);
            CREATE UNIQUE INDEX IF NOT EXISTS timers_kind_key ON timers (kind, key);
            CREATE TABLE IF NOT EXISTS dead_letters (
                id VARCHAR(64) PRIMARY KEY, consumer VARCHAR(100) NOT NULL, event_id VARCHAR(64) NOT NULL,
                type VARCHAR(200) NOT NULL, envelope TEXT NOT NULL, error TEXT NOT NULL,
                attempts INTEGER NOT NULL, parked_at BIGINT NOT NULL, redriven_at BIGINT);
            CREATE TABLE IF NOT EXISTS idempotency (
                scope VARCHAR(100) NOT NULL, key VARCHAR(255) NOT NULL, request_hash VARCHAR(64) NOT NULL,
                status INTEGER NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (scope, key))"
        )
    };
}

/// The row `Db::writable` overwrites.
pub(super) const READINESS_PROBE: &str = "CREATE TABLE IF NOT EXISTS readiness_probe (id INTEGER PRIMARY KEY, checked_at BIGINT NOT NULL)";

/// The operator's pause switches (`consumer/pauses.rs`): a row while a consumer is paused.
const PAUSED_CONSUMERS: &str = "CREATE TABLE IF NOT EXISTS paused_consumers (consumer VARCHAR(100) PRIMARY KEY, paused_at BIGINT NOT NULL)";

/// The core's own migrations count down from 0; a service's count up from 1.
pub(super) const CORE_SQLITE: &[Migration] = &[
    Migration {
        version: 0,
        name: "core",
        sql: core_tables!("INTEGER PRIMARY KEY AUTOINCREMENT"),
    },
    // All-in-one, consumers tail the outbox itself and nothing marks rows published.
    Migration {
        version: -1,
        name: "core: outbox rows not yet relayed",
        sql: "",
    },
    Migration {
        version: -2,
        name: "core: readiness probe",
        sql: READINESS_PROBE,
    },
    Migration {
        version: -3,
        name: "core: paused consumers",
        sql: PAUSED_CONSUMERS,
    },
];

pub(super) const CORE_POSTGRES: &[Migration] = &[
    Migration {
        version: 0,
        name: "core",
        sql: core_tables!("BIGSERIAL PRIMARY KEY"),
    },
    // The relay looks for what is left to publish; without this it reads past every published
    // row housekeeping still keeps, on every wake-up.
    Migration {
        version: -1,
        name: "core: outbox rows not yet relayed",
        sql: "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
    },
    Migration {
        version: -2,
        name: "core: readiness probe",
        sql: READINESS_PROBE,
    },
    Migration {
        version: -3,
        name: "core: paused consumers",
        sql: PAUSED_CONSUMERS,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Core's migrations and a service's share one `schema_migrations` table, keyed by version: a
    /// service numbers its own from 1, so core's must never be positive, or a service's migration
    /// of the same number would be taken for applied (and its checksum for changed).
    #[test]
    fn core_migrations_keep_to_versions_no_service_uses() {
        for m in CORE_SQLITE.iter().chain(CORE_POSTGRES) {
            assert!(m.version <= 0, "{} has version {}", m.name, m.version);
        }
        let mut versions: Vec<i64> = CORE_SQLITE.iter().map(|m| m.version).collect();
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), CORE_SQLITE.len(), "each version once");
    }
}
