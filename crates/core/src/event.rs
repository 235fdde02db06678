//! The event envelope (DESIGN §4): the same JSON on every transport.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{Timestamp, rfc3339};
use crate::id::new_id;

/// An integration event of the catalog: a type name, a schema version and an ordering key.
pub trait Event: Serialize + DeserializeOwned + Send + Sync {
    /// e.g. `taxi.BookRequested`.
    const TYPE: &'static str;
    const VERSION: u32 = 1;
    /// The ordering key: events with the same key are delivered in order.
    fn aggregate_id(&self) -> &str;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// UUIDv7; the dedup key for the inbox and for the broker.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub schema_version: u32,
    pub aggregate_id: String,
    /// The saga this event belongs to (a booking or reservation id).
    pub correlation_id: String,
    /// The event that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    pub occurred_at: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
#[error("event {id} ({kind}) has a payload that does not decode: {source}")]
pub struct DecodeError {
    id: String,
    kind: String,
    source: serde_json::Error,
}

impl Envelope {
    /// Wraps `event`; `cause` is the envelope that caused it (correlation is inherited), or
    /// `None` for an event caused by a command, which then starts or continues saga `correlation`.
    pub fn new<E: Event>(
        event: &E,
        correlation: &str,
        cause: Option<&Envelope>,
        at: Timestamp,
    ) -> Self {
        Self {
            id: new_id(),
            kind: E::TYPE.to_owned(),
            schema_version: E::VERSION,
            aggregate_id: event.aggregate_id().to_owned(),
            correlation_id: cause.map_or(correlation, |c| &c.correlation_id).to_owned(),
            causation_id: cause.map(|c| c.id.clone()),
            occurred_at: rfc3339(at),
            payload: serde_json::to_value(event).expect("catalog events serialize to JSON"),
        }
    }

    pub fn is<E: Event>(&self) -> bool {
        self.kind == E::TYPE
    }

    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        serde_json::from_value(self.payload.clone()).map_err(|source| DecodeError {
            id: self.id.clone(),
            kind: self.kind.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Pinged {
        thing_id: String,
    }
    impl Event for Pinged {
        const TYPE: &'static str = "test.Pinged";
        fn aggregate_id(&self) -> &str {
            &self.thing_id
        }
    }

    #[test]
    fn envelope_carries_correlation_and_causation() {
        let first = Envelope::new(
            &Pinged {
                thing_id: "t1".into(),
            },
            "saga-1",
            None,
            0,
        );
        let second = Envelope::new(
            &Pinged {
                thing_id: "t1".into(),
            },
            "ignored",
            Some(&first),
            5,
        );
        assert_eq!(second.correlation_id, "saga-1");
        assert_eq!(second.causation_id.as_deref(), Some(first.id.as_str()));
        assert_eq!(second.decode::<Pinged>().unwrap().thing_id, "t1");
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(json["type"], "test.Pinged");
        assert_eq!(json["schemaVersion"], 1);
        assert!(json.get("causationId").is_none());
    }

    #[test]
    fn tolerates_added_fields() {
        let mut e = Envelope::new(
            &Pinged {
                thing_id: "t1".into(),
            },
            "s",
            None,
            0,
        );
        e.payload["addedLater"] = serde_json::json!(42);
        assert_eq!(e.decode::<Pinged>().unwrap().thing_id, "t1");
    }
}
