//! Identity events: accounts and the language each one reads Tanda in. Every event's ordering key
//! is its user id, so a user's events arrive in the order identity made them.
//!
//! Flow: sign-up (or the operator account made at first start) `AccountOpened` → any number of
//! `LocaleChanged`. Notify keeps each receiver's language from these.

use serde::{Deserialize, Serialize};
use tanda_core::Event;

macro_rules! event {
    ($name:ident) => {
        impl Event for $name {
            const TYPE: &'static str = concat!("identity.", stringify!($name));
            fn aggregate_id(&self) -> &str {
                &self.user_id
            }
        }
    };
}

/// An account exists: `user_id` is the customerId, driverId or flight userId of the other calls.
/// Published once per account (accounts made before identity published events are announced
/// once, at its next start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOpened {
    pub user_id: String,
    /// `customer`, `driver` or `operator`.
    pub role: String,
    /// The language of the account's notifications: `ko` or `en`.
    pub locale: String,
}
event!(AccountOpened);

/// The account's owner (or an operator) chose another language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocaleChanged {
    pub user_id: String,
    /// `ko` or `en`.
    pub locale: String,
}
event!(LocaleChanged);

/// What identity publishes (the bus wires consumers to producers from these).
pub const IDENTITY_EVENTS: &[&str] = &[AccountOpened::TYPE, LocaleChanged::TYPE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_namespaced_and_keyed_by_user() {
        assert_eq!(AccountOpened::TYPE, "identity.AccountOpened");
        assert_eq!(LocaleChanged::TYPE, "identity.LocaleChanged");
        let e = LocaleChanged {
            user_id: "kim-minji".into(),
            locale: "en".into(),
        };
        assert_eq!(e.aggregate_id(), "kim-minji");
    }
}
