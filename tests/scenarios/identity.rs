//! Accounts and tokens through the gateway (API.md "Identity and access"): sign-up, sign-in, the
//! public keys, and credentials that do not verify.

/// Every scenario of this file that runs on both topologies, listed once: `tests/taxi.rs` runs
/// them all-in-one (`identity_scenarios!(AllInOne)`), `tests/distributed.rs` on the cluster.
#[macro_export]
macro_rules! identity_scenarios {
    ($topology:ident) => {
        tests_on!($topology, identity:
            a_customer_signs_up_and_signs_in_through_the_gateway,
            credentials_that_do_not_verify_are_refused_everywhere,
            a_stranger_cannot_sign_up_as_someone_an_operator_acted_for,
            a_korean_and_an_english_receiver_read_their_own_language,
        );
    };
}

use serde_json::json;

use crate::common::{Api, CITY_HALL, GOOD_CARD, OPERATOR_PASSWORD, TestApp, Topology, password_of};

pub async fn a_customer_signs_up_and_signs_in_through_the_gateway(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let signed_up = api
        .post(
            "/auth/signup",
            json!({"username": "hong", "password": "correct horse", "name": "Hong Gildong",
                   "phone": "010-2233-0002", "role": "customer", "locale": "en"}),
        )
        .await
        .expect(201);
    assert_eq!(signed_up["userId"], "hong");
    api.post(
        "/auth/signup",
        json!({"username": "hong", "password": "other horse", "name": "Someone Else",
               "phone": "010-0000-0000", "role": "customer"}),
    )
    .await
    .expect_problem(409, "username_taken");
    api.post(
        "/auth/token",
        json!({"username": "hong", "password": "wrong horse"}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let token = api.token("hong", "correct horse").await;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let jwks = api.get("/.well-known/jwks.json").await.expect(200);
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let header = token.split('.').next().unwrap();
    use base64::Engine;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], kid);
    app.shutdown().await;
}

pub async fn credentials_that_do_not_verify_are_refused_everywhere(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let forged = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vIn0.eyJpc3MiOiJ0YW5kYSJ9.c2ln";
    for path in ["/books?customerId=hong", "/flights", "/healthz"] {
        let answer = api.get_as(forged, path).await;
        let challenge = answer.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        answer.expect_problem(401, "invalid_token");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    api.anonymous()
        .post_empty("/admin/signing-keys/rotate")
        .await
        .expect_problem(401, "unauthenticated");

    let operator = api.token("operator", OPERATOR_PASSWORD).await;
    let rotated = api
        .post_as(&operator, "/admin/signing-keys/rotate", json!({}))
        .await
        .expect(200);
    assert!(rotated["kid"].is_string());
    // The operator's token, signed with the key before the rotation, still works.
    api.post_as(&operator, "/admin/signing-keys/rotate", json!({}))
        .await
        .expect(200);
    app.shutdown().await;
}

/// Passwords, tokens and full card numbers are kept nowhere and shown nowhere: not in any
/// service's database (rows, outbox, inbox, dead letters, WAL), not in metrics, notifications or
/// answers. All-in-one, where every database is a file under the data dir to read whole.
#[allow(dead_code)] // the distributed tests do not run it: their databases are PostgreSQL's
pub async fn secrets_are_kept_and_shown_nowhere(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let hong = api.signed_up("hong", "customer").await;
    let token = hong.bearer_token().await;
    api.register_driver("kim", CITY_HALL).await;
    api.online("kim").await;
    let booked = hong
        .post(
            "/books",
            json!({"customerName": "Hong Gildong", "phone": "010-2233-0002", "card": GOOD_CARD,
                   "pickup": {"name": "Seoul City Hall", "lat": 37.5663, "lng": 126.9779},
                   "dropoff": {"name": "Gangnam Station", "lat": 37.4979, "lng": 127.0276}}),
        )
        .await
        .expect(201);
    let book_id = booked["bookId"].as_str().unwrap().to_owned();
    let offer = api.offer_for("kim").await;
    let dispatch_id = offer["dispatchId"].as_str().unwrap().to_owned();
    for step in ["accept", "start"] {
        api.post(
            &format!("/dispatches/{dispatch_id}/{step}"),
            json!({"driverId": "kim"}),
        )
        .await
        .expect(200);
    }
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "kim", "distanceMeters": 10_000}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "COMPLETED").await;
    api.eventually(
        &format!("/rideHistories/{book_id}"),
        "the ride's history",
        |h| h["bookStatus"] == "COMPLETED",
    )
    .await;

    let secrets = [
        ("a customer's password", "hong-password".to_owned()),
        ("the operator's password", OPERATOR_PASSWORD.to_owned()),
        ("an access token", token.clone()),
        (
            "an access token's signature",
            token.rsplit('.').next().unwrap().to_owned(),
        ),
        ("a full card number", GOOD_CARD.to_owned()),
    ];
    let mut shown = vec![
        ("the booking", booked.to_string()),
        ("metrics", api.get("/metrics").await.body.to_string()),
        (
            "notifications",
            hong.get("/notifications").await.expect(200).to_string(),
        ),
        (
            "dead letters",
            api.get("/admin/dead-letters").await.expect(200).to_string(),
        ),
        (
            "the ride",
            hong.get(&format!("/rideHistories/{book_id}"))
                .await
                .expect(200)
                .to_string(),
        ),
        (
            "the payments",
            hong.get(&format!("/pays?bookId={book_id}"))
                .await
                .expect(200)
                .to_string(),
        ),
    ];
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            shown.push((
                "a data file",
                format!("{}: {}", path.display(), String::from_utf8_lossy(&bytes)),
            ));
        }
    }
    assert!(shown.len() > 10, "the databases were read: {}", shown.len());
    for (what, secret) in &secrets {
        for (place, text) in &shown {
            assert!(!text.contains(secret.as_str()), "{what} is in {place}");
        }
    }
    app.shutdown().await;
}

/// An operator acts for people without accounts (a call centre books for a caller, a fleet
/// operator registers a driver, a wallet is topped up at a counter): whoever signs up later with
/// one of those ids must not inherit what was done for someone else.
pub async fn a_stranger_cannot_sign_up_as_someone_an_operator_acted_for(t: Topology) {
    let app = TestApp::spawn(t).await;
    let operator = &app.api;
    operator.register_driver("fleet-7", CITY_HALL).await;
    operator.online("fleet-7").await;
    let booked = operator.book("walk-in", GOOD_CARD).await;
    operator.deposit("counter-1", 5000).await;
    claims_remembered(operator).await;

    let signup = |username: &str, role: &str| {
        json!({"username": username, "password": "a stranger's password", "name": "Stranger",
               "phone": "010-9999-0000", "role": role})
    };
    let anonymous = operator.anonymous();
    for (username, role) in [
        ("walk-in", "customer"),
        ("fleet-7", "driver"),
        ("counter-1", "customer"),
    ] {
        anonymous
            .post("/auth/signup", signup(username, role))
            .await
            .expect_problem(409, "username_taken");
    }
    // Nobody can read what was done for them but the operator...
    let stranger = operator.signed_up("not-walk-in", "customer").await;
    let book_path = format!("/books/{}", booked["bookId"].as_str().unwrap());
    stranger
        .get(&book_path)
        .await
        .expect_problem(404, "not_found");

    // ...who can open the account for its owner, having checked who is asking.
    operator
        .post("/auth/signup", signup("walk-in", "customer"))
        .await
        .expect(201);
    let owner = operator.as_token(&operator.token("walk-in", "a stranger's password").await);
    assert_eq!(
        owner.get(&book_path).await.expect(200)["customerId"],
        "walk-in"
    );
    app.shutdown().await;
}

/// Waits until identity has heard of everything done so far: every outbox relayed (distributed)
/// and identity's consumer of those events caught up.
async fn claims_remembered(operator: &Api) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let services = operator.get("/admin/services").await.expect(200);
        let relayed = services
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outboxUnpublished"].as_i64().unwrap_or(0) == 0);
        let consumers = operator.get("/admin/consumers").await.expect(200);
        let caught_up = consumers
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "identity-claims")
            .all(|c| c["lag"] == 0);
        assert!(
            consumers
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "identity-claims"),
            "{consumers}"
        );
        if relayed && caught_up {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{services} {consumers}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Two travellers, one who chose Korean at sign-up and one English, take the same flight: each
/// reads every notification in their own language, money written their way. Then the English
/// reader switches to Korean and reads everything, what came before included, in Korean.
pub async fn a_korean_and_an_english_receiver_read_their_own_language(t: Topology) {
    let app = TestApp::spawn(t).await;
    let operator = &app.api;
    operator.flight("KE1301", 10).await;
    let minji = signed_up_in(operator, "minji", "ko").await;
    let sam = signed_up_in(operator, "sam", "en").await;
    for (traveller, id) in [(&minji, "minji"), (&sam, "sam")] {
        traveller
            .post(&format!("/accounts/{id}/deposit"), json!({"amount": 1000}))
            .await
            .expect(200);
        let reserved = traveller
            .post("/reservations", json!({"flightId": "KE1301"}))
            .await
            .expect(201);
        let reservation = reserved["reservationId"].as_str().unwrap();
        traveller.reservation_status(reservation, "CONFIRMED").await;
    }

    let told = [
        "reservation.requested",
        "payment.succeeded",
        "ticket.issued",
        "reservation.confirmed",
    ];
    let minji_read = read_in(&minji, "user:minji", &told, Language::Korean).await;
    let paid = said(&minji_read, "payment.succeeded");
    assert!(paid.contains("100원") && !paid.contains('₩'), "{paid}");
    let sam_read = read_in(&sam, "user:sam", &told, Language::English).await;
    let paid = said(&sam_read, "payment.succeeded");
    assert!(paid.contains("₩100") && !paid.contains('원'), "{paid}");
    assert!(sam_read.iter().all(|n| n["locale"] == "en"), "{sam_read:?}");

    // A stranger may neither read nor set someone's language.
    minji
        .get("/auth/users/sam")
        .await
        .expect_problem(404, "not_found");
    minji
        .put("/auth/users/sam/locale", json!({"locale": "ko"}))
        .await
        .expect_problem(404, "not_found");
    sam.put("/auth/users/sam/locale", json!({"locale": "jp"}))
        .await
        .expect_problem(400, "invalid_locale");

    let set = sam
        .put("/auth/users/sam/locale", json!({"locale": "ko"}))
        .await
        .expect(200);
    assert_eq!(set, json!({"userId": "sam", "locale": "ko"}));
    assert_eq!(
        sam.get("/auth/users/sam").await.expect(200),
        json!({"userId": "sam", "username": "sam", "role": "customer", "locale": "ko"})
    );
    let sam_read = read_in(&sam, "user:sam", &told, Language::Korean).await;
    let paid = said(&sam_read, "payment.succeeded");
    assert!(paid.contains("100원") && !paid.contains('₩'), "{paid}");
    // Minji's are as they were.
    read_in(&minji, "user:minji", &told, Language::Korean).await;
    app.shutdown().await;
}

/// Signs `username` up as a customer reading `locale` and returns the API as them.
async fn signed_up_in(operator: &Api, username: &str, locale: &str) -> Api {
    let password = password_of(username);
    operator
        .anonymous()
        .post(
            "/auth/signup",
            json!({"username": username, "password": password, "name": "Test Traveller",
                   "phone": "010-1234-5678", "role": "customer", "locale": locale}),
        )
        .await
        .expect(201);
    let token = operator.token(username, &password).await;
    operator.as_token(&token)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Language {
    Korean,
    English,
}

fn hangul(text: &str) -> bool {
    text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

/// Waits until `receiver` has a notification of each of `subjects`, every one of them in
/// `language` (notify learns a receiver's language from identity's events, a moment after it
/// changes); returns the list.
async fn read_in(
    api: &Api,
    receiver: &str,
    subjects: &[&str],
    language: Language,
) -> Vec<serde_json::Value> {
    let path = format!("/notifications?receiver={receiver}");
    let list = api
        .eventually(&path, &format!("{subjects:?} in {language:?}"), |list| {
            let list = list.as_array().unwrap();
            subjects
                .iter()
                .all(|s| list.iter().any(|n| n["subject"] == *s))
                && list.iter().all(|n| {
                    let text = n["message"].as_str().unwrap();
                    hangul(text) == (language == Language::Korean)
                })
        })
        .await;
    list.as_array().unwrap().clone()
}

/// The message of the notification with `subject`.
fn said(list: &[serde_json::Value], subject: &str) -> String {
    list.iter()
        .find(|n| n["subject"] == subject)
        .and_then(|n| n["message"].as_str())
        .unwrap_or_else(|| panic!("no {subject} in {list:?}"))
        .to_owned()
}
