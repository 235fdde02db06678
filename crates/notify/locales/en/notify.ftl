# Notify's messages in English. Every message here is in ko/notify.ftl too, with the same
# arguments (a unit test checks). Money and times arrive already written for the language
# ($fare: "₩11,200"; $deadline: "21 Nov 18:30", Seoul time).

## Taxi: to the customer

book-requested = Looking for a taxi from { $pickup } to { $dropoff }.
taxi-dispatched = Taxi { $car } ({ $driver }, { $phone }) is on its way: about { $minutes } min.
trip-started = Your trip has started.
trip-ended-card = You have arrived. { $fare } was charged (payment { $payId }).
trip-ended-cash = You have arrived. The { $fare } fare was paid in cash.
dispatch-failed = Sorry, no taxi could be found. Please try again in a little while.
book-cancelled = Your booking was cancelled.
cancel-rejected = Too late to cancel: your trip has already started.
payment-declined = Your card was declined for the { $fare } fare: replace the card in the app, or pay the driver in cash.

## Taxi: to the driver

ride-offered = New ride: { $pickup } → { $dropoff }. Accept by { $deadline } (Seoul time).
ride-accepted = Ride accepted; head to the pickup.
trip-ended-driver = Trip complete: { $fare }.
trip-ended-driver-cash = Trip complete: { $fare }, paid in cash.
offer-withdrawn = The ride offer was withdrawn: the booking has closed.
offer-expired = The ride offer expired before you accepted it; it has gone to another driver.
ride-cancelled = The customer cancelled the ride.
ride-cancelled-expired = The booking closed before the ride could start; you are free for the next one.
payment-declined-driver = The customer's card was declined: end the trip again once they replace it, or settle in cash.
card-replaced = The customer replaced their card (…{ $last4 }); you can end the trip now.

## Flight: to the traveller

reservation-requested = Reservation received for flight { $flight } ({ $from } → { $to }, departing { $departs }); paying { $price }.
reservation-pending = Payment is delayed; your reservation is pending and will complete on its own.
reservation-confirmed = Your reservation is confirmed.
reservation-cancelled = Your reservation is cancelled.
payment-succeeded = Paid { $amount }; balance { $balance }.
payment-failed = Payment failed: your balance of { $balance } is below the price of { $price }.
payment-refunded = Refunded { $amount }; balance { $balance }.
ticket-issued = Ticket { $ticket } issued for flight { $flight }.
ticket-voided = Ticket { $ticket } is void.
