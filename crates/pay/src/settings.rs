//! Pay's settings: how the simulated card network starts, until a mode is set at run time with
//! `PUT /admin/card-network` (kept in pay's database: from then on that one holds, restarts
//! included).

use std::time::Duration;

use tanda_cardnet::NetworkMode;
use tanda_core::settings;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// Added latency of the simulated card network, until a mode is set at run time with
    /// `PUT /admin/card-network` (kept from then on, restarts included).
    #[arg(global = true, long, env = "TANDA_CARD_NETWORK_LATENCY", default_value = "0ms", value_parser = settings::duration)]
    #[serde(serialize_with = "settings::write_duration")]
    pub card_network_latency: Duration,
    /// Start with the simulated card network down (until a mode is set at run time).
    #[arg(global = true, long, env = "TANDA_CARD_NETWORK_DOWN")]
    pub card_network_down: bool,
}

impl Default for Config {
    fn default() -> Self {
        settings::defaults()
    }
}

impl Config {
    /// The network's mode at start.
    pub fn network_mode(&self) -> NetworkMode {
        NetworkMode {
            latency_ms: u64::try_from(self.card_network_latency.as_millis()).unwrap_or(u64::MAX),
            down: self.card_network_down,
            answer_delay_ms: 0,
        }
    }
}
