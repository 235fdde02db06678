//! A trip's payment: the charge order parsed at the edge, and the payment it becomes once the card
//! network approves it (or, for cash, at once: the driver took the fare). A stored payment is
//! always `PAID` (declined charges are never kept), and a trip (dispatch) has at most one.

use tanda_cardnet::Charge;
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_catalog::taxi::{CARD, CASH, PaymentApproved};
use tanda_core::clock::{Timestamp, rfc3339};

/// The largest fare pay accepts, in won: far above any taxi ride, low enough to catch a unit slip.
pub const MAX_AMOUNT: i64 = 10_000_000;
const MAX_REF_LEN: usize = 100;
const MAX_TOKEN_LEN: usize = 200;
/// The only status a stored payment has.
pub const PAID: &str = "PAID";

/// Why a `POST /pays` request cannot be charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPayment {
    #[error("{0} must not be blank")]
    Blank(&'static str),
    #[error("{0} must be at most {1} characters")]
    TooLong(&'static str, usize),
    #[error("amount must be between 1 and {MAX_AMOUNT} won")]
    Amount,
    #[error("method must be CARD or CASH")]
    Method,
    #[error("cardToken must be absent when the method is CASH")]
    TokenWithCash,
}

/// How a trip's fare is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Charged to this card token through the network.
    Card { token: String },
    /// Paid to the driver in cash: nothing is charged.
    Cash,
}

/// A trip is charged one amount, the fare dispatch computed: asked for another once it was
/// charged, pay refuses rather than answer with the first payment, whose amount would then become
/// the trip's fare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dispatch {dispatch_id} was already charged {charged} won; this request asks for {asked} won"
)]
pub struct AmountMismatch {
    pub dispatch_id: String,
    pub charged: i64,
    pub asked: i64,
}

/// A request that may be sent to the card network: only [`ChargeOrder::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeOrder {
    book_id: String,
    customer_id: String,
    dispatch_id: String,
    amount: i64,
    settlement: Settlement,
}

impl ChargeOrder {
    pub fn parse(request: PayRequest) -> Result<Self, InvalidPayment> {
        let PayRequest {
            book_id,
            customer_id,
            dispatch_id,
            amount,
            card_token,
            method,
        } = request;
        let settlement = match method.as_str() {
            CARD => Settlement::Card {
                token: text("cardToken", card_token, MAX_TOKEN_LEN)?,
            },
            CASH if card_token.is_empty() => Settlement::Cash,
            CASH => return Err(InvalidPayment::TokenWithCash),
            _ => return Err(InvalidPayment::Method),
        };
        Ok(Self {
            book_id: text("bookId", book_id, MAX_REF_LEN)?,
            customer_id: if customer_id.chars().count() <= MAX_REF_LEN {
                customer_id
            } else {
                return Err(InvalidPayment::TooLong("customerId", MAX_REF_LEN));
            },
            dispatch_id: text("dispatchId", dispatch_id, MAX_REF_LEN)?,
            amount: if (1..=MAX_AMOUNT).contains(&amount) {
                amount
            } else {
                return Err(InvalidPayment::Amount);
            },
            settlement,
        })
    }

    /// The trip being paid; also the card network's idempotency key for this charge.
    pub fn dispatch_id(&self) -> &str {
        &self.dispatch_id
    }
    pub fn amount(&self) -> i64 {
        self.amount
    }
    pub fn settlement(&self) -> &Settlement {
        &self.settlement
    }

    /// Whether an earlier charge of this trip (a stored payment, or the network's answer to its
    /// idempotency key) of `charged` won answers this order: only if it is the amount asked.
    pub fn answered_by(&self, charged: i64) -> Result<(), AmountMismatch> {
        if charged == self.amount {
            Ok(())
        } else {
            Err(AmountMismatch {
                dispatch_id: self.dispatch_id.clone(),
                charged,
                asked: self.amount,
            })
        }
    }
}

fn text(field: &'static str, value: String, max: usize) -> Result<String, InvalidPayment> {
    if value.trim().is_empty() {
        Err(InvalidPayment::Blank(field))
    } else if value.chars().count() > max {
        Err(InvalidPayment::TooLong(field, max))
    } else {
        Ok(value)
    }
}

/// A charged trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub pay_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub dispatch_id: String,
    pub amount: i64,
    /// `CARD` or `CASH`.
    pub method: String,
    /// Empty for cash.
    pub card_last4: String,
    pub paid_at: Timestamp,
}

impl Payment {
    /// The payment for `order` once the network approved `charge`, which must have charged the
    /// amount ordered: a retried charge returns the first one, whatever it was asked.
    pub fn approved(
        order: ChargeOrder,
        charge: &Charge,
        pay_id: String,
        now: Timestamp,
    ) -> Result<Self, AmountMismatch> {
        order.answered_by(charge.amount)?;
        Ok(Self {
            pay_id,
            book_id: order.book_id,
            customer_id: order.customer_id,
            dispatch_id: order.dispatch_id,
            amount: charge.amount,
            method: CARD.to_owned(),
            card_last4: charge.last4.clone(),
            paid_at: now,
        })
    }

    /// The payment for `order` settled in cash: the driver took the fare ordered, no card was
    /// charged. `None` for an order to be charged to a card.
    pub fn in_cash(order: ChargeOrder, pay_id: String, now: Timestamp) -> Option<Self> {
        (order.settlement == Settlement::Cash).then(|| Self {
            pay_id,
            book_id: order.book_id,
            customer_id: order.customer_id,
            dispatch_id: order.dispatch_id,
            amount: order.amount,
            method: CASH.to_owned(),
            card_last4: String::new(),
            paid_at: now,
        })
    }

    /// The event announcing this payment.
    pub fn approved_event(&self) -> PaymentApproved {
        PaymentApproved {
            pay_id: self.pay_id.clone(),
            book_id: self.book_id.clone(),
            dispatch_id: self.dispatch_id.clone(),
            amount: self.amount,
            card_last4: self.card_last4.clone(),
            paid_at: rfc3339(self.paid_at),
            method: self.method.clone(),
        }
    }

    /// The payment as the pay contract shows it.
    pub fn view(&self) -> Pay {
        Pay {
            pay_id: self.pay_id.clone(),
            book_id: self.book_id.clone(),
            dispatch_id: self.dispatch_id.clone(),
            amount: self.amount,
            method: self.method.clone(),
            card_last4: (!self.card_last4.is_empty()).then(|| self.card_last4.clone()),
            status: PAID.to_owned(),
            paid_at: rfc3339(self.paid_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(amount: i64) -> PayRequest {
        PayRequest {
            book_id: "b1".into(),
            customer_id: "c1".into(),
            dispatch_id: "d1".into(),
            amount,
            card_token: "tok_4242_ok_0123456789abcdef".into(),
            method: CARD.into(),
        }
    }

    fn cash(amount: i64) -> PayRequest {
        PayRequest {
            card_token: String::new(),
            method: CASH.into(),
            ..request(amount)
        }
    }

    #[test]
    fn parses_a_valid_request() {
        let order = ChargeOrder::parse(request(4800)).unwrap();
        assert_eq!(order.dispatch_id(), "d1");
        assert_eq!(order.amount(), 4800);
        assert_eq!(
            order.settlement(),
            &Settlement::Card {
                token: "tok_4242_ok_0123456789abcdef".into()
            }
        );
    }

    #[test]
    fn cash_needs_no_card_and_takes_none() {
        let order = ChargeOrder::parse(cash(4800)).unwrap();
        assert_eq!(order.settlement(), &Settlement::Cash);
        let with_token = PayRequest {
            card_token: "tok_4242_ok_0123456789abcdef".into(),
            ..cash(4800)
        };
        assert_eq!(
            ChargeOrder::parse(with_token),
            Err(InvalidPayment::TokenWithCash)
        );
        let cheque = PayRequest {
            method: "CHEQUE".into(),
            ..request(4800)
        };
        assert_eq!(ChargeOrder::parse(cheque), Err(InvalidPayment::Method));
        let card_without_token = PayRequest {
            card_token: String::new(),
            ..request(4800)
        };
        assert_eq!(
            ChargeOrder::parse(card_without_token),
            Err(InvalidPayment::Blank("cardToken"))
        );
    }

    #[test]
    fn a_cash_payment_is_the_fare_ordered_with_no_card() {
        let payment = Payment::in_cash(ChargeOrder::parse(cash(11_200)).unwrap(), "p1".into(), 7)
            .expect("a cash order");
        let pay = payment.view();
        assert_eq!((pay.amount, pay.method.as_str()), (11_200, CASH));
        assert_eq!(pay.card_last4, None);
        let event = payment.approved_event();
        assert_eq!(
            (event.method.as_str(), event.card_last4.as_str()),
            (CASH, "")
        );
        assert_eq!(
            Payment::in_cash(ChargeOrder::parse(request(11_200)).unwrap(), "p2".into(), 7),
            None,
            "a card order is charged, never taken as cash"
        );
    }

    #[test]
    fn rejects_blank_and_long_fields_naming_them() {
        let blank_book = PayRequest {
            book_id: "  ".into(),
            customer_id: "c1".into(),
            ..request(4800)
        };
        assert_eq!(
            ChargeOrder::parse(blank_book),
            Err(InvalidPayment::Blank("bookId"))
        );
        let long_dispatch = PayRequest {
            dispatch_id: "d".repeat(101),
            ..request(4800)
        };
        assert_eq!(
            ChargeOrder::parse(long_dispatch),
            Err(InvalidPayment::TooLong("dispatchId", 100))
        );
        let no_token = PayRequest {
            card_token: String::new(),
            ..request(4800)
        };
        assert_eq!(
            ChargeOrder::parse(no_token).unwrap_err().to_string(),
            "cardToken must not be blank"
        );
    }

    #[test]
    fn payment_takes_the_charged_amount_and_card() {
        let order = ChargeOrder::parse(request(8000)).unwrap();
        let charge = Charge {
            charge_id: "ch_1".into(),
            last4: "4242".into(),
            amount: 8000,
        };
        let payment = Payment::approved(order, &charge, "p1".into(), 1_795_000_000_000).unwrap();
        let pay = payment.view();
        assert_eq!(
            (pay.amount, pay.card_last4.as_deref(), pay.status.as_str()),
            (8000, Some("4242"), PAID)
        );
        assert_eq!(pay.method, CARD);
        let event = payment.approved_event();
        assert_eq!(
            (event.pay_id.as_str(), event.book_id.as_str()),
            ("p1", "b1")
        );
        assert_eq!(event.paid_at, pay.paid_at);
    }

    #[test]
    fn a_charge_of_another_amount_answers_no_order() {
        let charge = Charge {
            charge_id: "ch_1".into(),
            last4: "4242".into(),
            amount: 1,
        };
        let order = ChargeOrder::parse(request(11_200)).unwrap();
        let refused = Payment::approved(order, &charge, "p1".into(), 1_795_000_000_000);
        assert_eq!(
            refused,
            Err(AmountMismatch {
                dispatch_id: "d1".into(),
                charged: 1,
                asked: 11_200
            })
        );
    }

    proptest! {
        #[test]
        fn an_earlier_charge_answers_an_order_exactly_when_amounts_agree(
            asked in 1..=MAX_AMOUNT,
            charged in 1..=MAX_AMOUNT,
        ) {
            let order = ChargeOrder::parse(request(asked)).unwrap();
            prop_assert_eq!(order.answered_by(charged).is_ok(), asked == charged);
        }

        #[test]
        fn amount_is_accepted_exactly_in_range(amount in any::<i64>()) {
            let parsed = ChargeOrder::parse(request(amount));
            prop_assert_eq!(parsed.is_ok(), (1..=MAX_AMOUNT).contains(&amount));
        }

        #[test]
        fn ids_are_accepted_exactly_when_non_blank_and_short(id in "\\PC{0,120}") {
            let parsed = ChargeOrder::parse(PayRequest { dispatch_id: id.clone(), ..request(4800) });
            let valid = !id.trim().is_empty() && id.chars().count() <= 100;
            prop_assert_eq!(parsed.is_ok(), valid);
        }
    }
}
