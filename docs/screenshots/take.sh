#!/usr/bin/env bash
# Retakes the README's screenshots: starts `tanda --demo` on a fresh data dir, plays a little
# traffic through the public API, and photographs the four pages with headless Chromium.
# Needs a release build (`cargo build --release`), chromium, curl and jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/screenshots
addr=127.0.0.1:18099
api=http://$addr
data=$(mktemp -d)
target/release/tanda --demo --data-dir "$data" --http-addr "$addr" >"$data/tanda.log" 2>&1 &
tanda=$!
trap 'kill $tanda; wait $tanda 2>/dev/null; rm -rf "$data"' EXIT
until curl -sf "$api/readyz" >/dev/null; do sleep 0.2; done
until [ "$(curl -s "$api/flights" | jq length)" = 6 ]; do sleep 0.2; done

post() { curl -sf -X POST -H 'content-type: application/json' "$api$1" ${2:+-d "$2"}; }
shot() { # page-url file width height
    chromium --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$data/chromium" --timeout=4000 \
        --window-size="$3,$4" --screenshot="$out/$2" "$api$1" 2>/dev/null
}
book() { # customer name pickup-lat pickup-lng pickup-name dropoff-lat dropoff-lng dropoff-name
    post /books "{\"customerId\":\"$1\",\"customerName\":\"$2\",\"phone\":\"010-3333-4444\",
      \"card\":\"4242424242424242\",\"pickup\":{\"name\":\"$5\",\"lat\":$3,\"lng\":$4},
      \"dropoff\":{\"name\":\"$8\",\"lat\":$6,\"lng\":$7}}" | jq -r .bookId
}
status() { curl -s "$api/books/$1" | jq -r .status; }

# A driver of our own on Namsan, where no demo driver waits: one finished trip, then an offer.
post /drivers '{"driverId":"jisoo","name":"Park Jisoo","carNumber":"31사 7219","phone":"010-7777-1234","location":{"lat":37.5512,"lng":126.9882}}' >/dev/null
post /drivers/jisoo/online >/dev/null
first=$(book hana "Kim Hana" 37.5512 126.9882 "N Seoul Tower" 37.5796 126.9770 "Gyeongbokgung Palace")
sleep 0.5
dispatch=$(curl -s "$api/drivers/jisoo/offers" | jq -r '.[0].dispatchId')
post "/dispatches/$dispatch/accept" '{"driverId":"jisoo"}' >/dev/null
post "/dispatches/$dispatch/start" '{"driverId":"jisoo"}' >/dev/null
post "/dispatches/$dispatch/end" '{"driverId":"jisoo","distanceMeters":4650}' >/dev/null
until [ "$(status "$first")" = COMPLETED ]; do sleep 0.2; done
book hana "Kim Hana" 37.5512 126.9882 "N Seoul Tower" 37.5636 126.9826 Myeongdong >/dev/null
until [ "$(curl -s "$api/drivers/jisoo/offers" | jq length)" = 1 ]; do sleep 0.2; done
shot "/driver?driverId=jisoo" drive.png 430 932

# A customer whose demo taxi is on its way.
ride=$(book minji "Lee Minji" 37.5456 126.9647 "Sookmyung Women's University" 37.5118 127.0592 COEX)
until [ "$(status "$ride")" = DISPATCHED ]; do sleep 0.2; done
shot "/customer?customerId=minji" ride.png 430 932

# A traveller with one confirmed flight and one cancelled.
post /accounts/ewha/deposit '{"amount":1000000}' >/dev/null
keep=$(post /reservations '{"userId":"ewha","flightId":"KE703"}' | jq -r .reservationId)
drop=$(post /reservations '{"userId":"ewha","flightId":"KE1203"}' | jq -r .reservationId)
until [ "$(curl -s "$api/reservations/$drop" | jq -r .status)" = CONFIRMED ]; do sleep 0.2; done
post "/reservations/$drop/cancel" >/dev/null
until [ "$(curl -s "$api/reservations/$drop" | jq -r .status)" = CANCELLED ]; do sleep 0.2; done
until [ "$(curl -s "$api/reservations/$keep" | jq -r .status)" = CONFIRMED ]; do sleep 0.2; done
sleep 0.5
shot "/traveller?userId=ewha" fly.png 1100 1050

shot /operator operate.png 1100 1050
echo "screenshots in $out"
