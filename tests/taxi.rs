//! Every taxi requirement of seed 000, black-box over HTTP against the all-in-one app.

mod common;
#[path = "scenarios/contract.rs"]
mod contract;
#[path = "scenarios/identity.rs"]
mod identity;
#[path = "scenarios/taxi.rs"]
mod taxi;

tests_on!(AllInOne, taxi:
    a_full_ride_from_request_to_automatic_payment,
    a_declined_card_is_a_402_and_the_trip_stays_in_trip,
    the_fare_cannot_be_set_by_paying_first,
    an_implausible_distance_is_refused_and_the_trip_stays_in_trip,
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
    the_story_reads_in_order_after_a_notify_outage,
    a_driver_outside_the_pickup_radius_is_never_offered,
    a_declined_card_is_replaced_and_the_ride_is_paid,
    a_declined_card_is_settled_in_cash_and_the_driver_is_free,
    with_dispatch_paused_the_customer_is_answered_by_the_deadline_and_nothing_is_offered_after,
    a_dispatch_that_lands_after_the_system_cancel_is_compensated,
    booking_far_from_every_free_driver_answers_503,
);

tests_on!(AllInOne, identity:
    a_customer_signs_up_and_signs_in_through_the_gateway,
    credentials_that_do_not_verify_are_refused_everywhere,
    secrets_are_kept_and_shown_nowhere,
    a_stranger_cannot_sign_up_as_someone_an_operator_acted_for,
    a_korean_and_an_english_receiver_read_their_own_language,
);

tests_on!(AllInOne, contract: every_documented_operation_checks_who_calls);
