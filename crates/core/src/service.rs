//! What a service hands to the process that runs it. The binary opens each service's database,
//! asks the service for its parts, and wires them: public routes into the gateway, internal ones
//! onto the service's own process only, consumers onto the bus, timers onto the timer loop. A
//! service never knows which run mode it is in.

use std::sync::Arc;

use axum::Router;

use crate::breaker::CircuitBreaker;
use crate::consumer::Consumer;
use crate::db::{Db, Migration};
use crate::timers::TimerHandler;

/// What is known of a service before it is built: each service crate defines one (`SPEC`), and
/// the binary lists them once (its `registry`). The run modes, the gateway's routes, where
/// consumers find each event, and the tests' lists of services are all read from that list.
#[derive(Debug)]
pub struct ServiceSpec {
    /// Its name: of its database, its stream, its process (`tanda serve <name>`).
    pub name: &'static str,
    /// The public paths it owns: a request to one, or below it, is the service's.
    pub paths: &'static [OwnedPath],
    /// The types of the events it publishes; empty if it publishes none. A unit of work publishing
    /// any other type is a bug (`Uow::publish` asserts it).
    pub produces: &'static [&'static str],
    /// The services whose internal routes it calls (by name): both ends hold the service
    /// credential, and a process of it is told where each is.
    pub calls: &'static [&'static str],
    pub migrations: &'static [Migration],
    /// Its public operations, documented (generated from its handlers).
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

/// A path a service owns, and which requests to it the gateway forwards.
#[derive(Debug, Clone, Copy)]
pub struct OwnedPath {
    pub path: &'static str,
    pub forward: Forward,
}

impl OwnedPath {
    /// Every request to `path` (and below) is forwarded.
    pub const fn all(path: &'static str) -> Self {
        Self {
            path,
            forward: Forward::All,
        }
    }

    /// Only reads of `path` are forwarded: its other methods are internal.
    pub const fn reads(path: &'static str) -> Self {
        Self {
            path,
            forward: Forward::Reads,
        }
    }
}

/// Which requests to a path the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Every method.
    All,
    /// Reads only (`GET`, and `HEAD` with it): the path's other methods are internal, called by
    /// services directly and never through the gateway. `POST /pays` is one: only dispatch
    /// charges a trip, the fare it computed.
    Reads,
}

pub struct ServiceParts {
    pub name: &'static str,
    pub db: Db,
    /// The service's public routes (already with their state): the gateway serves them.
    pub router: Router,
    /// Routes only other services call (pay's `POST /pays`), never reachable through the
    /// gateway: all-in-one does not serve them at all (its services call each other in-process),
    /// and a service's own process serves them only to callers presenting the service credential
    /// (`credential::require`).
    pub internal: Router,
    pub consumers: Vec<Consumer>,
    pub timers: Option<Arc<dyn TimerHandler>>,
    /// The circuit breakers guarding the service's outgoing calls, named by what they guard.
    pub breakers: Vec<(&'static str, Arc<CircuitBreaker>)>,
}
