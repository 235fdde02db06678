//! How each service is built: from its database and the process's [`Env`], the one place a
//! service's constructor is called, in either run mode.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use async_trait::async_trait;
use futures::future::BoxFuture;
use reqwest::Url;
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_core::Db;
use tanda_core::credential::ServiceSecret;
use tanda_core::lifecycle::Lifecycle;
use tanda_core::service::{ServiceParts, ServiceSpec};
use tanda_dispatch::{PayCallError, PayTransport};
use tanda_identity::Keys;
use tanda_pay::{PayApi, PayError};

/// A service as the registry lists it: what is known of it, and how it is built.
pub struct Registered {
    pub spec: &'static ServiceSpec,
    build: for<'a> fn(Db, &'a Env) -> BoxFuture<'a, anyhow::Result<ServiceParts>>,
}

impl Registered {
    /// The service's parts, on its opened and migrated database.
    pub async fn build(&self, db: Db, env: &Env) -> anyhow::Result<ServiceParts> {
        (self.build)(db, env)
            .await
            .with_context(|| format!("building {}", self.spec.name))
    }
}

/// A [`Registered`] service of crate `$service` (its `SPEC`), built by `|db, env| body`.
macro_rules! registered {
    ($service:ident, |$db:ident, $env:ident| $body:expr) => {
        $crate::Registered::new(&$service::SPEC, {
            fn build<'a>(
                $db: ::tanda_core::Db,
                $env: &'a $crate::Env,
            ) -> ::futures::future::BoxFuture<
                'a,
                ::anyhow::Result<::tanda_core::service::ServiceParts>,
            > {
                ::std::boxed::Box::pin(async move { ::anyhow::Ok($body) })
            }
            build
        })
    };
}

impl Registered {
    #[doc(hidden)]
    pub const fn new(
        spec: &'static ServiceSpec,
        build: for<'a> fn(Db, &'a Env) -> BoxFuture<'a, anyhow::Result<ServiceParts>>,
    ) -> Self {
        Self { spec, build }
    }
}

/// What building a service takes besides its database: the services' settings, the process's
/// lifecycle, and how a service reaches those it calls.
pub struct Env {
    pub lifecycle: Lifecycle,
    pub settings: Settings,
    pub calls: Calls,
    /// What services built in this process hand to each other, filled as they are built.
    pub built: Built,
}

/// Every service's own settings, each declared once in its crate (`tanda_core::settings`); the
/// binary's command line flattens this. A service with knobs adds its field here.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Settings {
    #[command(flatten)]
    pub book: tanda_book::Config,
    #[command(flatten)]
    pub dispatch: tanda_dispatch::Config,
    #[command(flatten)]
    pub pay: tanda_pay::Config,
    #[command(flatten)]
    pub reservation: tanda_reservation::Config,
    #[command(flatten)]
    pub notify: tanda_notify::Config,
    #[command(flatten)]
    pub identity: tanda_identity::Config,
}

impl Default for Settings {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

impl Settings {
    /// Book's settings, with dispatch's search: book answers each booking by dispatch's deadline
    /// and refuses one with no driver within dispatch's pickup radius.
    pub fn book(&self) -> tanda_book::Config {
        tanda_book::Config {
            search: self.dispatch.search.clone(),
            ..self.book.clone()
        }
    }
}

/// How a service reaches the internal routes of another it calls (`ServiceSpec::calls`).
pub enum Calls {
    /// All-in-one: the other is built in this process and called directly.
    InProcess,
    /// Over HTTP, at the other's base URL, presenting the service credential.
    Http {
        urls: Vec<(&'static str, Url)>,
        secret: Option<ServiceSecret>,
    },
}

impl Calls {
    fn http(&self, called: &ServiceSpec) -> anyhow::Result<Option<(Url, &ServiceSecret)>> {
        let Calls::Http { urls, secret } = self else {
            return Ok(None);
        };
        let name = called.name;
        let url = urls
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, url)| url.clone())
            .with_context(|| format!("where {name} is"))?;
        let secret = secret
            .as_ref()
            .with_context(|| format!("{name} is called with the service secret"))?;
        Ok(Some((url, secret)))
    }
}

/// What one service built in this process gives the others.
#[derive(Default)]
pub struct Built {
    pay: Arc<OnceLock<PayApi>>,
    keys: OnceLock<Keys>,
}

impl Built {
    /// Identity's signing keys, once identity is built in this process.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.get()
    }
}

pub(crate) async fn dispatch(db: Db, env: &Env) -> anyhow::Result<ServiceParts> {
    let pay: Arc<dyn PayTransport> = match env.calls.http(&tanda_pay::SPEC)? {
        Some((url, secret)) => Arc::new(tanda_dispatch::HttpPay::new(url, secret)),
        None => Arc::new(InProcessPay(env.built.pay.clone())),
    };
    Ok(tanda_dispatch::build(db, env.settings.dispatch.clone(), pay).await?)
}

pub(crate) async fn pay(db: Db, env: &Env) -> anyhow::Result<ServiceParts> {
    let network = tanda_pay::card_network(&db, env.settings.pay.network_mode());
    let (parts, api) = tanda_pay::build(db, network).await?;
    let _ = env.built.pay.set(api);
    Ok(parts)
}

pub(crate) async fn identity(db: Db, env: &Env) -> anyhow::Result<ServiceParts> {
    let (parts, keys) = tanda_identity::build(db, env.settings.identity.clone()).await?;
    let _ = env.built.keys.set(keys);
    Ok(parts)
}

/// Dispatch's payment port, served in-process by pay (in distributed mode: over HTTP). Pay is
/// built after dispatch, before either serves a request.
struct InProcessPay(Arc<OnceLock<PayApi>>);

#[async_trait]
impl PayTransport for InProcessPay {
    async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError> {
        let api = self.0.get().ok_or_else(|| {
            PayCallError::Unavailable("pay is not built in this process".to_owned())
        })?;
        match api.pay(request.clone()).await {
            Ok((pay, _created)) => Ok(pay),
            Err(e @ PayError::Declined(_)) => Err(PayCallError::Declined(e.to_string())),
            Err(PayError::Invalid(reason)) => Err(PayCallError::Invalid(reason)),
            Err(PayError::AmountMismatch(e)) => Err(PayCallError::AmountMismatch(e.to_string())),
            Err(PayError::Unavailable(reason)) => Err(PayCallError::Unavailable(reason)),
            Err(PayError::Db(e)) => Err(PayCallError::Unavailable(e.to_string())),
        }
    }
}
