//! Identity's SQL: accounts, and the events that tell other services of them (`AccountOpened`,
//! `LocaleChanged`), written in the same transaction as the change. Runs on SQLite and PostgreSQL
//! alike.

use tanda_catalog::identity::{AccountOpened, LocaleChanged};
use tanda_core::auth::Role;
use tanda_core::db::Migration;
use tanda_core::id::ClientId;
use tanda_core::sql::{Row, query};
use tanda_core::{Db, DbError, Envelope, Uow};

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
    Migration {
        version: 4,
        name: "accounts announced",
        // NULL: made before identity published `AccountOpened`; announced at the next start.
        sql: "ALTER TABLE accounts ADD COLUMN announced_at BIGINT",
    },
];

/// Stores a new account with its password hash and announces it (`AccountOpened`); false when
/// the user id is taken.
pub async fn insert(db: &Db, account: &NewAccount, password_hash: &str) -> Result<bool, DbError> {
    let mut uow = db.begin().await?;
    let now = uow.now();
    let inserted = query(
        "INSERT INTO accounts (user_id, password_hash, name, phone, role, locale, created_at,
                               announced_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(account.user_id.as_str())
    .bind(password_hash)
    .bind(account.name.as_str())
    .bind(account.phone.as_str())
    .bind(account.role.as_str())
    .bind(account.locale.as_str())
    .bind(now)
    .bind(now)
    .execute(uow.conn())
    .await?
    .rows_affected()
        == 1;
    if inserted {
        announce(
            &mut uow,
            account.user_id.as_str(),
            account.role,
            account.locale,
        )
        .await?;
    }
    uow.commit().await?;
    Ok(inserted)
}

/// Publishes `AccountOpened` for every account made before identity published it, once each
/// (instances starting together announce each account once: the update decides who does).
pub async fn announce_earlier_accounts(db: &Db) -> Result<usize, DbError> {
    let rows = query("SELECT user_id, role, locale FROM accounts WHERE announced_at IS NULL")
        .fetch_all(db.reader())
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut uow = db.begin().await?;
    let now = uow.now();
    let mut announced = 0;
    for row in &rows {
        let user_id: String = row.try_get("user_id")?;
        let decode = |what: &str| DbError::Decode(format!("account {user_id}: {what}"));
        let role = Role::parse(&row.try_get::<String, _>("role")?).ok_or_else(|| decode("role"))?;
        let locale =
            Locale::parse(&row.try_get::<String, _>("locale")?).ok_or_else(|| decode("locale"))?;
        let claimed = query(
            "UPDATE accounts SET announced_at = $1 WHERE user_id = $2 AND announced_at IS NULL",
        )
        .bind(now)
        .bind(user_id.as_str())
        .execute(uow.conn())
        .await?
        .rows_affected()
            == 1;
        if claimed {
            announce(&mut uow, &user_id, role, locale).await?;
            announced += 1;
        }
    }
    uow.commit().await?;
    Ok(announced)
}

async fn announce(uow: &mut Uow, user_id: &str, role: Role, locale: Locale) -> Result<(), DbError> {
    let event = AccountOpened {
        user_id: user_id.to_owned(),
        role: role.as_str().to_owned(),
        locale: locale.as_str().to_owned(),
    };
    let at = uow.now();
    uow.publish(&Envelope::new(&event, user_id, None, at)).await
}

const FIND: &str = "SELECT user_id, password_hash, role, locale FROM accounts WHERE user_id = $1";

pub async fn find(db: &Db, user_id: &ClientId) -> Result<Option<Account>, DbError> {
    let row = query(FIND)
        .bind(user_id.as_str())
        .fetch_optional(db.reader())
        .await?;
    row.map(|row| account(user_id, &row)).transpose()
}

fn account(user_id: &ClientId, row: &Row) -> Result<Account, DbError> {
    let decode = |what: &str| DbError::Decode(format!("account {user_id}: {what}"));
    Ok(Account {
        user_id: ClientId::parse(&row.get::<String, _>("user_id"))
            .map_err(|_| decode("user_id"))?,
        password_hash: row.get("password_hash"),
        role: Role::parse(&row.get::<String, _>("role")).ok_or_else(|| decode("role"))?,
        locale: Locale::parse(&row.get::<String, _>("locale")).ok_or_else(|| decode("locale"))?,
    })
}

/// Sets the language of `user_id`'s account, publishing `LocaleChanged` when it changes; the
/// account as it is now, or `None` when there is no such account.
pub async fn set_locale(
    db: &Db,
    user_id: &ClientId,
    locale: Locale,
) -> Result<Option<Account>, DbError> {
    let mut uow = db.begin().await?;
    // The update comes first, so that concurrent changes of one account take turns (its row
    // lock) and publish in the order they commit.
    let changed = query("UPDATE accounts SET locale = $1 WHERE user_id = $2 AND locale <> $1")
        .bind(locale.as_str())
        .bind(user_id.as_str())
        .execute(uow.conn())
        .await?
        .rows_affected()
        == 1;
    let Some(row) = query(FIND)
        .bind(user_id.as_str())
        .fetch_optional(uow.conn())
        .await?
    else {
        return Ok(None);
    };
    let account = account(user_id, &row)?;
    if changed {
        let event = LocaleChanged {
            user_id: user_id.to_string(),
            locale: locale.as_str().to_owned(),
        };
        let at = uow.now();
        uow.publish(&Envelope::new(&event, user_id.as_str(), None, at))
            .await?;
    }
    uow.commit().await?;
    Ok(Some(account))
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
