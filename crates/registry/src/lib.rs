//! The services Tanda runs, listed once, each with how it is built. Everything that needs the list
//! reads it from here: both run modes (which services to open, build and wire), the processes of
//! the distributed topology, the event sources consumers read, the gateway's routes, each
//! service's migrations, the OpenAPI document, the cluster's databases and streams, the tests.
//!
//! Adding a service is its crate, its line in [`SERVICES`], and its dependency line here and in
//! the workspace (ARCHITECTURE.md, "Adding a service").

#[macro_use]
mod build;

use tanda_core::consumer::Source;
use tanda_core::nats::NatsSource;
use tanda_core::service::{ServiceParts, ServiceSpec};

pub use build::{Built, Calls, Env, Registered, Settings};

/// Every service, gateway aside, in the order of their ports (`tanda serve --help`).
pub static SERVICES: [Registered; 10] = [
    registered!(tanda_book, |db, env| tanda_book::build(
        db,
        env.settings.book()
    )
    .await?),
    registered!(tanda_dispatch, |db, env| build::dispatch(db, env).await?),
    registered!(tanda_pay, |db, env| build::pay(db, env).await?),
    registered!(tanda_ride_history, |db, _env| tanda_ride_history::build(db)
        .await?),
    registered!(tanda_reservation, |db, env| {
        tanda_reservation::build(db, env.settings.reservation.clone()).await?
    }),
    registered!(tanda_payment, |db, _env| tanda_payment::build(db).await?),
    registered!(tanda_ticket, |db, _env| tanda_ticket::build(db).await?),
    registered!(tanda_reservation_view, |db, _env| {
        tanda_reservation_view::build(db).await?
    }),
    registered!(tanda_notify, |db, env| {
        tanda_notify::build(db, env.settings.notify.clone(), &env.lifecycle).await?
    }),
    registered!(tanda_identity, |db, env| build::identity(db, env).await?),
];

/// Every service's spec, in [`SERVICES`]' order.
pub fn specs() -> impl Iterator<Item = &'static ServiceSpec> {
    SERVICES.iter().map(|s| s.spec)
}

/// The service named `name`.
pub fn spec(name: &str) -> Option<&'static ServiceSpec> {
    registered(name).map(|s| s.spec)
}

/// The service named `name`, with how it is built.
pub fn registered(name: &str) -> Option<&'static Registered> {
    SERVICES.iter().find(|s| s.spec.name == name)
}

/// Every service that publishes events, as distributed consumers find its stream.
pub fn nats_sources() -> Vec<NatsSource> {
    specs()
        .filter(|s| !s.produces.is_empty())
        .map(|s| NatsSource {
            service: s.name,
            produces: s.produces,
        })
        .collect()
}

/// The outboxes of the built `services` that have events to publish, for all-in-one consumers.
pub fn outbox_sources(services: &[ServiceParts]) -> Vec<Source> {
    services
        .iter()
        .filter_map(|parts| {
            let spec = spec(parts.name).expect("every built service is in the registry");
            (!spec.produces.is_empty()).then(|| Source {
                db: parts.db.clone(),
                produces: spec.produces,
            })
        })
        .collect()
}

/// Each consumer's event types that no service publishes, given as (consumer, types): a consumer
/// waiting for one would wait forever, so a process refuses to start with any (`App::start`,
/// `serve::start`).
pub fn unpublished<'a>(
    wanted: impl IntoIterator<Item = (&'a str, &'a [&'static str])>,
) -> Vec<String> {
    wanted
        .into_iter()
        .flat_map(|(consumer, types)| types.iter().map(move |t| (consumer, *t)))
        .filter(|(_, t)| !specs().any(|s| s.produces.contains(t)))
        .map(|(consumer, t)| format!("{consumer} takes {t}"))
        .collect()
}

/// Whether a process of `spec` holds the service credential: it serves internal routes another
/// service calls, or calls another's.
pub fn needs_service_secret(spec: &ServiceSpec) -> bool {
    !spec.calls.is_empty() || specs().any(|s| s.calls.contains(&spec.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumed_type_nobody_publishes_is_named() {
        let types: &[&str] = &["taxi.BookRequested", "taxi.NobodySendsThis"];
        assert_eq!(
            unpublished([("dispatch", types)]),
            ["dispatch takes taxi.NobodySendsThis"]
        );
        assert!(unpublished([("dispatch", &types[..1])]).is_empty());
    }

    #[test]
    fn names_paths_and_event_types_each_belong_to_one_service() {
        let mut names: Vec<&str> = specs().map(|s| s.name).collect();
        let mut paths: Vec<&str> = specs()
            .flat_map(|s| s.paths.iter().map(|p| p.path))
            .collect();
        let mut types: Vec<&str> = specs().flat_map(|s| s.produces.iter().copied()).collect();
        for list in [&mut names, &mut paths, &mut types] {
            let all = list.len();
            list.sort_unstable();
            list.dedup();
            assert_eq!(list.len(), all, "{list:?}");
        }
    }

    #[test]
    fn a_service_calls_only_registered_services() {
        for caller in specs() {
            for called in caller.calls {
                assert!(spec(called).is_some(), "{} calls {called}", caller.name);
                assert_ne!(*called, caller.name);
            }
        }
    }

    #[test]
    fn the_caller_and_the_called_hold_the_service_secret_and_no_one_else() {
        let holders: Vec<&str> = specs()
            .filter(|s| needs_service_secret(s))
            .map(|s| s.name)
            .collect();
        assert_eq!(holders, ["dispatch", "pay"]);
    }
}
