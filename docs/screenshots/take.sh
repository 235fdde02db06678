#!/usr/bin/env bash
# Retakes the README's screenshots: starts `tanda --demo` on a fresh data dir, signs up a driver,
# two customers and a traveller, plays a little traffic through the public API as them, and
# photographs the four pages, each signed in as its user, with headless Chromium driven by
# ChromeDriver. Needs a release build (`cargo build --release`; TANDA_BIN=path for another
# binary), chromium, chromium-driver, curl, jq and base64.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/screenshots
bin=${TANDA_BIN:-target/release/tanda}
addr=127.0.0.1:18099
api=http://$addr
wdport=18098
wd=http://127.0.0.1:$wdport
password=correct-horse-battery
data=$(mktemp -d)
TANDA_OPERATOR_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export TANDA_OPERATOR_PASSWORD
"$bin" --demo --data-dir "$data" --http-addr "$addr" >"$data/tanda.log" 2>&1 &
tanda=$!
chromedriver --port=$wdport >"$data/chromedriver.log" 2>&1 &
driver=$!
trap 'kill $tanda $driver; wait $tanda $driver 2>/dev/null || true; rm -rf "$data"' EXIT
until curl -sf "$api/readyz" >/dev/null; do sleep 0.2; done
until [ "$(curl -s "$api/flights" | jq length)" = 6 ]; do sleep 0.2; done
until curl -sf "$wd/status" >/dev/null; do sleep 0.2; done

signup() { # username role name phone
    curl -sf -X POST -H 'content-type: application/json' "$api/auth/signup" -d "{\"username\":\"$1\",
      \"password\":\"$password\",\"role\":\"$2\",\"name\":\"$3\",\"phone\":\"$4\",\"locale\":\"en\"}" >/dev/null
}
token() { # username password
    curl -sf -X POST -H 'content-type: application/json' "$api/auth/token" \
        -d "{\"username\":\"$1\",\"password\":\"$2\"}" | jq -r .access_token
}
call() { # token method path [body]
    curl -sf -X "$2" -H "authorization: Bearer $1" -H 'content-type: application/json' "$api$3" ${4:+-d "$4"}
}
book() { # token customer name pickup-lat pickup-lng pickup-name dropoff-lat dropoff-lng dropoff-name
    call "$1" POST /books "{\"customerId\":\"$2\",\"customerName\":\"$3\",\"phone\":\"010-3333-4444\",
      \"card\":\"4242424242424242\",\"pickup\":{\"name\":\"$6\",\"lat\":$4,\"lng\":$5},
      \"dropoff\":{\"name\":\"$9\",\"lat\":$7,\"lng\":$8}}" | jq -r .bookId
}
status() { call "$1" GET "/books/$2" | jq -r .status; }

# One browser window, signed in for each shot by the session cookie the sign-in form would set.
wdcall() { curl -sf -X "$1" -H 'content-type: application/json' "$wd/session/$session$2" ${3:+-d "$3"}; }
session=$(curl -sf -X POST -H 'content-type: application/json' "$wd/session" -d '{"capabilities":
  {"alwaysMatch":{"goog:chromeOptions":{"binary":"/usr/bin/chromium","args":["--headless=new",
  "--no-sandbox","--disable-gpu","--disable-quic","--no-first-run","--disable-background-networking",
  "--disable-component-update","--disable-sync","--hide-scrollbars"]}}}}' | jq -r .value.sessionId)
shot() { # token page-path file width height
    wdcall POST /goog/cdp/execute "{\"cmd\":\"Emulation.setDeviceMetricsOverride\",
      \"params\":{\"width\":$4,\"height\":$5,\"deviceScaleFactor\":1,\"mobile\":false}}" >/dev/null
    wdcall POST /url "{\"url\":\"$api/signin\"}" >/dev/null
    wdcall DELETE /cookie >/dev/null
    wdcall POST /cookie "{\"cookie\":{\"name\":\"tanda_session\",\"value\":\"$1\",\"path\":\"/\",
      \"httpOnly\":true,\"sameSite\":\"Lax\"}}" >/dev/null
    wdcall POST /url "{\"url\":\"$api$2\"}" >/dev/null
    sleep 1
    wdcall GET /screenshot | jq -r .value | base64 -d >"$out/$3"
}

# A driver of our own on Namsan, where no demo driver waits: one finished trip, then an offer.
signup jisoo driver "Park Jisoo" 010-7777-1234
signup hana customer "Kim Hana" 010-3333-4444
signup minji customer "Lee Minji" 010-3333-4444
signup ewha customer "Choi Ewha" 010-5555-6666
jisoo=$(token jisoo "$password")
hana=$(token hana "$password")
minji=$(token minji "$password")
ewha=$(token ewha "$password")
operator=$(token operator "$TANDA_OPERATOR_PASSWORD")
call "$jisoo" POST /drivers '{"driverId":"jisoo","name":"Park Jisoo","carNumber":"31사 7219","phone":"010-7777-1234","location":{"lat":37.5512,"lng":126.9882}}' >/dev/null
call "$jisoo" POST /drivers/jisoo/online >/dev/null
first=$(book "$hana" hana "Kim Hana" 37.5512 126.9882 "N Seoul Tower" 37.5796 126.9770 "Gyeongbokgung Palace")
sleep 0.5
dispatch=$(call "$jisoo" GET /drivers/jisoo/offers | jq -r '.[0].dispatchId')
call "$jisoo" POST "/dispatches/$dispatch/accept" '{"driverId":"jisoo"}' >/dev/null
call "$jisoo" POST "/dispatches/$dispatch/start" '{"driverId":"jisoo"}' >/dev/null
call "$jisoo" POST "/dispatches/$dispatch/end" '{"driverId":"jisoo","distanceMeters":4650}' >/dev/null
until [ "$(status "$hana" "$first")" = COMPLETED ]; do sleep 0.2; done
book "$hana" hana "Kim Hana" 37.5512 126.9882 "N Seoul Tower" 37.5636 126.9826 Myeongdong >/dev/null
until [ "$(call "$jisoo" GET /drivers/jisoo/offers | jq length)" = 1 ]; do sleep 0.2; done
shot "$jisoo" /driver drive.png 430 932

# A customer whose demo taxi is on its way.
ride=$(book "$minji" minji "Lee Minji" 37.5456 126.9647 "Sookmyung Women's University" 37.5118 127.0592 COEX)
until [ "$(status "$minji" "$ride")" = DISPATCHED ]; do sleep 0.2; done
shot "$minji" /customer ride.png 430 932

# A traveller with one confirmed flight and one cancelled.
call "$ewha" POST /accounts/ewha/deposit '{"amount":1000000}' >/dev/null
keep=$(call "$ewha" POST /reservations '{"userId":"ewha","flightId":"KE703"}' | jq -r .reservationId)
drop=$(call "$ewha" POST /reservations '{"userId":"ewha","flightId":"KE1203"}' | jq -r .reservationId)
reservation() { call "$ewha" GET "/reservations/$1" | jq -r .status; }
until [ "$(reservation "$drop")" = CONFIRMED ]; do sleep 0.2; done
call "$ewha" POST "/reservations/$drop/cancel" >/dev/null
until [ "$(reservation "$drop")" = CANCELLED ]; do sleep 0.2; done
until [ "$(reservation "$keep")" = CONFIRMED ]; do sleep 0.2; done
sleep 0.5
shot "$ewha" /traveller fly.png 1100 1050

shot "$operator" /operator operate.png 1100 1050
wdcall DELETE "" >/dev/null
echo "screenshots in $out"
