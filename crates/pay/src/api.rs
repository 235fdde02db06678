//! The charge flow, shared by `POST /pays` and by the in-process client the binary hands to
//! dispatch: a trip is charged at most once, however often or concurrently it is asked.

use std::sync::Arc;

use tanda_cardnet::{CardNetwork, Charge, ChargeError};
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_core::id::new_id;
use tanda_core::{Db, Envelope};

use crate::PayError;
use crate::domain::{AmountMismatch, ChargeOrder, Payment, Settlement};
use crate::store;

/// The pay service's in-process handle.
#[derive(Clone)]
pub struct PayApi {
    pub(crate) db: Db,
    pub(crate) network: Arc<CardNetwork>,
}

impl PayApi {
    /// Pays the trip `request.dispatch_id` its `amount` unless it was paid already: charged to
    /// the card, or recorded as taken in cash. Returns its payment and whether this call created
    /// it. A trip paid (or charged at the network) another amount is refused: the amount is
    /// always the one asked, never an earlier one. A trip already paid one way answers a request
    /// to pay it the other with that payment: it is paid.
    pub async fn pay(&self, request: PayRequest) -> Result<(Pay, bool), PayError> {
        let order = ChargeOrder::parse(request).map_err(|e| PayError::Invalid(e.to_string()))?;
        if let Some(paid) = store::by_dispatch(self.db.reader(), order.dispatch_id()).await? {
            order.answered_by(paid.amount)?;
            return Ok((paid.view(), false));
        }
        let charge = match order.settlement() {
            // The dispatch id is the network's idempotency key, so callers racing past the check
            // above still charge the card once; the UNIQUE dispatch id then keeps one payment.
            Settlement::Card { token } => {
                store::note_card_attempt(&self.db, order.dispatch_id()).await?;
                let charge = self
                    .network
                    .charge(token, order.amount(), order.dispatch_id());
                Some(charge.await?)
            }
            Settlement::Cash => self.charge_already_made(order.dispatch_id()).await?,
        };
        let mut uow = self.db.begin().await?;
        let payment = match &charge {
            Some(charge) => Payment::approved(order, charge, new_id(), uow.now())?,
            None => Payment::in_cash(order, new_id(), uow.now())
                .expect("only a cash order goes without a charge"),
        };
        let created = store::insert(&mut uow, &payment).await?;
        if created {
            let event = payment.approved_event();
            uow.publish(&Envelope::new(
                &event,
                &payment.book_id,
                None,
                payment.paid_at,
            ))
            .await?;
        }
        let stored = store::by_dispatch(uow.conn(), &payment.dispatch_id)
            .await?
            .expect("the trip's payment was just inserted or already there");
        // A concurrent call for another amount may have stored the trip's payment first.
        if stored.amount != payment.amount {
            return Err(AmountMismatch {
                dispatch_id: stored.dispatch_id,
                charged: stored.amount,
                asked: payment.amount,
            }
            .into());
        }
        uow.commit().await?;
        Ok((stored.view(), created))
    }
}

impl PayApi {
    /// Before a trip is settled in cash: the charge the network made for it, if an earlier
    /// attempt to charge its card went through but its answer was lost (a timeout, a crash).
    /// The trip is then paid by that charge, and the driver must not take the fare again. Only
    /// a trip whose card pay has tried asks the network, so cash needs no network otherwise.
    async fn charge_already_made(&self, dispatch_id: &str) -> Result<Option<Charge>, PayError> {
        if !store::card_attempted(&self.db, dispatch_id).await? {
            return Ok(None);
        }
        Ok(self.network.charge_made(dispatch_id).await?)
    }
}

impl From<ChargeError> for PayError {
    fn from(e: ChargeError) -> Self {
        match e {
            ChargeError::Declined(reason) => PayError::Declined(reason.to_owned()),
            ChargeError::InvalidToken => {
                PayError::Invalid("cardToken is not a token of the card network".to_owned())
            }
            ChargeError::Unavailable => {
                PayError::Unavailable("the card network is unavailable; retry shortly".to_owned())
            }
        }
    }
}
