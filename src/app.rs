//! All-in-one wiring: every service (taxi and flight) on its own SQLite file under the data dir,
//! consumers tailing the producers' outboxes in-process, the timer loops, and the gateway in front.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tanda_core::consumer::Consumers;
use tanda_core::host::{HttpConfig, Ops, ServiceBreaker, ops_router, serve};
use tanda_core::lifecycle::Lifecycle;
use tanda_core::service::ServiceSpec;
use tanda_core::{Clock, Db, SystemClock, housekeeping, timers};
use tanda_registry::{Built, Calls, Env};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::RunConfig;
use crate::registry;

/// Where all-in-one, the cluster and the gateway listen unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// A running Tanda: every service and the gateway, serving on [`App::addr`].
pub struct App {
    addr: SocketAddr,
    lifecycle: Lifecycle,
    server: JoinHandle<std::io::Result<()>>,
}

impl App {
    /// Opens the databases, applies migrations, starts consumers, timers and the HTTP server.
    pub async fn start(config: RunConfig) -> anyhow::Result<App> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let lifecycle = Lifecycle::new();
        let env = service_env(&config, &lifecycle, Calls::InProcess);
        let mut services = Vec::new();
        for service in &registry::SERVICES {
            let db = open_sqlite(&config, service.spec, clock.clone()).await?;
            services.push(service.build(db, &env).await?);
        }
        let keys = env
            .built
            .keys()
            .expect("identity is built in every all-in-one");
        let unpublished = registry::unpublished(
            services
                .iter()
                .flat_map(|s| &s.consumers)
                .map(|c| (c.name, c.types)),
        );
        if !unpublished.is_empty() {
            anyhow::bail!(
                "no service publishes what is consumed: {}",
                unpublished.join(", ")
            );
        }
        let sources = registry::outbox_sources(&services);
        let databases: Vec<Db> = services.iter().map(|s| s.db.clone()).collect();
        let breakers: Vec<ServiceBreaker> = services.iter().flat_map(ServiceBreaker::of).collect();
        let mut consumers = Vec::new();
        let mut routers = Vec::new();
        for service in services {
            if let Some(handler) = service.timers {
                timers::start(service.db.clone(), handler, &lifecycle);
            }
            consumers.extend(service.consumers);
            // Internal routes are left out: here services call each other in-process, and the
            // gateway serves only public routes.
            routers.push(service.router);
        }
        let consumers = Consumers::new(consumers);
        consumers.start(&sources, &lifecycle);
        housekeeping::start(
            databases.clone(),
            sources.to_vec(),
            consumers.clone(),
            &lifecycle,
        );

        let ops = Ops {
            lifecycle: lifecycle.clone(),
            databases,
            consumers,
            required: Vec::new(),
            reported: Vec::new(),
            breakers,
            relayed: false,
        };
        let edge = config.edge.edge(config.verifier(keys.source())?);
        let router =
            tanda_gateway::in_process(routers, ops_router(ops), edge, &crate::contract::document());
        let addr = config.http_addr.unwrap_or(DEFAULT_ADDR);
        Self::serve(addr, router, lifecycle, config.http()).await
    }

    /// Binds `addr` and serves `router` until shutdown.
    pub(crate) async fn serve(
        addr: SocketAddr,
        router: axum::Router,
        lifecycle: Lifecycle,
        http: HttpConfig,
    ) -> anyhow::Result<App> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener, router, lifecycle.clone(), http));
        Ok(App {
            addr,
            lifecycle,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until SIGTERM/Ctrl-C, then shuts down gracefully.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.lifecycle.token().cancel();
        tokio::time::timeout(Duration::from_secs(30), self.server).await???;
        Ok(())
    }
}

/// The database of `spec` under the data directory, migrated, knowing what it publishes.
async fn open_sqlite(
    config: &RunConfig,
    spec: &ServiceSpec,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Db> {
    let (name, dir) = (spec.name, &config.data_dir);
    let db = Db::open_sqlite(dir, name, config.sqlite_synchronous, clock)
        .await
        .with_context(|| format!("opening {name}.db under {}", dir.display()))?;
    db.migrate(spec.migrations)
        .await
        .with_context(|| format!("migrating {name}.db"))?;
    db.declare_produces(spec.produces);
    Ok(db)
}

/// What building the services takes from `config`, in this process with `lifecycle`, reaching
/// the services they call as `calls` says.
pub(crate) fn service_env(config: &RunConfig, lifecycle: &Lifecycle, calls: Calls) -> Env {
    Env {
        lifecycle: lifecycle.clone(),
        settings: config.services.clone(),
        calls,
        built: Built::default(),
    }
}
