//! The `tanda` binary's library half: configuration and wiring only — no business logic.
//! `main.rs` parses flags and runs [`App`]; the tests start the same [`App`] on port 0.

pub mod app;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod contract;
pub mod demo;
pub mod registry;
pub mod serve;

pub use app::App;
pub use config::{Cli, RunConfig};
