//! Where the simulated card network keeps the charges it made. A real processor keeps its own
//! records, apart from its merchants'; the simulation keeps them in a table of pay's database
//! (`card_network_charges`), because that database is what every topology has, durable and
//! shared by every instance of pay. The network writes there in a unit of its own, committed
//! before it answers and never part of pay's: so a charge outlives pay crashing before it stores
//! the answer, and the retry under the same key (the dispatch id) gets that charge back. The mode
//! an operator set last is kept there too (`card_network_mode`, one row), and read at each charge:
//! every instance of pay, and every restart, behaves as it says.

use std::sync::Arc;

use async_trait::async_trait;
use tanda_cardnet::{CardNetwork, Charge, ChargeLog, LogUnavailable, NetworkMode};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, DbError};

/// The card network, keeping its charges in `db` (pay's, migrated).
pub fn card_network(db: &Db, mode: NetworkMode) -> Arc<CardNetwork> {
    Arc::new(CardNetwork::new(mode, Arc::new(TableLog(db.clone()))))
}

struct TableLog(Db);

impl TableLog {
    async fn keep(&self, key: &str, charge: Charge) -> Result<Charge, DbError> {
        let mut uow = self.0.begin().await?;
        let now = uow.now();
        query(
            "INSERT INTO card_network_charges (idempotency_key, charge_id, last4, amount, charged_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(key)
        .bind(&charge.charge_id)
        .bind(&charge.last4)
        .bind(charge.amount)
        .bind(now)
        .execute(uow.conn())
        .await?;
        let kept = query(
            "SELECT charge_id, last4, amount FROM card_network_charges WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(uow.conn())
        .await?;
        uow.commit().await?;
        Ok(Charge {
            charge_id: kept.try_get("charge_id")?,
            last4: kept.try_get("last4")?,
            amount: kept.try_get("amount")?,
        })
    }
}

#[async_trait]
impl ChargeLog for TableLog {
    async fn record(&self, key: &str, charge: Charge) -> Result<Charge, LogUnavailable> {
        self.keep(key, charge)
            .await
            .map_err(|e| LogUnavailable(e.to_string()))
    }

    async fn find(&self, key: &str) -> Result<Option<Charge>, LogUnavailable> {
        let found = query(
            "SELECT charge_id, last4, amount FROM card_network_charges WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(self.0.reader())
        .await
        .map_err(|e| LogUnavailable(e.to_string()))?;
        found
            .map(|row| {
                Ok(Charge {
                    charge_id: row.try_get("charge_id")?,
                    last4: row.try_get("last4")?,
                    amount: row.try_get("amount")?,
                })
            })
            .transpose()
            .map_err(|e: DbError| LogUnavailable(e.to_string()))
    }

    async fn count(&self) -> Result<usize, LogUnavailable> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM card_network_charges")
            .fetch_one(self.0.reader())
            .await
            .map_err(|e| LogUnavailable(e.to_string()))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn mode(&self) -> Result<Option<NetworkMode>, LogUnavailable> {
        let unavailable = |e: &dyn std::fmt::Display| LogUnavailable(e.to_string());
        let kept: Option<String> = query_scalar("SELECT mode FROM card_network_mode WHERE id = 1")
            .fetch_optional(self.0.reader())
            .await
            .map_err(|e| unavailable(&e))?;
        kept.map(|json| serde_json::from_str(&json).map_err(|e| unavailable(&e)))
            .transpose()
    }

    async fn keep_mode(&self, mode: NetworkMode) -> Result<(), LogUnavailable> {
        let json = serde_json::to_string(&mode).map_err(|e| LogUnavailable(e.to_string()))?;
        self.keep_mode_json(&json)
            .await
            .map_err(|e| LogUnavailable(e.to_string()))
    }
}

impl TableLog {
    async fn keep_mode_json(&self, json: &str) -> Result<(), DbError> {
        let mut uow = self.0.begin().await?;
        let now = uow.now();
        query(
            "INSERT INTO card_network_mode (id, mode, set_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, set_at = excluded.set_at",
        )
        .bind(json)
        .bind(now)
        .execute(uow.conn())
        .await?;
        uow.commit().await
    }
}
