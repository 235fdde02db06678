# Tanda's pages in English. Every key here is also in ../ko/web.ftl (a test checks).

## The frame around every page

brand = Tanda
nav-ride = Ride
nav-drive = Drive
nav-fly = Fly
nav-operate = Operate
sign-in = Sign in
sign-up = Sign up
sign-out = Sign out
lang-switch = Language
lang-ko = 한국어
lang-en = English
footer-api = Every page here uses the same public API as any other client
footer-readiness = readiness
footer-metrics = metrics
footer-cards = Card payments go to a simulated card network.
render-failed = This part of the page could not be shown.

title-home = Welcome
title-ride = Ride
title-drive = Drive
title-fly = Fly
title-operate = Operate
title-signin = Sign in
title-signup = Sign up

who-as = as { $who }
who-for = for { $who }
switch-who = switch

## The landing page

home-heading = Taxis and flights, event by event
home-intro = Request a taxi around Seoul and watch it come, drive one, book a seat on a flight, or look under the hood. Open two pages side by side: what one does, the other sees live.
home-guest-note = A customer rides and flies; a driver drives. The operator signs in as { $operator }.
home-ride = Request a taxi, follow it live, pay by card or cash, see your rides.
home-drive = Go online, take offers before they expire, start and end trips, count today's earnings.
home-fly = Top up your wallet, reserve a seat, get your ticket, cancel for a refund.
home-operate = Readiness, consumer lag, the payment breaker, dead letters and redrive.

## Signing up and in

signin-signed-in-as = You are signed in as { $who }. Signing in again replaces that session.
username = Username
password = Password
signin-new-here = New here?
signup-have-account = Already have an account?
signup-role = I want to
signup-role-customer = ride and fly
signup-role-driver = drive a taxi
signup-username-help = Letters, digits, - and _: it is also your customer, traveller or driver id.
signup-language = Language (pages and notifications)
signin-mismatch = That username and password do not match.
signin-too-many-in = Too many failed attempts. Try again in { $wait }.
signin-too-many = Too many failed attempts. Try again later.
signup-taken = That username is taken: choose another, or sign in.
signup-weak = Choose a longer password: at least 8 characters.

wait-seconds = { $n ->
    [one] 1 second
   *[other] { $n } seconds
}
wait-minutes = about { $n } min
minutes-under = under a minute
minutes-about = about { $n } min

## Whom a page is for

choose-note = As the operator you may open this page on behalf of anyone, as a call centre does.
choose-open = Open
choose-customer = The customer's id
choose-traveller = The traveller's user id
not-an-id = "{ $id }" is not an id: up to 64 letters, digits, - and _.
not-yours-heading = Not your page
not-yours = You are signed in as { $who }: this page is someone else's.
not-yours-link = Open yours
wrong-role-heading = Not for this account
wrong-role = This page is for { $role ->
    [driver] drivers
    [operator] the operator
   *[customer] customers
}; you are signed in as { $who }. Sign out and sign in with { $role ->
    [driver] a driver's
    [operator] the operator's
   *[customer] a customer's
} account, or go to your own page.
wrong-role-link = Your page

## Shared words

name = Name
phone = Phone
pickup = Pickup
dropoff = Drop-off
card-number = Card number
notifications = Notifications
notifications-empty = Nothing yet.
paid-card = Card •••• { $last4 }
paid-card-unknown = Card
paid-cash = Cash

## The customer's page

ride-request = Request a taxi
ride-request-button = Request taxi
ride-test-cards = Simulated card network: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined.
ride-coords-below = Coordinates below
ride-coords = Coordinates
ride-pickup-lat = Pickup latitude
ride-pickup-lng = Pickup longitude
ride-dropoff-lat = Drop-off latitude
ride-dropoff-lng = Drop-off longitude
ride-yours = Your ride
ride-none = No ride yet. Choose where to be picked up and where to go.
ride-taxi = Taxi
ride-arrives = arrives in { $eta }
ride-fare = Fare
ride-card-on-file = Card on file: •••• { $last4 }
ride-cancel = Cancel ride
ride-replace-card = Replace card
ride-replace-card-help = The fare is charged to this card when the trip ends. If the card was declined, enter another.
ride-new-card = New card number
ride-card-replaced = The card is replaced: the fare will be charged to •••• { $last4 }.
ride-choose-place = Choose a { $which ->
    [pickup] pickup
   *[dropoff] drop-off
} place, or enter its latitude and longitude.
ride-not-a-number = The { $which ->
    [pickup] pickup
   *[dropoff] drop-off
} { $axis ->
    [lat] latitude
   *[lng] longitude
} "{ $raw }" is not a number.
ride-enter-card = Enter the new card's number.

step-REQUESTED = Searching
step-DISPATCHED = Taxi on the way
step-IN_TRIP = In trip
step-COMPLETED = Completed

note-REQUESTED = Looking for the nearest available taxi…
note-DISPATCHED = Your taxi is on its way to the pickup.
note-IN_TRIP = Enjoy the ride.
note-COMPLETED = Thank you for riding with Tanda.
note-CANCEL_REQUESTED = Cancelling…
note-CANCELLED_BY_CUSTOMER = You cancelled this ride.
note-CANCELLED_BY_SYSTEM = No taxi could take this ride in time. Please try again.

history = Ride history
history-empty = Your rides will show here.

## The driver's page

drivers-open = Open a driver's page
drivers-none = No drivers yet: register one.
drivers-register = Register a driver
drivers-register-own = Register your taxi
drivers-register-note = Once, before your first shift: the car you drive and where you start.
driver-id = Driver id
driver-name-example = Kim Minjun
car-number = Car number
starting-at = Starting at
register = Register
driver-enter-id = Enter the driver's id.

driver-status = Status
driver-near = Near { $place }
driver-go-online = Go online
driver-go-offline = Go offline
driver-move-to = Move to
driver-move = Move
driver-choose-place = Choose a place to move to.
driver-waiting = Waiting for ride requests nearby…
offer-new = New ride request
offer-length = About { $length }.
offer-accept = Accept
offer-decline = Decline
trip-current = Current trip
trip-to-pickup = Drive to the pickup, then start the trip.
trip-to-pickup-eta = Drive to the pickup ({ $eta }), then start the trip.
trip-start = Start trip
trip-distance = Distance driven (m)
trip-end = End trip
trip-declined = The card was declined. End the trip again once the customer has replaced the card, or take the fare in cash.
trip-end-again = End again
trip-paid-cash = Paid in cash
trip-not-a-distance = The distance "{ $raw }" is not a whole number of meters.
trip-no-action = There is no "{ $action }" action on a dispatch.

today = Today
trips-count = from { $count } { $n ->
    [one] trip
   *[other] trips
}

## The traveller's page

wallet = Wallet
deposit-amount = Amount (₩)
deposit = Deposit
deposit-not-a-number = The amount "{ $raw }" is not a whole number of won.
flights = Flights
flights-none = No flights are on sale. (Start Tanda with { $demo } for a few.)
flight = Flight
flight-route = Route
flight-departs = Departs
flight-seats-left = Seats left
flight-price = Price
flight-sold-out = Sold out
flight-reserve = Reserve
reserve-choose = Choose a flight to reserve.
reservations = My reservations
reservations-empty = Reserve a seat above; it shows here as it is paid and ticketed.
reservation-cancel = Cancel
reservation-cancel-confirm = Cancel this reservation? The fare is refunded to your wallet.
reservation-departs = departs { $at }
reservation-ticket = ticket { $id }
tickets = Tickets
tickets-empty = No tickets yet.

## The operator's page

ops-rides = Rides
ops-rides-none = No rides yet.
ops-reservations = Reservations
ops-reservations-none = No reservations yet.
ops-services = Services
ops-service = Service
ops-ready = Ready
ops-outbox = Outbox unpublished
ops-breakers = Circuit breakers
ops-is-ready = ready
ops-not-ready = not ready
ops-consumers = Consumers
ops-consumer = Consumer
ops-lag = Lag (events)
ops-state = State
ops-paused = paused
ops-running = running
ops-pause = Pause
ops-resume = Resume
ops-no-switch = A consumer can be paused or resumed, not "{ $switch }".
ops-dead-letters = Dead letters
ops-dead-letters-none = No parked events.
ops-redriven = redriven
ops-redrive = Redrive
ops-attempts = { $n ->
    [one] 1 attempt
   *[other] { $n } attempts
}
ops-parked = parked { $at }
breaker-CLOSED = CLOSED
breaker-OPEN = OPEN
breaker-HALF_OPEN = HALF_OPEN

## The live map

map = Map
map-ride = Map of the ride
map-trip = Map of the trip
map-you = You
map-fleet = Fleet
map-fleet-label = Map of online drivers and their rides
map-available = Available
map-offered = Offered
map-dispatched = Dispatched
map-in-trip = In trip
map-credit = Districts: Seoul Open Data Plaza, via southkorea/seoul-maps

## The API document

docs-title = Tanda API
docs-noscript = The API's OpenAPI document is at { $link }.

## Statuses, as badges show them

status-REQUESTED = Requested
status-SEARCHING = Searching
status-PENDING = Payment pending
status-CANCEL_REQUESTED = Cancelling
status-OFFERED = Offer waiting
status-DISPATCHED = Taxi on the way
status-IN_TRIP = In trip
status-PAID = Paid
status-AVAILABLE = Available
status-COMPLETED = Completed
status-CONFIRMED = Confirmed
status-ENDED = Ended
status-ISSUED = Issued
status-CANCELLED_BY_CUSTOMER = Cancelled
status-CANCELLED = Cancelled
status-VOID = Void
status-OFFLINE = Offline
status-CANCELLED_BY_SYSTEM = No taxi found
status-PAYMENT_FAILED = Payment failed
status-FAILED = Failed
status-unknown = Unknown

## Landmarks

place-seoul-station = Seoul Station
place-gangnam-station = Gangnam Station
place-hongdae = Hongik University
place-myeongdong = Myeongdong
place-itaewon = Itaewon
place-jamsil = Lotte World Tower
place-yeouido = Yeouido IFC
place-coex = COEX
place-gimpo-airport = Gimpo Airport
place-gyeongbokgung = Gyeongbokgung Palace
place-ddp = Dongdaemun Design Plaza
place-snu = Seoul National University

## What the API refused, by its code ({ $detail } is the API's own sentence)

problem-invalid_card = The card number is not valid: check its digits.
problem-card_declined = The card was declined.
problem-no_taxi_available = No taxi is available near the pickup right now. Please try again in a moment.
problem-payment_unavailable = Payment is unavailable right now; the trip is still in progress. End it again shortly.
problem-implausible_distance = That distance does not fit this trip's route.
problem-already_completed = This ride is already completed.
problem-already_cancelled = This is already cancelled.
problem-cancel_pending = A cancellation is already under way.
problem-trip_started = The trip has already started: it can no longer be cancelled.
problem-offer_expired = This ride request has expired.
problem-not_offered = This ride request is no longer yours to take.
problem-sold_out = No seats are left on this flight.
problem-flight_departed = This flight has already departed.
problem-payment_overloaded = Too many reservations are waiting for payment. Please try again shortly.
problem-invalid_amount = The amount is not accepted: { $detail }.
problem-invalid_phone = The phone number is not valid: { $detail }.
problem-invalid_customer_name = The name is not valid: { $detail }.
problem-missing_field = Something required is missing: { $detail }.
problem-rate_limited = Too many requests. Please try again in a moment.
problem-bad_gateway = The system's answer could not be read. Please try again.
