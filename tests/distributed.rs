//! The same black-box taxi and flight scenarios against the distributed topology: every service
//! its own process on PostgreSQL and NATS JetStream, behind the gateway (`tanda cluster`).

mod common;
#[path = "scenarios/flight.rs"]
mod flight;
#[path = "scenarios/taxi.rs"]
mod taxi;

tests_on!(Distributed, taxi:
    a_full_ride_from_request_to_automatic_payment,
    a_declined_card_is_a_402_and_the_trip_stays_in_trip,
    the_fare_cannot_be_set_by_paying_first,
    the_breaker_opens_while_the_card_network_is_down_and_the_trip_completes_after_recovery,
    cancel_before_accept_withdraws_the_offer,
    cancel_after_dispatch_frees_the_driver,
    cancel_after_boarding_is_refused,
    cancel_racing_boarding_resolves_to_the_trip,
    nobody_accepts_so_the_system_cancels_within_the_deadline_and_tells_the_customer,
    with_no_driver_online_booking_answers_503_with_retry_after,
    a_creating_post_with_an_idempotency_key_creates_once,
    bad_input_gets_problems_and_changes_nothing,
    rides_complete_while_ride_history_is_down_and_it_catches_up,
    operations_endpoints,
);

tests_on!(Distributed, flight:
    a_funded_reservation_is_paid_ticketed_and_confirmed,
    an_underfunded_reservation_fails_debits_nothing_and_releases_the_seat,
    cancelling_refunds_once_voids_the_ticket_and_frees_the_seat,
    fifty_concurrent_reservations_for_ten_seats_sell_exactly_ten,
    reservations_are_taken_while_payment_is_down_and_complete_when_it_returns,
    bad_flight_input_gets_problems_and_changes_nothing,
    a_deposit_with_an_idempotency_key_counts_once,
    operators_see_every_service_ready_with_its_breakers_and_outbox,
    the_web_pages_are_served_by_the_gateway_over_the_public_api,
);
