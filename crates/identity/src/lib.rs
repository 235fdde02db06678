//! The identity service: who may sign in, and the tokens that say so (API.md "Identity and
//! access"). Customers (travellers are customers) and drivers sign up; everyone signs in with a
//! username and password and gets a short-lived access token: a JWT signed with Ed25519 whose
//! public keys anyone can fetch at `/.well-known/jwks.json`. Every service verifies tokens itself
//! (`tanda_core::auth`); this service only issues them.
//!
//! Identity also publishes events (`AccountOpened`, `LocaleChanged`) through its outbox, so that
//! notify speaks to each receiver in the language they chose.
//!
//! Code map: `account` (sign-up parsing, Argon2id hashing), `keys` (the signing keys, rotation,
//! the JWKS), `attempts` (sign-in throttling), `claims` (ids an operator already acted for, which
//! a stranger may not sign up as), `store` (SQL and the events), `http` (routes).

mod account;
mod attempts;
mod claims;
mod http;
mod keys;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tanda_core::Problem;
use tanda_core::auth::{JwksSource, Role};
use tanda_core::db::{Db, DbError, Migration};
use tanda_core::id::ClientId;
use tanda_core::service::ServiceParts;

use crate::account::{Locale, NewAccount, Password};
pub use crate::keys::Keys;
/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

pub const NAME: &str = "identity";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[
        tanda_core::service::OwnedPath::all("/auth"),
        tanda_core::service::OwnedPath::all("/.well-known"),
        tanda_core::service::OwnedPath::all("/admin/signing-keys"),
    ],
    produces: tanda_catalog::identity::IDENTITY_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};
/// The operator's account, made at first start.
pub const OPERATOR: &str = "operator";

/// Identity's settings.
#[derive(Clone, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// The operator account's password. Without it, a random one is made at first start and
    /// printed once to the log. Setting it and restarting resets the operator's password.
    #[arg(
        global = true,
        long,
        env = "TANDA_OPERATOR_PASSWORD",
        hide_env_values = true
    )]
    pub operator_password: Option<String>,
    /// How long an access token (and a web page session) stays valid.
    #[arg(global = true, long, env = "TANDA_TOKEN_TTL", default_value = "1h", value_parser = tanda_core::settings::duration)]
    #[serde(serialize_with = "tanda_core::settings::write_duration")]
    pub token_ttl: Duration,
    /// How long after a rotation the new signing key is first used: longer than a verifier
    /// waits between fetches of the JWKS, so that every verifier knows it by then.
    #[arg(skip = 2 * tanda_core::jwt::MIN_REFETCH)]
    #[serde(skip)]
    pub rotation_delay: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "operator_password",
                &self.operator_password.as_ref().map(|_| "…"),
            )
            .field("token_ttl", &self.token_ttl)
            .field("rotation_delay", &self.rotation_delay)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

/// Identity's parts and its keys (the JWKS source of the verifiers in the same process). The
/// database must be migrated; a first signing key and the operator account are made if missing.
pub async fn build(db: Db, config: Config) -> Result<(ServiceParts, Keys), Error> {
    let keys = Keys {
        db: db.clone(),
        token_ttl: config.token_ttl,
        rotation_delay: config.rotation_delay,
    };
    keys.ensure_one().await?;
    bootstrap_operator(&db, config.operator_password).await?;
    let announced = store::announce_earlier_accounts(&db).await?;
    if announced > 0 {
        tracing::info!(
            accounts = announced,
            "announced accounts made before AccountOpened"
        );
    }
    let parts = ServiceParts {
        name: NAME,
        router: http::router(Arc::new(http::App::new(keys.clone()))),
        internal: axum::Router::new(),
        consumers: vec![tanda_core::consumer::Consumer::new(
            "identity-claims",
            db.clone(),
            claims::RememberClaims,
        )],
        timers: None,
        breakers: Vec::new(),
        db,
    };
    Ok((parts, keys))
}

impl Keys {
    /// These keys as the source of a verifier's JWKS.
    pub fn source(&self) -> Arc<dyn JwksSource> {
        Arc::new(self.clone())
    }
}

/// Makes the operator account on first start. A configured password is the operator's password
/// from then on (changing it and restarting resets it); without one, a random password is made
/// once and logged once, the only place it ever appears.
async fn bootstrap_operator(db: &Db, configured: Option<String>) -> Result<(), Error> {
    let id = ClientId::parse(OPERATOR).expect("a valid id");
    let existing = store::find(db, &id).await?;
    let (password, generated) = match (configured, &existing) {
        (Some(p), Some(account)) => {
            let typed = Password::typed(p.clone());
            let hash = account.password_hash.clone();
            if tokio::task::spawn_blocking(move || typed.matches(&hash))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
            {
                return Ok(());
            }
            (Password::parse(p)?, false)
        }
        (Some(p), None) => (Password::parse(p)?, false),
        (None, Some(_)) => return Ok(()),
        (None, None) => {
            let random: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            (Password::typed(random), true)
        }
    };
    let shown = generated.then(|| password.expose().to_owned());
    let hash = tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    if existing.is_some() {
        store::set_password(db, &id, &hash).await?;
        tracing::info!("the operator's password was set from the configuration");
        return Ok(());
    }
    let account = NewAccount {
        user_id: id,
        name: "Operator".to_owned(),
        phone: "000-0000-0000".to_owned(),
        role: Role::Operator,
        locale: Locale::Ko,
    };
    if store::insert(db, &account, &hash).await? {
        match shown {
            Some(p) => tracing::warn!(
                "created the operator account; its password, shown this once: {p} \
                 (set TANDA_OPERATOR_PASSWORD to choose it)"
            ),
            None => tracing::info!("created the operator account"),
        }
    }
    Ok(())
}

/// Everything that can go wrong in identity; `http` turns it into problems.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{detail}")]
    Invalid { code: String, detail: String },
    #[error("the username {0} is taken")]
    Taken(String),
    #[error(
        "something was already done for {0} (a booking, a reservation, a driver's registration or \
         a deposit): an operator can open this account for its owner"
    )]
    Claimed(String),
    #[error("unknown username or wrong password")]
    InvalidCredentials,
    #[error("too many failed sign-ins; try again later")]
    Throttled(Duration),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl Error {
    pub(crate) fn invalid(code: &str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            code: code.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::Taken(_) | Error::Claimed(_) => "username_taken",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Throttled(_) => "too_many_attempts",
            Error::Internal(_) => "internal",
            Error::Db(_) => "storage_unavailable",
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        let code = e.code().to_owned();
        match e {
            Error::Invalid { .. } => Problem::bad_request(&code, detail),
            Error::Taken(_) | Error::Claimed(_) => Problem::conflict(&code, detail),
            Error::InvalidCredentials => Problem::new(StatusCode::UNAUTHORIZED, &code, detail),
            Error::Throttled(wait) => Problem {
                retry_after_secs: Some(wait.as_secs().max(1)),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, &code, detail)
            },
            Error::Internal(e) => Problem::internal(&e),
            Error::Db(e) => e.into(),
        }
    }
}
