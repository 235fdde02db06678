//! What a consumer takes, written once: an enum with a variant per event type (declared with
//! [`subscription!`]), from which both the type names the consumer subscribes to and the decoding
//! of each delivery come. A service's reaction is a [`Policy`] over that enum, so adding a type
//! to a consumer is adding a variant, and the compiler asks for its `match` arm.

use async_trait::async_trait;

use crate::consumer::{Handler, HandlerError};
use crate::event::DecodeError;
use crate::{Envelope, Uow};

/// The events a consumer takes, as one type (implemented by [`subscription!`]).
pub trait Subscription: Sized + Send {
    /// The event types, as the consumer declares them to the bus.
    const TYPES: &'static [&'static str];

    /// The event `envelope` carries, or `None` when its type is not among [`Self::TYPES`].
    fn decode(envelope: &Envelope) -> Result<Option<Self>, DecodeError>;
}

/// Declares an enum of the events a consumer takes, one variant per catalog event type, and
/// implements [`Subscription`] for it:
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] pub struct Ping { id: String }
/// # impl tanda_core::Event for Ping {
/// #     const TYPE: &'static str = "demo.Ping";
/// #     fn aggregate_id(&self) -> &str { &self.id }
/// # }
/// tanda_core::subscription! {
///     /// What the demo consumer takes.
///     pub enum Takes {
///         Ping(Ping),
///     }
/// }
/// # use tanda_core::subscription::Subscription;
/// assert_eq!(Takes::TYPES, ["demo.Ping"]);
/// ```
#[macro_export]
macro_rules! subscription {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident($event:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        // Each variant is named after its event type, prefixes and all.
        #[allow(clippy::enum_variant_names)]
        $vis enum $name {
            $($(#[$vmeta])* $variant($event)),+
        }

        impl $crate::subscription::Subscription for $name {
            const TYPES: &'static [&'static str] = &[$(<$event as $crate::Event>::TYPE),+];

            fn decode(
                envelope: &$crate::Envelope,
            ) -> ::std::result::Result<::std::option::Option<Self>, $crate::event::DecodeError> {
                $(
                    if envelope.is::<$event>() {
                        return envelope.decode::<$event>().map(|e| Some(Self::$variant(e)));
                    }
                )+
                Ok(None)
            }
        }
    };
}

/// A service's reaction to the events of its [`Subscription`]: [`Consumer::new`] runs it.
///
/// [`Consumer::new`]: crate::consumer::Consumer::new
#[async_trait]
pub trait Policy: Send + Sync + 'static {
    type Takes: Subscription;

    /// Apply `event`'s effect through `uow`; `envelope` is the delivery it came in (its id,
    /// time and correlation). The error rules are [`Handler::handle`]'s.
    async fn apply(
        &self,
        uow: &mut Uow,
        event: Self::Takes,
        envelope: &Envelope,
    ) -> Result<(), HandlerError>;

    /// As [`Handler::batchable`].
    fn batchable(&self) -> bool {
        false
    }
}

/// A [`Policy`] as the consumer runtime calls it.
pub(crate) struct Typed<P>(pub(crate) P);

#[async_trait]
impl<P: Policy> Handler for Typed<P> {
    async fn handle(&self, uow: &mut Uow, envelope: &Envelope) -> Result<(), HandlerError> {
        match P::Takes::decode(envelope)? {
            Some(event) => self.0.apply(uow, event, envelope).await,
            // The bus delivers only the declared types; another is no concern of this consumer.
            None => Ok(()),
        }
    }

    fn batchable(&self) -> bool {
        self.0.batchable()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        id: String,
    }

    impl crate::Event for Ping {
        const TYPE: &'static str = "test.Ping";
        fn aggregate_id(&self) -> &str {
            &self.id
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong {
        id: String,
    }

    impl crate::Event for Pong {
        const TYPE: &'static str = "test.Pong";
        fn aggregate_id(&self) -> &str {
            &self.id
        }
    }

    crate::subscription! {
        #[derive(Debug, PartialEq)]
        enum Takes {
            Ping(Ping),
            Pong(Pong),
        }
    }

    fn envelope<E: crate::Event>(event: &E) -> Envelope {
        Envelope::new(event, "c", None, 0)
    }

    #[test]
    fn the_types_and_the_decoding_come_from_the_one_enum() {
        assert_eq!(Takes::TYPES, ["test.Ping", "test.Pong"]);
        let pong = Pong { id: "p".into() };
        assert_eq!(
            Takes::decode(&envelope(&pong)).unwrap(),
            Some(Takes::Pong(Pong { id: "p".into() }))
        );
        let ping = envelope(&Ping { id: "q".into() });
        assert_eq!(
            Takes::decode(&ping).unwrap(),
            Some(Takes::Ping(Ping { id: "q".into() }))
        );
    }

    #[test]
    fn another_type_is_none_and_a_bad_payload_an_error() {
        let mut event = envelope(&Ping { id: "q".into() });
        event.payload = serde_json::json!({"id": 7});
        assert!(Takes::decode(&event).is_err());
        event.kind = "test.Other".into();
        assert_eq!(Takes::decode(&event).unwrap(), None);
    }
}
