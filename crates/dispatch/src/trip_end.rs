//! Ending a trip: the fare from what the server knows (never a client's number alone), charged
//! through pay synchronously (timeout, retries, breaker: `payment.rs`), and only then the trip
//! recorded as ended (`TripEnded`). A declined card leaves the trip in progress and is told to
//! the customer once, in a unit of its own.

use tanda_catalog::taxi::pay::PayRequest;
use tanda_core::Db;
use tanda_core::id::ClientId;

use crate::domain::{self, Charge, Command, Fleet, PaidTrip, Settlement};
use crate::error::Error;
use crate::payment::Payments;
use crate::store::{self, Store};

/// What the driver ends: their trip, the distance they report (checked against the trip's own
/// path), and how the customer pays.
pub(crate) struct TripEnd {
    pub dispatch_id: String,
    pub driver_id: ClientId,
    pub reported_m: Option<i64>,
    pub settled: Settlement,
}

/// Ends the trip; returns what it changed.
pub(crate) async fn end_trip(
    db: &Db,
    store: &Store,
    payments: &Payments,
    end: TripEnd,
) -> Result<Fleet, Error> {
    let TripEnd {
        dispatch_id,
        driver_id,
        reported_m,
        settled,
    } = end;
    let mut fleet = Fleet::default();
    if let Some(d) = store::dispatch_by_id(&mut db.reader().into(), &dispatch_id).await? {
        fleet.dispatches.insert(d.id.clone(), d);
    }
    let charge = domain::charge(&fleet, store.rules(), &dispatch_id, &driver_id, reported_m)?;
    let pay = match payments
        .pay(&pay_request(&dispatch_id, &charge, settled))
        .await
    {
        Ok(pay) => pay,
        Err(Error::PaymentDeclined(reason)) => {
            tell_declined(db, store, &dispatch_id, &driver_id, &charge, &reason).await;
            return Err(Error::PaymentDeclined(reason));
        }
        Err(e) => return Err(e),
    };
    // The fare is the one computed here; `Payments::pay` returns only a payment of that amount.
    // A trip paid already (an earlier end whose answer was lost) keeps the way it was paid.
    let trip = PaidTrip {
        distance_meters: charge.distance_meters,
        fare: charge.amount,
        pay_id: pay.pay_id,
        method: Settlement::parse(&pay.method).unwrap_or(settled),
    };
    store
        .run(db, || Command::End {
            dispatch_id: dispatch_id.clone().into(),
            driver_id: driver_id.clone(),
            trip: trip.clone(),
        })
        .await
}

/// What pay is asked for a trip: its fare, charged to the booking's card or taken in cash.
fn pay_request(dispatch_id: &str, charge: &Charge, settled: Settlement) -> PayRequest {
    let card_token = match settled {
        Settlement::Card => charge.card_token.clone(),
        Settlement::Cash => String::new(),
    };
    PayRequest {
        book_id: charge.book_id.clone().into(),
        customer_id: charge.customer_id.clone(),
        dispatch_id: dispatch_id.to_owned(),
        amount: charge.amount,
        card_token,
        method: settled.as_str().to_owned(),
    }
}

/// Tells the customer the card was declined (`PaymentDeclined`), in a unit of its own: the trip
/// stays as it is. The driver is answered 402 whatever happens here.
async fn tell_declined(
    db: &Db,
    store: &Store,
    dispatch_id: &str,
    driver_id: &ClientId,
    charge: &Charge,
    reason: &str,
) {
    let told = store
        .run(db, || Command::RecordDecline {
            dispatch_id: dispatch_id.to_owned().into(),
            driver_id: driver_id.clone(),
            card_token: charge.card_token.clone(),
            fare: charge.amount,
            reason: reason.to_owned(),
        })
        .await;
    if let Err(e) = told {
        tracing::warn!(dispatch_id, error = %e, "the declined card could not be told");
    }
}
