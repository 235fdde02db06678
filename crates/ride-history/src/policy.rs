//! The consumer that builds the read model: every ride event it subscribes to becomes a change of
//! that ride's row. Unknown types change nothing; a payload that does not decode is a real failure
//! (retried, then parked as a dead letter).

use async_trait::async_trait;
use tanda_core::consumer::HandlerError;
use tanda_core::subscription::Policy;
use tanda_core::{Envelope, Uow};

use crate::domain::{Change, Takes};
use crate::store;

pub struct RecordRides;

#[async_trait]
impl Policy for RecordRides {
    type Takes = Takes;

    /// A projection: reads and writes only through the unit of work.
    fn batchable(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        uow: &mut Uow,
        taken: Takes,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if let Some(change) = Change::made_by(taken, event)? {
            store::apply(uow, &change).await?;
        }
        Ok(())
    }
}
