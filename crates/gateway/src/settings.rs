//! The edge's settings: how much each caller may write, and which other web origins may call.

use std::sync::Arc;

use tanda_core::auth::Verifier;
use tanda_core::rate::RateLimit;

use crate::Edge;

#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct EdgeSettings {
    /// Writes (POST, PUT, PATCH, DELETE) each caller may make per second, on average, at the
    /// gateway (all-in-one or `serve gateway`); more are answered `429 rate_limited` with
    /// `Retry-After`. A caller is its IP address (an IPv6 one by its /64). 0: no limit. The
    /// services behind the gateway limit nobody: every request reaches them from the gateway.
    #[arg(
        global = true,
        long,
        env = "TANDA_WRITE_RATE_LIMIT",
        default_value_t = 20
    )]
    pub write_rate_limit: u32,

    /// Writes a caller may make at once, after a pause, before --write-rate-limit holds it back.
    #[arg(global = true, long, env = "TANDA_WRITE_RATE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub write_rate_burst: u32,

    /// A web origin (e.g. `https://app.example`) whose pages may call the API from a browser
    /// (CORS), with a bearer token; repeatable (env: comma-separated). By default none: only
    /// Tanda's own pages, from its own origin.
    #[arg(
        global = true,
        long = "cors-allow-origin",
        env = "TANDA_CORS_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_parser = parse_origin
    )]
    pub cors_allow_origins: Vec<String>,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

impl EdgeSettings {
    /// The limit on each caller's writes, if any.
    pub fn write_limit(&self) -> Option<RateLimit> {
        (self.write_rate_limit > 0).then_some(RateLimit {
            per_second: self.write_rate_limit,
            burst: self.write_rate_burst,
        })
    }

    /// The edge these settings describe, checking credentials with `verifier`.
    pub fn edge(&self, verifier: Arc<Verifier>) -> Edge {
        Edge {
            verifier,
            write_limit: self.write_limit(),
            cors_allow_origins: self.cors_allow_origins.clone(),
        }
    }
}

/// A web origin as browsers send it: `scheme://host[:port]`, lower case, without a default port
/// or a path.
fn parse_origin(s: &str) -> Result<String, String> {
    let expected = || format!("`{s}` is not an origin (e.g. https://app.example:8443)");
    let url = reqwest::Url::parse(s.trim()).map_err(|_| expected())?;
    let bare = url.path() == "/"
        && !s.trim().ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare {
        return Err(expected());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_origins_as_browsers_send_them() {
        assert_eq!(
            parse_origin("https://App.Example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "*",
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "ftp://app.example",
            "https://user@app.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(EdgeSettings::default().cors_allow_origins.is_empty());
        assert_eq!(
            EdgeSettings::default().write_limit(),
            Some(RateLimit {
                per_second: 20,
                burst: 40
            })
        );
    }
}
