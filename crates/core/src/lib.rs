//! Tanda's shared mechanics, written once and used by every service.
//!
//! A service owns its domain and its SQL; everything that makes it *correct under crashes and
//! retries* lives here: the event envelope, the transactional outbox, inbox dedup, durable timers,
//! dead letters, idempotency keys, RFC 9457 problems, the circuit breaker and the HTTP host with
//! health, readiness, metrics and graceful shutdown.

pub mod auth;
pub mod breaker;
pub mod clock;
pub mod consumer;
pub mod credential;
pub mod db;
pub mod event;
pub mod failpoint;
pub mod geo;
pub mod host;
pub mod housekeeping;
pub mod http;
pub mod id;
pub mod jwt;
pub mod lifecycle;
pub mod locale;
pub mod nats;
pub mod openapi;
pub mod phone;
pub mod problem;
pub mod rate;
pub mod recorder;
pub mod retry;
pub mod service;
pub mod settings;
pub mod sql;
pub mod subscription;
pub mod timers;

pub use clock::{Clock, SystemClock, Timestamp};
pub use db::{Db, DbError, Uow};
pub use event::{Envelope, Event};
pub use problem::Problem;
pub use rate::RateKey;
