//! Every taxi requirement of seed 000, black-box over HTTP against the all-in-one app.

mod common;
#[path = "scenarios/contract.rs"]
mod contract;
#[path = "scenarios/identity.rs"]
mod identity;
#[path = "scenarios/taxi.rs"]
mod taxi;

taxi_scenarios!(AllInOne);

identity_scenarios!(AllInOne);
// All-in-one only: it reads every database's files whole.
tests_on!(AllInOne, identity: secrets_are_kept_and_shown_nowhere);

contract_scenarios!(AllInOne);
