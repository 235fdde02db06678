//! The services Tanda runs, listed once. Everything that needs the list reads it from here: the
//! event sources consumers read (both run modes), the gateway's routes, each service's
//! migrations, the OpenAPI document, the cluster's databases and streams, the tests.

use tanda_core::consumer::Source;
use tanda_core::nats::NatsSource;
use tanda_core::service::{ServiceParts, ServiceSpec};

/// Every service, gateway aside. A new service is its crate and a line here (and the match arms
/// the binary's `config::Service` and `serve::build` ask for).
pub const SERVICES: [&ServiceSpec; 10] = [
    &tanda_book::SPEC,
    &tanda_dispatch::SPEC,
    &tanda_pay::SPEC,
    &tanda_ride_history::SPEC,
    &tanda_reservation::SPEC,
    &tanda_payment::SPEC,
    &tanda_ticket::SPEC,
    &tanda_reservation_view::SPEC,
    &tanda_notify::SPEC,
    &tanda_identity::SPEC,
];

/// The service named `name`.
pub fn spec(name: &str) -> Option<&'static ServiceSpec> {
    SERVICES.into_iter().find(|s| s.name == name)
}

/// Every service that publishes events, as distributed consumers find its stream.
pub fn nats_sources() -> Vec<NatsSource> {
    SERVICES
        .into_iter()
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
        .filter(|(_, t)| !SERVICES.iter().any(|s| s.produces.contains(t)))
        .map(|(consumer, t)| format!("{consumer} takes {t}"))
        .collect()
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
        let mut names: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
        let mut paths: Vec<&str> = SERVICES
            .iter()
            .flat_map(|s| s.paths.iter().map(|p| p.path))
            .collect();
        let mut types: Vec<&str> = SERVICES
            .iter()
            .flat_map(|s| s.produces.iter().copied())
            .collect();
        for list in [&mut names, &mut paths, &mut types] {
            let all = list.len();
            list.sort_unstable();
            list.dedup();
            assert_eq!(list.len(), all, "{list:?}");
        }
    }
}
