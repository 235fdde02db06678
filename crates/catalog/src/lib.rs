//! The event catalog and the synchronous contracts: the only things Tanda's services share.
//!
//! Every event type is versioned (`Event::VERSION`); consumers ignore types they do not know and
//! tolerate fields added later. Changing a field's meaning means a new type or a new version.

pub mod flight;
pub mod identity;
pub mod taxi;

/// A named place with coordinates, as clients send it (`{name, lat, lng}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub name: String,
    pub lat: f64,
    pub lng: f64,
}
