//! The simulated card network. **This is the only simulated component of Tanda**: no real card
//! network is reachable, so this stands in for one, following the usual test-card convention:
//!
//! | card | outcome |
//! |---|---|
//! | `4000000000000002` | declined (`card_declined`) |
//! | `4000000000009995` | declined (`insufficient_funds`) |
//! | any other number that passes the Luhn check (e.g. `4242424242424242`) | approved |
//!
//! Like a real network it tokenises the card number (Tanda keeps only the token and the last four
//! digits), honours an idempotency key per charge, and can be slowed down or taken down at run time
//! so that the payment circuit breaker can be exercised; the mode an operator sets is kept with
//! its records, so every caller of one network (each instance of pay) and every restart sees the
//! last one set. Like a real processor it keeps a durable
//! record of every charge it made ([`ChargeLog`]), written before it answers: a charge survives
//! the caller crashing before it stored the answer, and a retry under the same key gets that
//! charge back. Its answer can be made slow *after* the charge (`answerDelayMs`), so that such a
//! crash can be tested. Its tokens carry the test outcome in
//! clear — the way test-mode tokens of real processors do — so no vault is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A card number that passed the Luhn check: 12–19 digits (spaces and dashes are ignored).
/// Deliberately not `Debug`/`Display`/`Serialize`: the full number must never be logged or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidCard {
    #[error("must be 12-19 digits")]
    Format,
    #[error("number fails the Luhn check")]
    Luhn,
}

impl CardNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidCard> {
        let digits: String = raw.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidCard::Format);
        }
        if !luhn(&digits) {
            return Err(InvalidCard::Luhn);
        }
        Ok(Self(digits))
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What the network says a token will do when charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Approve,
    Decline,
    InsufficientFunds,
}

impl Outcome {
    fn code(self) -> &'static str {
        match self {
            Self::Approve => "ok",
            Self::Decline => "dc",
            Self::InsufficientFunds => "nf",
        }
    }
}

/// The network's stand-in for a card: `tok_{last4}_{outcome}_{random}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub last4: String,
}

/// Turns a card number into a token; the number itself goes no further.
pub fn tokenize(card: &CardNumber) -> Token {
    let outcome = match card.0.as_str() {
        "4000000000000002" => Outcome::Decline,
        "4000000000009995" => Outcome::InsufficientFunds,
        _ => Outcome::Approve,
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    Token {
        token: format!("tok_{}_{}_{}", card.last4(), outcome.code(), &random[..16]),
        last4: card.last4().to_owned(),
    }
}

fn parse_token(token: &str) -> Option<(String, Outcome)> {
    let mut parts = token.strip_prefix("tok_")?.split('_');
    let last4 = parts
        .next()
        .filter(|l| l.len() == 4 && l.bytes().all(|b| b.is_ascii_digit()))?;
    let outcome = match parts.next()? {
        "ok" => Outcome::Approve,
        "dc" => Outcome::Decline,
        "nf" => Outcome::InsufficientFunds,
        _ => return None,
    };
    parts.next().filter(|r| !r.is_empty())?;
    Some((last4.to_owned(), outcome))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub charge_id: String,
    pub last4: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    #[error("the card was declined ({0})")]
    Declined(&'static str),
    #[error("unknown card token")]
    InvalidToken,
    #[error("the card network is unavailable")]
    Unavailable,
}

/// Run-time behaviour of the network: added latency, whether it is down, and how long its answer
/// takes once a charge is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMode {
    pub latency_ms: u64,
    pub down: bool,
    #[serde(default)]
    pub answer_delay_ms: u64,
}

/// Where the network keeps its records: the charges it made, one per idempotency key, durable
/// once [`ChargeLog::record`] returns; and the mode set last, for every caller of the network.
#[async_trait]
pub trait ChargeLog: Send + Sync + 'static {
    /// Keeps `charge` under `key` unless a charge is kept under it already, and returns the one
    /// kept. An error means nothing may be assumed charged.
    async fn record(&self, key: &str, charge: Charge) -> Result<Charge, LogUnavailable>;
    /// The charge kept under `key`, if any.
    async fn find(&self, key: &str) -> Result<Option<Charge>, LogUnavailable>;
    /// How many charges are kept, one per key.
    async fn count(&self) -> Result<usize, LogUnavailable>;
    /// The mode set last ([`CardNetwork::set_mode`]), if one was.
    async fn mode(&self) -> Result<Option<NetworkMode>, LogUnavailable>;
    /// Keeps `mode` as the one set last.
    async fn keep_mode(&self, mode: NetworkMode) -> Result<(), LogUnavailable>;
}

/// The charge log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the card network's charge log is unavailable: {0}")]
pub struct LogUnavailable(pub String);

/// A log in memory, for unit tests of the network's callers: lost with the process.
#[derive(Debug, Default)]
pub struct MemoryLog(Mutex<HashMap<String, Charge>>, Mutex<Option<NetworkMode>>);

#[async_trait]
impl ChargeLog for MemoryLog {
    async fn record(&self, key: &str, charge: Charge) -> Result<Charge, LogUnavailable> {
        let mut charges = self.0.lock().expect("never poisoned");
        Ok(charges.entry(key.to_owned()).or_insert(charge).clone())
    }

    async fn find(&self, key: &str) -> Result<Option<Charge>, LogUnavailable> {
        Ok(self.0.lock().expect("never poisoned").get(key).cloned())
    }

    async fn count(&self) -> Result<usize, LogUnavailable> {
        Ok(self.0.lock().expect("never poisoned").len())
    }

    async fn mode(&self) -> Result<Option<NetworkMode>, LogUnavailable> {
        Ok(*self.1.lock().expect("never poisoned"))
    }

    async fn keep_mode(&self, mode: NetworkMode) -> Result<(), LogUnavailable> {
        *self.1.lock().expect("never poisoned") = Some(mode);
        Ok(())
    }
}

/// The simulated network. Charges are idempotent per key, as with real processors, so a retried
/// call never charges twice.
pub struct CardNetwork {
    /// The mode until one is set.
    start: NetworkMode,
    log: Arc<dyn ChargeLog>,
}

impl Default for CardNetwork {
    fn default() -> Self {
        Self::new(NetworkMode::default(), Arc::new(MemoryLog::default()))
    }
}

impl CardNetwork {
    /// A network behaving as `start` says until a mode is set, keeping its records in `log`
    /// (where a mode set earlier, by any of its callers, may be kept already).
    pub fn new(start: NetworkMode, log: Arc<dyn ChargeLog>) -> Self {
        Self { start, log }
    }

    /// The mode set last, else the one it started with.
    pub async fn mode(&self) -> Result<NetworkMode, LogUnavailable> {
        Ok(self.log.mode().await?.unwrap_or(self.start))
    }

    /// From now on, for every caller of this network.
    pub async fn set_mode(&self, mode: NetworkMode) -> Result<(), LogUnavailable> {
        self.log.keep_mode(mode).await
    }

    /// Charges `amount` won to `token`; the same `idempotency_key` returns the first charge.
    pub async fn charge(
        &self,
        token: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<Charge, ChargeError> {
        let mode = self.mode().await.map_err(|_| ChargeError::Unavailable)?;
        if mode.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.latency_ms)).await;
        }
        if mode.down {
            return Err(ChargeError::Unavailable);
        }
        let (last4, outcome) = parse_token(token).ok_or(ChargeError::InvalidToken)?;
        match outcome {
            Outcome::Decline => return Err(ChargeError::Declined("card_declined")),
            Outcome::InsufficientFunds => return Err(ChargeError::Declined("insufficient_funds")),
            Outcome::Approve => {}
        }
        let charge = Charge {
            charge_id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
            last4,
            amount,
        };
        let charge = self
            .log
            .record(idempotency_key, charge)
            .await
            .map_err(|_| ChargeError::Unavailable)?;
        if mode.answer_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.answer_delay_ms)).await;
        }
        Ok(charge)
    }

    /// The charge made under `idempotency_key`, if one was: what a real processor answers when
    /// asked about an idempotency key whose answer never arrived. Reachable only when charging
    /// is (the same latency; unavailable while the network is down).
    pub async fn charge_made(&self, idempotency_key: &str) -> Result<Option<Charge>, ChargeError> {
        let mode = self.mode().await.map_err(|_| ChargeError::Unavailable)?;
        if mode.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(mode.latency_ms)).await;
        }
        if mode.down {
            return Err(ChargeError::Unavailable);
        }
        self.log
            .find(idempotency_key)
            .await
            .map_err(|_| ChargeError::Unavailable)
    }

    /// How many distinct charges the network has made (for tests and the operator page).
    pub async fn charge_count(&self) -> Result<usize, LogUnavailable> {
        self.log.count().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_format() {
        assert!(CardNumber::parse("4242 4242 4242 4242").is_ok());
        assert_eq!(
            CardNumber::parse("4242424242424241"),
            Err(InvalidCard::Luhn)
        );
        assert_eq!(CardNumber::parse("4242"), Err(InvalidCard::Format));
        assert_eq!(
            CardNumber::parse("4242x24242424242"),
            Err(InvalidCard::Format)
        );
        assert_eq!(
            format!("{:?}", CardNumber::parse("4242424242424242").unwrap()),
            "CardNumber(****4242)"
        );
    }

    #[tokio::test]
    async fn test_cards_behave_as_documented_and_charges_are_idempotent() {
        let net = CardNetwork::default();
        let ok = tokenize(&CardNumber::parse("4242424242424242").unwrap());
        assert_eq!(ok.last4, "4242");
        assert!(!ok.token.contains("424242424242"));
        let first = net.charge(&ok.token, 5000, "d1").await.unwrap();
        let again = net.charge(&ok.token, 9999, "d1").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(net.charge_count().await.unwrap(), 1);

        let declined = tokenize(&CardNumber::parse("4000000000000002").unwrap());
        assert_eq!(
            net.charge(&declined.token, 5000, "d2").await,
            Err(ChargeError::Declined("card_declined"))
        );
        assert_eq!(
            net.charge("tok_bogus", 1, "d3").await,
            Err(ChargeError::InvalidToken)
        );

        net.set_mode(NetworkMode {
            down: true,
            ..NetworkMode::default()
        })
        .await
        .unwrap();
        assert_eq!(
            net.charge(&ok.token, 5000, "d4").await,
            Err(ChargeError::Unavailable)
        );
        assert_eq!(net.charge_count().await.unwrap(), 1);
    }
}
