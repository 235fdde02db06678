//! Every flight requirement of seed 001, black-box over HTTP against the all-in-one app.

mod common;
#[path = "scenarios/flight.rs"]
mod flight;

tests_on!(AllInOne, flight:
    a_funded_reservation_is_paid_ticketed_and_confirmed,
    an_underfunded_reservation_fails_debits_nothing_and_releases_the_seat,
    cancelling_refunds_once_voids_the_ticket_and_frees_the_seat,
    fifty_concurrent_reservations_for_ten_seats_sell_exactly_ten,
    reservations_are_taken_while_payment_is_down_and_complete_when_it_returns,
    bad_flight_input_gets_problems_and_changes_nothing,
    a_deposit_with_an_idempotency_key_counts_once,
    operators_see_every_service_ready_with_its_breakers_and_outbox,
    the_web_pages_are_served_by_the_gateway_over_the_public_api,
    a_departed_flight_is_neither_scheduled_nor_sold_nor_refunded,
    reservations_pause_while_payment_is_overloaded,
);
