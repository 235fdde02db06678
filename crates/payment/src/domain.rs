//! A user's wallet and what it did for each flight reservation, as a pure state machine: deposits,
//! one debit per reservation when the balance covers the price, and one answer per cancel (the
//! debit refunded, or nothing to refund). No I/O: `store` persists it, `http` and `policy` feed it.

use tanda_core::Timestamp;
use tanda_core::id::ClientId;

#[cfg(test)]
mod tests;

/// The largest deposit one request may make, in won.
pub const MAX_DEPOSIT: i64 = 100_000_000;
/// The most deposits may bring a wallet to, in won: far beyond any traveller, and far enough below
/// `i64::MAX` that refunds on top of it cannot overflow.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;
/// `PaymentFailed.reason` when the wallet holds less than the price.
pub const INSUFFICIENT_BALANCE: &str = "insufficient_balance";

/// Why a deposit amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount must be a whole number of won from 1 to {MAX_DEPOSIT}")]
pub struct InvalidAmount;

/// A deposit: 1 to [`MAX_DEPOSIT`] won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deposit(i64);

impl Deposit {
    pub fn parse(won: i64) -> Result<Self, InvalidAmount> {
        if (1..=MAX_DEPOSIT).contains(&won) {
            Ok(Self(won))
        } else {
            Err(InvalidAmount)
        }
    }
    pub fn won(self) -> i64 {
        self.0
    }
}

/// A reservation's price as reservation announced it: 0 (a free seat) to [`MAX_BALANCE`] won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub fn parse(won: i64) -> Option<Self> {
        (0..=MAX_BALANCE).contains(&won).then_some(Self(won))
    }
    pub fn won(self) -> i64 {
        self.0
    }
}

/// A user's wallet. A user never seen has an empty one, not yet stored (`version` 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: ClientId,
    /// Won; never negative.
    pub balance: i64,
    /// The stored row's version, for optimistic concurrency (`store` checks and bumps it).
    pub version: i64,
}

impl Account {
    pub fn empty(user_id: ClientId) -> Self {
        Self {
            user_id,
            balance: 0,
            version: 0,
        }
    }
}

/// What payment did for one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `amount` was debited; a cancel refunds it.
    Paid { amount: i64 },
    /// The balance was below `price`: nothing was debited, and nothing will be.
    Declined { price: i64 },
    /// The cancel was answered by giving back the `amount` debited. Final.
    Refunded { amount: i64 },
    /// The cancel was answered with nothing to give back (nothing was debited), and nothing will
    /// be: a request for the reservation arriving after its cancel is ignored. Final.
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Paid { .. } => "PAID",
            Status::Declined { .. } => "DECLINED",
            Status::Refunded { .. } => "REFUNDED",
            Status::Closed => "CLOSED",
        }
    }

    /// The won the status is about (debited, asked or refunded); `None` for `Closed`.
    pub fn amount(self) -> Option<i64> {
        match self {
            Status::Paid { amount } | Status::Refunded { amount } => Some(amount),
            Status::Declined { price } => Some(price),
            Status::Closed => None,
        }
    }

    /// Rebuilds a stored status from its name and amount.
    pub fn from_parts(name: &str, amount: Option<i64>) -> Option<Self> {
        Some(match name {
            "PAID" => Status::Paid { amount: amount? },
            "DECLINED" => Status::Declined { price: amount? },
            "REFUNDED" => Status::Refunded { amount: amount? },
            "CLOSED" => Status::Closed,
            _ => return None,
        })
    }
}

/// Payment's record of one reservation; there is none until its request or its cancel arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub reservation_id: String,
    /// The wallet the reservation is paid from and refunded to.
    pub user_id: ClientId,
    pub status: Status,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What a decision sees: the wallet and, for a reservation's command, payment's record of that
/// reservation (the store loads both in the command's unit of work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub account: Account,
    pub payment: Option<Payment>,
}

/// What may be asked of a wallet: the user's deposit, and reservation's requests (`policy` turns
/// its events into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Deposit(Deposit),
    /// A seat was held: debit its price, if the balance covers it.
    Pay {
        reservation_id: String,
        price: Price,
    },
    /// The reservation is being cancelled: give back what was debited for it, once.
    Cancel {
        reservation_id: String,
    },
}

impl Command {
    /// The reservation this command is about; `None` for a deposit.
    pub fn reservation_id(&self) -> Option<&str> {
        match self {
            Command::Deposit(_) => None,
            Command::Pay { reservation_id, .. } | Command::Cancel { reservation_id } => {
                Some(reservation_id)
            }
        }
    }
}

/// What happened to a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Deposited {
        amount: i64,
    },
    Debited {
        reservation_id: String,
        amount: i64,
    },
    Declined {
        reservation_id: String,
        price: i64,
    },
    Refunded {
        reservation_id: String,
        amount: i64,
    },
    /// A cancel answered with nothing to give back.
    Closed {
        reservation_id: String,
    },
}

/// The kinds of ledger movement; the ledger holds at most one debit and one refund per
/// reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    Deposit,
    Debit,
    Refund,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Deposit => "DEPOSIT",
            MovementKind::Debit => "DEBIT",
            MovementKind::Refund => "REFUND",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DEPOSIT" => Some(MovementKind::Deposit),
            "DEBIT" => Some(MovementKind::Debit),
            "REFUND" => Some(MovementKind::Refund),
            _ => None,
        }
    }
}

/// One line of a wallet's ledger: the sum of a wallet's movements (deposits and refunds minus
/// debits) is its balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub movement_id: String,
    pub user_id: ClientId,
    pub kind: MovementKind,
    pub amount: i64,
    pub reservation_id: Option<String>,
    pub balance_after: i64,
    pub at: Timestamp,
}

impl Change {
    /// The reservation this change is about; `None` for a deposit.
    pub fn reservation_id(&self) -> Option<&str> {
        match self {
            Change::Deposited { .. } => None,
            Change::Debited { reservation_id, .. }
            | Change::Declined { reservation_id, .. }
            | Change::Refunded { reservation_id, .. }
            | Change::Closed { reservation_id } => Some(reservation_id),
        }
    }

    /// The ledger movement this change makes, if it moves money.
    pub fn movement(&self) -> Option<(MovementKind, i64)> {
        match *self {
            Change::Deposited { amount } => Some((MovementKind::Deposit, amount)),
            Change::Debited { amount, .. } => Some((MovementKind::Debit, amount)),
            Change::Refunded { amount, .. } => Some((MovementKind::Refund, amount)),
            Change::Declined { .. } | Change::Closed { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEvent {
    pub at: Timestamp,
    pub change: Change,
}

/// Why a command is not allowed on the wallet (a 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("this deposit would take the balance above {MAX_BALANCE} won")]
    BalanceLimit,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::BalanceLimit => "balance_limit",
        }
    }
}

/// Decides what `command` does to the wallet. Only a deposit can be refused; a reservation's
/// request or cancel that no longer applies (a duplicate, or one arriving after the cancel was
/// answered) changes nothing.
pub fn decide(
    state: &State,
    command: Command,
    now: Timestamp,
) -> Result<Vec<WalletEvent>, Rejection> {
    let balance = state.account.balance;
    let status = state.payment.as_ref().map(|p| p.status);
    let change = match command {
        Command::Deposit(deposit) if balance > MAX_BALANCE - deposit.won() => {
            return Err(Rejection::BalanceLimit);
        }
        Command::Deposit(deposit) => Change::Deposited {
            amount: deposit.won(),
        },
        // Whatever payment already did for the reservation stands: paid, declined or cancelled.
        Command::Pay { .. } if status.is_some() => return Ok(vec![]),
        Command::Pay {
            reservation_id,
            price,
        } if balance >= price.won() => Change::Debited {
            reservation_id,
            amount: price.won(),
        },
        Command::Pay {
            reservation_id,
            price,
        } => Change::Declined {
            reservation_id,
            price: price.won(),
        },
        Command::Cancel { reservation_id } => match status {
            Some(Status::Paid { amount }) => Change::Refunded {
                reservation_id,
                amount,
            },
            None | Some(Status::Declined { .. }) => Change::Closed { reservation_id },
            Some(Status::Refunded { .. } | Status::Closed) => return Ok(vec![]),
        },
    };
    Ok(vec![WalletEvent { at: now, change }])
}

/// Applies a decided event to the wallet and the reservation's record.
pub fn apply(state: &mut State, event: &WalletEvent) {
    let (reservation_id, status) = match &event.change {
        Change::Deposited { amount } => {
            state.account.balance += amount;
            return;
        }
        Change::Debited {
            reservation_id,
            amount,
        } => {
            state.account.balance -= amount;
            (reservation_id, Status::Paid { amount: *amount })
        }
        Change::Declined {
            reservation_id,
            price,
        } => (reservation_id, Status::Declined { price: *price }),
        Change::Refunded {
            reservation_id,
            amount,
        } => {
            state.account.balance += amount;
            (reservation_id, Status::Refunded { amount: *amount })
        }
        Change::Closed { reservation_id } => (reservation_id, Status::Closed),
    };
    match &mut state.payment {
        Some(payment) => {
            payment.status = status;
            payment.updated_at = event.at;
        }
        None => {
            state.payment = Some(Payment {
                reservation_id: reservation_id.clone(),
                user_id: state.account.user_id.clone(),
                status,
                updated_at: event.at,
                version: 0,
            });
        }
    }
}
