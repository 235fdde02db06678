//! Pay's SQL: payments keyed by their dispatch (UNIQUE, so a trip is charged at most once), and
//! the responses kept for `Idempotency-Key`s.

use tanda_core::db::StoredResponse;
use tanda_core::sql::{Executor, Row, query};
use tanda_core::{Db, DbError, Uow};

use crate::domain::Payment;

/// The scope of `POST /pays` idempotency keys.
const IDEMPOTENCY_SCOPE: &str = "pays";

fn payment(row: &Row) -> Result<Payment, DbError> {
    Ok(Payment {
        pay_id: row.try_get("pay_id")?,
        book_id: row.try_get("book_id")?,
        customer_id: row.try_get("customer_id")?,
        dispatch_id: row.try_get("dispatch_id")?,
        amount: row.try_get("amount")?,
        method: row.try_get("method")?,
        card_last4: row.try_get("card_last4")?,
        paid_at: row.try_get("paid_at")?,
    })
}

/// The payment of a trip, if it was paid.
pub async fn by_dispatch<'c>(
    conn: impl Executor<'c>,
    dispatch_id: &str,
) -> Result<Option<Payment>, DbError> {
    let row = query(
        "SELECT pay_id, book_id, customer_id, dispatch_id, amount, method, card_last4, paid_at
         FROM pays WHERE dispatch_id = $1",
    )
    .bind(dispatch_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(payment).transpose()
}

pub async fn by_id(db: &Db, pay_id: &str) -> Result<Option<Payment>, DbError> {
    let row = query(
        "SELECT pay_id, book_id, customer_id, dispatch_id, amount, method, card_last4, paid_at
         FROM pays WHERE pay_id = $1",
    )
    .bind(pay_id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(payment).transpose()
}

/// A booking's payments, oldest first.
pub async fn by_book(db: &Db, book_id: &str) -> Result<Vec<Payment>, DbError> {
    let rows = query(
        "SELECT pay_id, book_id, customer_id, dispatch_id, amount, method, card_last4, paid_at
         FROM pays WHERE book_id = $1 ORDER BY paid_at, pay_id",
    )
    .bind(book_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(payment).collect::<Result<_, _>>()
}

/// Notes, in a unit of its own, that the trip's card is about to be charged.
pub async fn note_card_attempt(db: &Db, dispatch_id: &str) -> Result<(), DbError> {
    let mut uow = db.begin().await?;
    let now = uow.now();
    query(
        "INSERT INTO card_attempts (dispatch_id, attempted_at) VALUES ($1, $2)
         ON CONFLICT (dispatch_id) DO NOTHING",
    )
    .bind(dispatch_id)
    .bind(now)
    .execute(uow.conn())
    .await?;
    uow.commit().await
}

/// Whether the trip's card was ever about to be charged.
pub async fn card_attempted(db: &Db, dispatch_id: &str) -> Result<bool, DbError> {
    let found = query("SELECT 1 AS one FROM card_attempts WHERE dispatch_id = $1")
        .bind(dispatch_id)
        .fetch_optional(db.reader())
        .await?;
    Ok(found.is_some())
}

/// Stores `payment` unless its trip already has one; true if this call stored it.
pub async fn insert(uow: &mut Uow, payment: &Payment) -> Result<bool, DbError> {
    let done = query(
        "INSERT INTO pays (pay_id, book_id, customer_id, dispatch_id, amount, method, card_last4,
                           paid_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dispatch_id) DO NOTHING",
    )
    .bind(&payment.pay_id)
    .bind(&payment.book_id)
    .bind(&payment.customer_id)
    .bind(&payment.dispatch_id)
    .bind(payment.amount)
    .bind(&payment.method)
    .bind(&payment.card_last4)
    .bind(payment.paid_at)
    .execute(uow.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The response first given for this `Idempotency-Key`, if any. Read through a unit of work
/// (rolled back) because that is where the core checks the key against the request.
pub async fn replay(
    db: &Db,
    key: &str,
    request: &serde_json::Value,
) -> Result<Option<StoredResponse>, DbError> {
    let mut uow = db.begin().await?;
    uow.idempotent_response(IDEMPOTENCY_SCOPE, key, request)
        .await
}

/// Keeps the response for this `Idempotency-Key` (the first one wins if two raced). The payment
/// itself is already idempotent per dispatch, so this need not share its unit of work: losing it
/// to a crash only turns a replayed 201 into a 200 with the same payment.
pub async fn remember(
    db: &Db,
    key: &str,
    request: &serde_json::Value,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), DbError> {
    let mut uow = db.begin().await?;
    if uow
        .idempotent_response(IDEMPOTENCY_SCOPE, key, request)
        .await?
        .is_none()
    {
        uow.save_idempotent_response(IDEMPOTENCY_SCOPE, key, request, status, body)
            .await?;
    }
    uow.commit().await
}
