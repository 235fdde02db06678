//! Settings: each knob declared once.
//!
//! A service's settings are a `clap::Args` struct in its own crate. The struct's attributes are
//! the one place a knob is written: its flag, its `TANDA_*` environment variable, its default and
//! its help. Everything else is derived from that declaration:
//!
//! - the process's command line (`tanda --help`), which flattens every service's struct;
//! - `Default` ([`defaults`]): the declared defaults, whatever the environment says, so a test
//!   or a library user gets what `tanda` with no flags gets;
//! - the environment of a child process ([`as_env`]): the same struct serialized (`serde`), each
//!   field under the environment variable clap reads it from, so `tanda cluster` starts every
//!   service configured as itself. A field that stays with the parent is `#[serde(skip)]`.
//!
//! The parsers and formatters here are shared by those structs, so a duration or a distance reads
//! and writes the same way everywhere.

use std::time::Duration;

use clap::{Args, Command, FromArgMatches};
use serde::Serializer;

/// The declared defaults of `T`, as `tanda` with no flags and an empty environment would have.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting has a default or is optional");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

/// `settings` as environment variables: each serialized field under the variable clap reads it
/// from (`command` declares both, by the field's name). `None` and empty lists are left out.
///
/// # Panics
/// When a serialized field has no environment variable in `command`, or a value is not a
/// scalar: a settings struct that would silently lose a knob on its way to a child.
pub fn as_env(settings: &impl serde::Serialize, command: &Command) -> Vec<(String, String)> {
    let value = serde_json::to_value(settings).expect("settings serialize");
    let mut env = Vec::new();
    collect(&value, command, &mut env);
    env
}

fn collect(value: &serde_json::Value, command: &Command, env: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let Value::Object(fields) = value else {
        panic!("settings serialize as a struct, not {value}");
    };
    for (field, value) in fields {
        let text = match value {
            Value::Null => continue,
            Value::Object(_) => {
                collect(value, command, env);
                continue;
            }
            Value::Array(items) if items.is_empty() => continue,
            Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
            scalar_value => scalar(scalar_value),
        };
        let name = command
            .get_arguments()
            .find(|arg| arg.get_id() == field.as_str())
            .and_then(|arg| arg.get_env())
            .unwrap_or_else(|| panic!("setting `{field}` has no environment variable"));
        env.push((name.to_string_lossy().into_owned(), text));
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => panic!("a setting is a scalar or a list of scalars, not {other}"),
    }
}

/// A duration: `500ms`, `15s`, `2m`, `1h`.
///
/// # Errors
/// What is not one, with examples.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 15s, 2m)"))
}

/// A duration above zero.
///
/// # Errors
/// Zero, or what [`duration`] refuses.
pub fn timeout(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("a timeout above 0, e.g. 10s".to_owned()),
        d => Ok(d),
    }
}

/// A distance in metres, read as metres (`800`, `800m`) or kilometres (`5km`, `2.5km`), above 0.
///
/// # Errors
/// What is not a finite distance above zero.
pub fn metres(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, unit) = match s.strip_suffix("km") {
        Some(n) => (n, 1000.0),
        None => (s.strip_suffix('m').unwrap_or(s), 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * unit),
        _ => Err("a distance above 0, e.g. 5km or 800m".to_owned()),
    }
}

/// Writes a duration as [`duration`] reads it back (`#[serde(serialize_with = …)]`).
///
/// # Errors
/// The serializer's.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde hands a reference
pub fn write_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Writes a value by its `Display`, which its flag's parser reads back.
///
/// # Errors
/// The serializer's.
pub fn write_display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// [`write_display`] of an optional value; `None` is left out.
///
/// # Errors
/// The serializer's.
pub fn write_display_opt<T: std::fmt::Display, S: Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
    struct Example {
        /// A wait.
        #[arg(long, env = "TANDA_EXAMPLE_WAIT", default_value = "1500ms", value_parser = duration)]
        #[serde(serialize_with = "write_duration")]
        wait: Duration,
        /// A radius.
        #[arg(long, env = "TANDA_EXAMPLE_RADIUS", default_value = "5km", value_parser = metres)]
        radius: f64,
        /// Origins.
        #[arg(long = "origin", env = "TANDA_EXAMPLE_ORIGINS", value_delimiter = ',')]
        origins: Vec<String>,
        /// Maybe a hook.
        #[arg(long, env = "TANDA_EXAMPLE_HOOK")]
        hook: Option<String>,
    }

    #[test]
    fn defaults_are_the_declared_ones_whatever_the_environment() {
        #[derive(clap::Args)]
        struct ReadsPath {
            /// Declared to read `PATH`, which every process has.
            #[arg(long, env = "PATH", default_value = "declared")]
            path: String,
        }
        assert!(std::env::var_os("PATH").is_some());
        assert_eq!(defaults::<ReadsPath>().path, "declared");
        let example = defaults::<Example>();
        assert_eq!(example.wait, Duration::from_millis(1500));
        assert_eq!(example.radius, 5_000.0);
        assert!(example.origins.is_empty() && example.hook.is_none());
    }

    #[test]
    fn settings_become_the_environment_they_are_read_from() {
        let command = Example::augment_args(Command::new("t"));
        let example = Example {
            wait: Duration::from_millis(2_250),
            radius: 800.0,
            origins: vec!["https://a.example".into(), "https://b.example".into()],
            hook: None,
        };
        let env = as_env(&example, &command);
        // In the order of the fields' names.
        assert_eq!(
            env,
            [
                (
                    "TANDA_EXAMPLE_ORIGINS".to_owned(),
                    "https://a.example,https://b.example".to_owned()
                ),
                ("TANDA_EXAMPLE_RADIUS".to_owned(), "800.0".to_owned()),
                ("TANDA_EXAMPLE_WAIT".to_owned(), "2s 250ms".to_owned()),
            ]
        );
        // Read back through the flags the same variables stand for.
        let argv = ["t", "--wait", "2s 250ms", "--radius", "800.0", "--origin"]
            .into_iter()
            .chain(["https://a.example,https://b.example"]);
        let again = Example::from_arg_matches(&command.get_matches_from(argv)).unwrap();
        assert_eq!(again, example);
    }

    #[test]
    #[should_panic(expected = "has no environment variable")]
    fn a_field_without_a_variable_is_refused() {
        #[derive(serde::Serialize)]
        struct Lost {
            stray: u32,
        }
        as_env(
            &Lost { stray: 1 },
            &Example::augment_args(Command::new("t")),
        );
    }

    #[test]
    fn distances_read_in_metres_or_kilometres() {
        assert_eq!(metres("5km"), Ok(5_000.0));
        assert_eq!(metres("2.5km"), Ok(2_500.0));
        assert_eq!(metres("800m"), Ok(800.0));
        assert_eq!(metres("800"), Ok(800.0));
        assert_eq!(metres("800.0"), Ok(800.0));
        for bad in ["", "0", "-1km", "far", "NaNm", "infkm"] {
            assert!(metres(bad).is_err(), "{bad}");
        }
        assert!(timeout("0s").is_err());
        assert_eq!(timeout("2s 250ms"), Ok(Duration::from_millis(2_250)));
    }
}
