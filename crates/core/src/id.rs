//! Identifiers: server-made ids are UUIDv7 strings (time-ordered, opaque to clients);
//! client-named ids are parsed once at the edge into [`ClientId`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// A new server-side id: a UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An id the client names (driverId, customerId, userId, flightId):
/// 1–64 characters of ASCII letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be 1-64 characters of letters, digits, '-' or '_'")]
pub struct InvalidClientId;

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, InvalidClientId> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidClientId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidClientId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("driver-7_a").is_ok());
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(ClientId::parse(""), Err(InvalidClientId));
        assert_eq!(ClientId::parse(&"a".repeat(65)), Err(InvalidClientId));
        assert_eq!(ClientId::parse("a b"), Err(InvalidClientId));
        assert_eq!(ClientId::parse("기사"), Err(InvalidClientId));
    }
}
