//! Identity's SQL: accounts. Runs on SQLite and PostgreSQL alike.

use tanda_core::auth::Role;
use tanda_core::db::Migration;
use tanda_core::id::ClientId;
use tanda_core::sql::query;
use tanda_core::{Db, DbError};

use crate::account::{Account, Locale, NewAccount};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts",
        sql: "CREATE TABLE accounts (
                  user_id VARCHAR(64) PRIMARY KEY,
                  password_hash VARCHAR(200) NOT NULL,
                  name VARCHAR(400) NOT NULL,
                  phone VARCHAR(20) NOT NULL,
                  role VARCHAR(16) NOT NULL,
                  locale VARCHAR(8) NOT NULL,
                  created_at BIGINT NOT NULL)",
    },
    crate::keys::MIGRATION,
    crate::claims::MIGRATION,
];

/// Stores a new account with its password hash; false when the user id is taken.
pub async fn insert(db: &Db, account: &NewAccount, password_hash: &str) -> Result<bool, DbError> {
    let mut uow = db.begin().await?;
    let now = uow.now();
    let inserted = query(
        "INSERT INTO accounts (user_id, password_hash, name, phone, role, locale, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(account.user_id.as_str())
    .bind(password_hash)
    .bind(account.name.as_str())
    .bind(account.phone.as_str())
    .bind(account.role.as_str())
    .bind(account.locale.as_str())
    .bind(now)
    .execute(uow.conn())
    .await?
    .rows_affected()
        == 1;
    uow.commit().await?;
    Ok(inserted)
}

pub async fn find(db: &Db, user_id: &ClientId) -> Result<Option<Account>, DbError> {
    let row = query("SELECT user_id, password_hash, role, locale FROM accounts WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_optional(db.reader())
        .await?;
    row.map(|row| {
        let decode = |what: &str| DbError::Decode(format!("account {user_id}: {what}"));
        Ok(Account {
            user_id: ClientId::parse(&row.get::<String, _>("user_id"))
                .map_err(|_| decode("user_id"))?,
            password_hash: row.get("password_hash"),
            role: Role::parse(&row.get::<String, _>("role")).ok_or_else(|| decode("role"))?,
            locale: Locale::parse(&row.get::<String, _>("locale"))
                .ok_or_else(|| decode("locale"))?,
        })
    })
    .transpose()
}

/// Sets an account's password hash (the operator's, from its configured password).
pub async fn set_password(db: &Db, user_id: &ClientId, hash: &str) -> Result<(), DbError> {
    let mut uow = db.begin().await?;
    query("UPDATE accounts SET password_hash = $1 WHERE user_id = $2")
        .bind(hash)
        .bind(user_id.as_str())
        .execute(uow.conn())
        .await?;
    uow.commit().await
}
