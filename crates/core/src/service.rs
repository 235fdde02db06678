//! What a service hands to the process that runs it. The binary opens each service's database,
//! asks the service for its parts, and wires them: public routes into the gateway, internal ones
//! onto the service's own process only, consumers onto the bus, timers onto the timer loop. A
//! service never knows which run mode it is in.

use std::sync::Arc;

use axum::Router;

use crate::breaker::CircuitBreaker;
use crate::consumer::Consumer;
use crate::db::Db;
use crate::timers::TimerHandler;

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
