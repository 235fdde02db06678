//! Payment's SQL: wallets, payment's record of each reservation, and the ledger of movements. A
//! command reads the wallet and the record inside its unit of work, and its balance change, ledger
//! lines and events commit together. The database enforces the money rules on its own as well:
//! balances are updated only if they stay non-negative, and the ledger holds at most one debit
//! and one refund per reservation. Runs on SQLite and PostgreSQL alike.

use tanda_catalog::flight::{self, PaymentFailed, PaymentRefunded, PaymentSucceeded};
use tanda_core::db::Tx;
use tanda_core::db::{Migration, StoredResponse};
use tanda_core::id::{ClientId, new_id};
use tanda_core::sql::{Executor, Row, query};
use tanda_core::{Db, DbError, Envelope, Uow};

use crate::Error;
use crate::domain::{
    self, Account, Change, Command, Deposit, INSUFFICIENT_BALANCE, Movement, MovementKind, Payment,
    State, Status, WalletEvent,
};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "accounts, payments and movements",
    sql: "CREATE TABLE accounts (
            user_id VARCHAR(64) PRIMARY KEY,
            balance BIGINT NOT NULL CHECK (balance >= 0),
            version BIGINT NOT NULL);
        CREATE TABLE payments (
            reservation_id VARCHAR(200) PRIMARY KEY,
            user_id VARCHAR(64) NOT NULL,
            status VARCHAR(16) NOT NULL,
            amount BIGINT,
            updated_at BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE TABLE movements (
            movement_id VARCHAR(64) PRIMARY KEY,
            user_id VARCHAR(64) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            amount BIGINT NOT NULL,
            reservation_id VARCHAR(200),
            balance_after BIGINT NOT NULL,
            created_at BIGINT NOT NULL);
        CREATE UNIQUE INDEX movements_once_per_reservation ON movements (reservation_id, kind);
        CREATE INDEX movements_by_user ON movements (user_id, created_at)",
}];

/// Idempotency-Key scope of `POST /accounts/{userId}/deposit`.
const DEPOSIT_SCOPE: &str = "POST /accounts/deposit";

/// A creating request's Idempotency-Key and the request it names.
#[derive(Clone, Copy)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request: &'a serde_json::Value,
}

pub enum Deposited {
    New(Account),
    /// The key was used before: its first response, and nothing was deposited.
    Replayed(StoredResponse),
}

/// Deposits into `user`'s wallet, unless the idempotency key was already used; `response` is the
/// answer kept for the key, in the same unit of work as the deposit.
pub async fn deposit(
    db: &Db,
    user: &ClientId,
    deposit: Deposit,
    idempotency: Option<Idempotency<'_>>,
    response: fn(&Account) -> serde_json::Value,
) -> Result<Deposited, Error> {
    let mut uow = db.begin().await?;
    if let Some(i) = idempotency
        && let Some(first) = uow
            .idempotent_response(DEPOSIT_SCOPE, i.key, i.request)
            .await?
    {
        return Ok(Deposited::Replayed(first));
    }
    let state = execute(&mut uow, user, Command::Deposit(deposit), None).await?;
    if let Some(i) = idempotency {
        let body = response(&state.account);
        uow.save_idempotent_response(DEPOSIT_SCOPE, i.key, i.request, 200, &body)
            .await?;
    }
    uow.commit().await?;
    Ok(Deposited::New(state.account))
}

/// Runs `command` inside `uow`: reads the wallet and (for a reservation's command) payment's
/// record of the reservation, decides, and saves the outcome with its ledger lines and the events
/// it publishes (`cause` is the event being reacted to, if any). A reservation's money moves on
/// the wallet that first paid for it or answered it; `user` is the wallet otherwise.
pub async fn execute(
    uow: &mut Uow,
    user: &ClientId,
    command: Command,
    cause: Option<&Envelope>,
) -> Result<State, Error> {
    let payment = match command.reservation_id() {
        Some(id) => fetch_payment(uow.conn(), id).await?,
        None => None,
    };
    let user = payment.as_ref().map_or(user, |p| &p.user_id);
    let account = fetch_account(uow.conn(), user)
        .await?
        .unwrap_or_else(|| Account::empty(user.clone()));
    let mut state = State { account, payment };
    let events = domain::decide(&state, command, uow.now())?;
    let before = state.clone();
    let mut movements = Vec::new();
    let mut announcements = Vec::new();
    for event in &events {
        domain::apply(&mut state, event);
        announcements.extend(announcement(&state, event, cause));
        if let Some((kind, amount)) = event.change.movement() {
            movements.push(Movement {
                movement_id: new_id(),
                user_id: state.account.user_id.clone(),
                kind,
                amount,
                reservation_id: event.change.reservation_id().map(str::to_owned),
                balance_after: state.account.balance,
                at: event.at,
            });
        }
    }
    if state.account.balance != before.account.balance {
        save_account(uow.conn(), &state.account, before.account.balance).await?;
        state.account.version += 1;
    }
    if let Some(payment) = &mut state.payment
        && before.payment.as_ref() != Some(payment)
    {
        save_payment(uow.conn(), payment).await?;
        payment.version += 1;
    }
    for movement in &movements {
        insert_movement(uow.conn(), movement).await?;
    }
    for envelope in &announcements {
        uow.publish(envelope).await?;
    }
    Ok(state)
}

/// A user's wallet, empty if never used (for `GET`s).
pub async fn account(db: &Db, user: &ClientId) -> Result<Account, DbError> {
    Ok(fetch_account(db.reader(), user)
        .await?
        .unwrap_or_else(|| Account::empty(user.clone())))
}

/// A user's ledger, newest first.
pub async fn movements(db: &Db, user: &ClientId) -> Result<Vec<Movement>, DbError> {
    let rows = query(
        "SELECT movement_id, user_id, kind, amount, reservation_id, balance_after, created_at
         FROM movements WHERE user_id = $1 ORDER BY created_at DESC, movement_id DESC",
    )
    .bind(user.as_str())
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(movement_from_row).collect::<Result<_, _>>()
}

/// The event telling other services what `event` (just applied to `state`) did, if they need to
/// know: deposits are the user's own business. A cancel is always answered, with 0 when nothing was debited.
fn announcement(state: &State, event: &WalletEvent, cause: Option<&Envelope>) -> Option<Envelope> {
    let user_id = state.account.user_id.to_string();
    let balance = state.account.balance;
    let at = event.at;
    let refunded = |reservation_id: &String, amount: i64| {
        let e = PaymentRefunded {
            reservation_id: reservation_id.clone(),
            user_id: user_id.clone(),
            amount,
            balance,
        };
        Envelope::new(&e, reservation_id, cause, at)
    };
    Some(match &event.change {
        Change::Deposited { amount } => {
            let e = flight::Deposited {
                user_id: user_id.clone(),
                amount: *amount,
                balance,
            };
            Envelope::new(&e, &user_id, cause, at)
        }
        Change::Debited {
            reservation_id,
            amount,
        } => {
            let e = PaymentSucceeded {
                reservation_id: reservation_id.clone(),
                user_id: user_id.clone(),
                amount: *amount,
                balance,
            };
            Envelope::new(&e, reservation_id, cause, at)
        }
        Change::Declined {
            reservation_id,
            price,
        } => {
            let e = PaymentFailed {
                reservation_id: reservation_id.clone(),
                user_id: user_id.clone(),
                amount: *price,
                balance,
                reason: INSUFFICIENT_BALANCE.to_owned(),
            };
            Envelope::new(&e, reservation_id, cause, at)
        }
        Change::Refunded {
            reservation_id,
            amount,
        } => refunded(reservation_id, *amount),
        Change::Closed { reservation_id } => refunded(reservation_id, 0),
    })
}

async fn fetch_account<'e, E>(executor: E, user: &ClientId) -> Result<Option<Account>, DbError>
where
    E: Executor<'e>,
{
    let row = query("SELECT balance, version FROM accounts WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_optional(executor)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Account {
        user_id: user.clone(),
        balance: row.try_get("balance")?,
        version: row.try_get("version")?,
    }))
}

/// Saves the wallet's new balance if nobody changed it since it was read. The update is also
/// conditional on the balance covering a debit, so no interleaving can ever take it below zero.
async fn save_account(
    conn: &mut Tx,
    account: &Account,
    balance_before: i64,
) -> Result<(), DbError> {
    let delta = account.balance - balance_before;
    let done = if account.version == 0 {
        query(
            "INSERT INTO accounts (user_id, balance, version) VALUES ($1, $2, 1)
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(account.user_id.as_str())
        .bind(account.balance)
        .execute(conn)
        .await?
    } else {
        query(
            "UPDATE accounts SET balance = balance + $1, version = version + 1
             WHERE user_id = $2 AND version = $3 AND balance >= $4",
        )
        .bind(delta)
        .bind(account.user_id.as_str())
        .bind(account.version)
        .bind(-delta)
        .execute(conn)
        .await?
    };
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("account {}", account.user_id)));
    }
    Ok(())
}

async fn fetch_payment(conn: &mut Tx, reservation_id: &str) -> Result<Option<Payment>, DbError> {
    let row = query(
        "SELECT reservation_id, user_id, status, amount, updated_at, version FROM payments
         WHERE reservation_id = $1",
    )
    .bind(reservation_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(payment_from_row).transpose()
}

/// Stores a new record, or updates one nobody changed since it was read.
async fn save_payment(conn: &mut Tx, payment: &Payment) -> Result<(), DbError> {
    let status = payment.status;
    let done = if payment.version == 0 {
        query(
            "INSERT INTO payments (reservation_id, user_id, status, amount, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(&payment.reservation_id)
        .bind(payment.user_id.as_str())
        .bind(status.as_str())
        .bind(status.amount())
        .bind(payment.updated_at)
        .execute(conn)
        .await?
    } else {
        query(
            "UPDATE payments SET status = $1, amount = $2, updated_at = $3, version = version + 1
             WHERE reservation_id = $4 AND version = $5",
        )
        .bind(status.as_str())
        .bind(status.amount())
        .bind(payment.updated_at)
        .bind(&payment.reservation_id)
        .bind(payment.version)
        .execute(conn)
        .await?
    };
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!(
            "payment of reservation {}",
            payment.reservation_id
        )));
    }
    Ok(())
}

/// Appends a ledger line. A second debit or refund for one reservation is refused by the
/// database's unique index: it can only mean a concurrent command got there first.
async fn insert_movement(conn: &mut Tx, m: &Movement) -> Result<(), DbError> {
    let done = query(
        "INSERT INTO movements
             (movement_id, user_id, kind, amount, reservation_id, balance_after, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (reservation_id, kind) DO NOTHING",
    )
    .bind(&m.movement_id)
    .bind(m.user_id.as_str())
    .bind(m.kind.as_str())
    .bind(m.amount)
    .bind(m.reservation_id.as_deref())
    .bind(m.balance_after)
    .bind(m.at)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!(
            "{} of reservation {}",
            m.kind.as_str(),
            m.reservation_id.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Stored rows were parsed on the way in, so a failure here means the table was changed behind
/// the service's back.
fn corrupt(what: &str) -> DbError {
    DbError::Decode(format!("stored row has an invalid {what}"))
}

fn user_id(row: &Row) -> Result<ClientId, DbError> {
    ClientId::parse(&row.try_get::<String, _>("user_id")?).map_err(|_| corrupt("user id"))
}

fn payment_from_row(row: &Row) -> Result<Payment, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Payment {
        reservation_id: row.try_get("reservation_id")?,
        user_id: user_id(row)?,
        status: Status::from_parts(&status, row.try_get("amount")?)
            .ok_or_else(|| corrupt("status"))?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn movement_from_row(row: &Row) -> Result<Movement, DbError> {
    let kind: String = row.try_get("kind")?;
    Ok(Movement {
        movement_id: row.try_get("movement_id")?,
        user_id: user_id(row)?,
        kind: MovementKind::parse(&kind).ok_or_else(|| corrupt("movement kind"))?,
        amount: row.try_get("amount")?,
        reservation_id: row.try_get("reservation_id")?,
        balance_after: row.try_get("balance_after")?,
        at: row.try_get("created_at")?,
    })
}
