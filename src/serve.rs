//! Distributed mode (`tanda serve <service>`): one service per process, on its own PostgreSQL
//! database and NATS JetStream — the same services and handlers as all-in-one, with the store,
//! bus and payment-call adapters swapped. Or the gateway, as a reverse proxy in front of them.

use std::sync::Arc;

use anyhow::{Context, bail};
use reqwest::Url;
use tanda_core::auth::{HttpJwks, JwksSource};
use tanda_core::consumer::Consumers;
use tanda_core::credential;
use tanda_core::host::{Ops, Probe, ServiceBreaker, ops_router};
use tanda_core::lifecycle::Lifecycle;
use tanda_core::nats::{self, NatsBus};
use tanda_core::service::ServiceSpec;
use tanda_core::{Clock, Db, SystemClock, housekeeping, timers};
use tanda_gateway::Upstreams;
use tanda_registry::Calls;

use crate::app::{App, service_env};
use crate::config::{Distributed, RunConfig, Service};
use crate::registry;

/// Starts `service` as this process.
pub async fn start(service: Service, run: RunConfig, dist: Distributed) -> anyhow::Result<App> {
    if service.needs_service_secret() && dist.service_secret.is_none() {
        bail!(
            "`tanda serve {name}` needs the service secret: set --service-secret or \
             TANDA_SERVICE_SECRET, the same for pay and dispatch (at least {min} characters), so \
             that only dispatch can call pay's internal POST /pays; `tanda cluster` generates one",
            name = service.name(),
            min = credential::MIN_SECRET_LEN,
        );
    }
    let missing: Vec<&str> = service
        .calls()
        .into_iter()
        .filter(|called| !dist.has_upstream(*called))
        .map(Service::name)
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "`tanda serve {name}` calls {list}: say where each is with --upstream SERVICE=URL \
             (or TANDA_UPSTREAMS, comma-separated), e.g. --upstream {first}=http://{first}:8080",
            name = service.name(),
            list = missing.join(", "),
        );
    }
    let lifecycle = Lifecycle::new();
    let addr = run
        .http_addr
        .unwrap_or_else(|| ([127, 0, 0, 1], dist.base_port + service.port_offset()).into());
    let router = if let Service::Of(spec) = service {
        serve_service(spec, &run, &dist, &lifecycle).await?
    } else {
        let mut upstreams = Vec::new();
        for spec in registry::specs() {
            for url in urls_of(Service::Of(spec), &dist)? {
                upstreams.push((spec, url));
            }
        }
        let upstreams = Upstreams::new(upstreams);
        upstreams.watch(&lifecycle);
        let ops = Ops {
            lifecycle: lifecycle.clone(),
            databases: Vec::new(),
            consumers: Consumers::default(),
            required: upstream_probes(&dist)?,
            reported: Vec::new(),
            breakers: Vec::new(),
            relayed: false,
        };
        let edge = run.edge.edge(run.verifier(identity_keys(&dist)?)?);
        tanda_gateway::proxy(
            upstreams,
            ops_router(ops),
            edge,
            &crate::contract::document(),
        )
    };
    App::serve(addr, router, lifecycle, run.http()).await
}

/// The router of a process of the service `spec`: its database, consumers, relay and timers
/// started.
async fn serve_service(
    spec: &'static ServiceSpec,
    run: &RunConfig,
    dist: &Distributed,
    lifecycle: &Lifecycle,
) -> anyhow::Result<axum::Router> {
    let name = spec.name;
    let db = open_database(spec, dist).await?;
    let mut urls = Vec::new();
    for called in spec.calls {
        let called = Service::named(called).expect("a service calls registered services");
        urls.push((called.name(), url_of(called, dist)?));
    }
    let calls = Calls::Http {
        urls,
        secret: dist.service_secret.clone(),
    };
    let env = service_env(run, lifecycle, calls);
    let registered = registry::registered(name).expect("every spec is registered");
    let parts = registered.build(db.clone(), &env).await?;
    let verifier = run.verifier(match env.built.keys() {
        Some(keys) => keys.source(),
        None => identity_keys(dist)?,
    })?;
    let bus = NatsBus::connect(&dist.nats_url, &dist.namespace, dist.nats_replicas)
        .await
        .with_context(|| format!("connecting to NATS at {}", dist.nats_url))?;

    let unpublished = registry::unpublished(parts.consumers.iter().map(|c| (c.name, c.types)));
    if !unpublished.is_empty() {
        bail!(
            "no service publishes what {name} consumes: {}",
            unpublished.join(", ")
        );
    }
    if !spec.produces.is_empty() {
        nats::start_relay(db.clone(), bus.clone(), lifecycle);
    }
    let breakers = ServiceBreaker::of(&parts).collect();
    let consumers = Consumers::new(parts.consumers);
    nats::start_consumers(&consumers, &bus, &registry::nats_sources(), lifecycle);
    if let Some(handler) = parts.timers {
        timers::start(db.clone(), handler, lifecycle);
    }
    housekeeping::start(vec![db.clone()], Vec::new(), consumers.clone(), lifecycle);
    let nats_up = bus.clone();
    let ops = Ops {
        lifecycle: lifecycle.clone(),
        databases: vec![db],
        consumers,
        required: Vec::new(),
        reported: vec![("nats", Arc::new(move || nats_up.is_connected()))],
        breakers,
        relayed: true,
    };
    // Internal routes only for callers with the service credential; a service started
    // without the secret has none to serve (checked above).
    let internal = match &dist.service_secret {
        Some(secret) => credential::require(secret.clone(), parts.internal),
        None => axum::Router::new(),
    };
    Ok(tanda_gateway::service(
        parts.router.merge(internal),
        ops_router(ops),
        verifier,
        &run.edge.cors_allow_origins,
    ))
}

/// The service's database on PostgreSQL, created and migrated. An orchestrator starts every
/// process at once, so the database may not be up yet, or may refuse more connections for a
/// while: the service waits it out (saying so in its log) rather than exit. Only a refusal that
/// will not change (a wrong password, a migration that fails) ends the start.
async fn open_database(spec: &ServiceSpec, dist: &Distributed) -> anyhow::Result<Db> {
    let name = spec.name;
    let database = dist.database(name);
    let mut waits = tanda_core::retry::backoff();
    loop {
        let opened = async {
            let url = if dist.postgres_create_databases {
                Db::ensure_postgres_database(&dist.postgres_url, &database).await?
            } else {
                Db::postgres_database_url(&dist.postgres_url, &database)?
            };
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let db = Db::open_postgres(&url, name, dist.postgres_pool, clock).await?;
            db.migrate(spec.migrations).await?;
            db.declare_produces(spec.produces);
            Ok::<_, tanda_core::db::DbError>(db)
        };
        match opened.await {
            Ok(db) => return Ok(db),
            Err(e) if e.is_transient() => {
                let pause = waits.next().unwrap_or(tanda_core::retry::CAP);
                tracing::warn!(%database, error = %e, hint = e.hint(), retry_in = ?pause, "the database is not available yet");
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                let server = without_password(&dist.postgres_url);
                return Err(e).with_context(|| format!("opening database {database} on {server}"));
            }
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

/// The gateway's readiness: each service it routes to has an instance whose `/readyz` answers
/// (behind a Kubernetes Service, one URL: some ready instance of it does).
fn upstream_probes(dist: &Distributed) -> anyhow::Result<Vec<(&'static str, Probe)>> {
    let client = reqwest::Client::builder()
        .timeout(UPSTREAM_PROBE_TIMEOUT)
        .build()
        .context("an HTTP client for readiness")?;
    let mut probes: Vec<(&'static str, Probe)> = Vec::new();
    for service in Service::all().iter().filter(|s| **s != Service::Gateway) {
        let urls = urls_of(*service, dist)?
            .iter()
            .map(|url| url.join("/readyz"))
            .collect::<Result<Vec<_>, _>>()?;
        let client = client.clone();
        probes.push((
            service.name(),
            Arc::new(move || {
                let asks: Vec<_> = urls.iter().map(|u| client.get(u.clone()).send()).collect();
                Box::pin(async move {
                    futures::future::join_all(asks)
                        .await
                        .into_iter()
                        .any(|a| a.is_ok_and(|r| r.status().is_success()))
                })
            }),
        ));
    }
    Ok(probes)
}

/// How long the gateway's readiness waits for a service's.
const UPSTREAM_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Identity's public keys, fetched from its JWKS, for a process that is not identity.
fn identity_keys(dist: &Distributed) -> anyhow::Result<Arc<dyn JwksSource>> {
    let identity = Service::Of(&tanda_identity::SPEC);
    let url = format!("{}/.well-known/jwks.json", dist.url(identity));
    let url = Url::parse(&url).context("the URL of identity")?;
    Ok(Arc::new(HttpJwks::new(url)))
}

/// The base URL of `service` (`Distributed::url`).
fn url_of(service: Service, dist: &Distributed) -> anyhow::Result<Url> {
    Url::parse(&dist.url(service)).with_context(|| format!("the URL of {}", service.name()))
}

/// The base URL of each instance of `service` (`Distributed::urls`).
fn urls_of(service: Service, dist: &Distributed) -> anyhow::Result<Vec<Url>> {
    dist.urls(service)
        .iter()
        .map(|url| Url::parse(url).with_context(|| format!("a URL of {}", service.name())))
        .collect()
}
