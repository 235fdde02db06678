//! Every flight requirement of seed 001, black-box over HTTP against the all-in-one app.

mod common;
#[path = "scenarios/flight.rs"]
mod flight;

flight_scenarios!(AllInOne);
