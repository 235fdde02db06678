//! The web pages as another site or another user would try them, black-box over HTTP against the
//! all-in-one app: signing up and in through the forms, a cross-site form post riding on a
//! victim's session, one customer's session at another's pages, the headers every answer
//! carries for browsers, and the pages' language. Unless a test says otherwise, its browser
//! asks for English (`Accept-Language`); the pages speak Korean by default.

mod common;

use common::{
    FORM, OPERATOR_PASSWORD, PageSession, TestApp, Topology, cookie_of, form_body, hidden_field,
    no_redirects, password_of,
};
use serde_json::json;

/// The password typed into the sign-up form.
const PASSWORD: &str = "correct horse";

/// The language an English-speaking browser asks for.
const ENGLISH: &str = "en-US,en;q=0.9";

async fn spawn() -> TestApp {
    TestApp::spawn(Topology::AllInOne).await
}

/// The sign-up or sign-in form's page: its cookie and CSRF token.
async fn form(app: &TestApp, path: &str) -> (String, String) {
    let page = app
        .api
        .http
        .get(format!("{}{path}", app.api.base))
        .header("accept-language", ENGLISH)
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(page.headers(), "tanda_form").unwrap();
    (cookie, hidden_field(&page.text().await.unwrap(), "csrf"))
}

async fn submit(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    no_redirects()
        .post(format!("{}{path}", app.api.base))
        .header("cookie", cookie)
        .header("origin", &app.api.base)
        .header("accept-language", ENGLISH)
        .header("content-type", FORM)
        .body(form_body(fields))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_up_and_in_on_the_pages_starts_a_session_and_says_what_went_wrong() {
    let app = spawn().await;
    let (cookie, csrf) = form(&app, "/signup").await;
    let signup = |username: &'static str, password: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("username", username.to_owned()),
            ("password", password.to_owned()),
            ("name", "Lee Minji".to_owned()),
            ("phone", "010-9876-5432".to_owned()),
            ("role", "customer".to_owned()),
            ("locale", "en".to_owned()),
            ("next", "/traveller".to_owned()),
        ]
    };
    let send = |fields: [(&'static str, String); 8]| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            submit(app, "/ui/signup", &cookie, &fields).await
        }
    };

    let answer = send(signup("minji", "short")).await;
    assert_eq!(answer.status(), 400);
    let page = answer.text().await.unwrap();
    assert!(page.contains("at least 8 characters"), "{page}");
    assert!(
        page.contains(r#"value="Lee Minji""#),
        "what was typed is kept"
    );
    assert!(!page.contains("short"), "the password is not sent back");

    let answer = send(signup("minji", PASSWORD)).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/traveller");
    let set = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("tanda_session=")
            && set.contains("; HttpOnly")
            && set.contains("; SameSite=Lax")
            && set.contains("; Path=/")
            && set.contains("; Max-Age=3600"),
        "{set}"
    );
    let session = cookie_of(answer.headers(), "tanda_session").unwrap();
    let page = app
        .api
        .http
        .get(format!("{}/traveller", app.api.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<strong id="who">minji</strong>"#));

    let answer = send(signup("minji", PASSWORD)).await;
    assert_eq!(answer.status(), 409);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("That username is taken")
    );

    // Signing in: a wrong password says so; too many, and the form says when to try again.
    let (cookie, csrf) = form(&app, "/signin").await;
    let signin = |password: &str| {
        [
            ("csrf", csrf.clone()),
            ("username", "minji".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    for _ in 0..5 {
        let fields = signin("not my password");
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = submit(&app, "/ui/signin", &cookie, &fields).await;
        assert_eq!(answer.status(), 401);
        assert!(
            answer
                .text()
                .await
                .unwrap()
                .contains("That username and password do not match.")
        );
    }
    let fields = signin(PASSWORD);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = submit(&app, "/ui/signin", &cookie, &fields).await;
    assert_eq!(answer.status(), 429);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("Too many failed attempts. Try again in"),
        "{page}"
    );

    // The operator signs in with the configured password and starts on the operator's page.
    let (cookie, csrf) = form(&app, "/signin").await;
    let answer = submit(
        &app,
        "/ui/signin",
        &cookie,
        &[
            ("csrf", &csrf),
            ("username", "operator"),
            ("password", OPERATOR_PASSWORD),
        ],
    )
    .await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/operator");
    app.shutdown().await;
}

#[tokio::test]
async fn a_cross_site_deposit_riding_on_the_victims_session_is_refused_and_changes_nothing() {
    let app = spawn().await;
    let api = &app.api;
    let victim_api = api.signed_up("victim", "customer").await;
    let victim = api.page_session("victim", &password_of("victim")).await;
    let deposit = |origin: Option<&str>, csrf: Option<&str>| {
        let mut request = no_redirects()
            .post(format!("{}/ui/traveller/deposit", api.base))
            .header("cookie", &victim.cookie)
            .header("content-type", FORM)
            .body("amount=777");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    for (what, origin, csrf) in [
        ("from another site", Some("https://evil.example"), None),
        (
            "from another site, even with the token",
            Some("https://evil.example"),
            Some(victim.csrf.as_str()),
        ),
        ("without the page's token", None, None),
        (
            "without the page's token, same origin",
            Some(api.base.as_str()),
            None,
        ),
        (
            "with a token of another session",
            Some(api.base.as_str()),
            Some("0000000000000000000000000000000000000000000000000000000000000000"),
        ),
    ] {
        let answer = deposit(origin, csrf).await.unwrap();
        assert_eq!(answer.status(), 403, "{what}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "csrf_rejected", "{what}");
    }
    assert_eq!(
        victim_api.get("/accounts/victim").await.expect(200)["balance"],
        0,
        "nothing was deposited"
    );

    // The victim's own page does it.
    let (status, html) = api
        .page_form(&victim, "/ui/traveller/deposit", &[("amount", "777")])
        .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        victim_api.get("/accounts/victim").await.expect(200)["balance"],
        777
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_customers_session_cannot_read_or_act_for_another_customer() {
    let app = spawn().await;
    let api = &app.api;
    api.post(
        "/flights",
        json!({"flightId": "KE1201", "from": "GMP", "to": "CJU",
               "departsAt": "2099-12-24T09:00:00Z", "seats": 3, "price": 100}),
    )
    .await
    .expect(201);
    let alice_api = api.signed_up("alice", "customer").await;
    api.signed_up("bob", "customer").await;
    let alice = api.page_session("alice", &password_of("alice")).await;
    let bob = api.page_session("bob", &password_of("bob")).await;
    let (status, _) = api
        .page_form(&alice, "/ui/traveller/deposit", &[("amount", "500")])
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .page_form(
            &alice,
            "/ui/traveller/reservations",
            &[("flightId", "KE1201")],
        )
        .await;
    assert_eq!(status, 200);
    let reservations = alice_api
        .get("/reservations?userId=alice")
        .await
        .expect(200);
    let reservation = reservations[0]["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reservation_status(&reservation, "CONFIRMED").await;

    // Bob's session at Alice's pages and fragments: refused, and nothing of hers shown.
    for path in [
        "/traveller?userId=alice",
        "/customer?customerId=alice",
        "/ui/traveller/balance?userId=alice",
        "/ui/traveller/reservations?userId=alice",
        "/ui/traveller/tickets?userId=alice",
        "/ui/customer/ride?customerId=alice",
        "/ui/customer/history?customerId=alice",
        "/ui/notifications?receiver=user%3Aalice",
        "/ui/notifications?receiver=customer%3Aalice",
        "/operator",
        "/ui/operator/panel",
    ] {
        let (status, html) = api.page(&bob, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            !html.contains(&reservation) && !html.contains("data-balance"),
            "{path}: {html}"
        );
    }
    // Bob's session acting on Alice's wallet and reservation: refused, nothing changes.
    let (status, _) = api
        .page_form(
            &bob,
            "/ui/traveller/deposit?userId=alice",
            &[("amount", "777")],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .page_form(
            &bob,
            &format!("/ui/traveller/reservations/{reservation}/cancel"),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .page_form(
            &bob,
            &format!("/ui/traveller/reservations/{reservation}/cancel?userId=alice"),
            &[],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        alice_api.get("/accounts/alice").await.expect(200)["balance"],
        400
    );
    assert_eq!(
        alice_api
            .get(&format!("/reservations/{reservation}"))
            .await
            .expect(200)["status"],
        "CONFIRMED"
    );

    // Her own page shows her reservation; the operator's may show it on her behalf.
    let (status, html) = api.page(&alice, "/traveller").await;
    assert_eq!(status, 200);
    assert!(html.contains(&reservation));
    let operator = api.page_session("operator", OPERATOR_PASSWORD).await;
    let (status, html) = api.page(&operator, "/traveller?userId=alice").await;
    assert_eq!(status, 200);
    assert!(html.contains(&reservation));
    app.shutdown().await;
}

#[tokio::test]
async fn every_page_asset_and_api_answer_carries_the_browser_security_headers() {
    let app = spawn().await;
    let api = &app.api;
    api.signed_up("minji", "customer").await;
    let PageSession { cookie, .. } = api.page_session("minji", &password_of("minji")).await;
    let http = no_redirects();
    let get = |path: &str| http.get(format!("{}{path}", api.base));
    for (what, request) in [
        ("the landing page", get("/")),
        ("the sign-in page", get("/signin")),
        ("the sign-up page", get("/signup")),
        ("a page that sends to sign-in", get("/customer")),
        ("a page", get("/customer").header("cookie", &cookie)),
        (
            "a fragment",
            get("/ui/customer/ride").header("cookie", &cookie),
        ),
        ("a stylesheet", get("/assets/tanda.css")),
        ("a script", get("/assets/tanda.js")),
        ("an API answer", get("/flights")),
        ("readiness", get("/readyz")),
        ("metrics", get("/metrics")),
        ("an unknown path", get("/nowhere")),
        (
            "a problem",
            http.post(format!("{}/books", api.base)).body("{"),
        ),
        (
            "a refused form",
            http.post(format!("{}/ui/traveller/deposit", api.base))
                .header("cookie", &cookie)
                .header("origin", "https://evil.example"),
        ),
    ] {
        let answer = request
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        let h = answer.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no CSP"))
            .to_str()
            .unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{what}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert!(h.contains_key("referrer-policy"), "{what}");
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{what}: no other origin is allowed by default"
        );
    }
    app.shutdown().await;
}

/// Guessing passwords on the sign-in page is throttled by the guesser's address, as through the
/// API: after 20 failures from one address, even a username not yet tried is refused for a while
/// (the page says so).
#[tokio::test]
async fn guessing_on_the_sign_in_page_is_throttled_by_address() {
    let app = spawn().await;
    let (cookie, csrf) = form(&app, "/signin").await;
    let guess = async |username: &str| {
        let answer = submit(
            &app,
            "/ui/signin",
            &cookie,
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", "a guess"),
            ],
        )
        .await;
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    for n in 0..20 {
        let (status, page) = guess(&format!("victim-{n}")).await;
        assert_eq!(status, 401, "{page}");
    }
    let (status, page) = guess("victim-20").await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Too many failed attempts"), "{page}");
}

/// A page speaks its `lang` cookie, else its user's language, else the browser's, else Korean;
/// switching language on a page keeps the choice as the user's, for their notifications and
/// their next session.
#[tokio::test]
async fn the_pages_language_follows_the_switcher_then_the_user_then_the_browser() {
    let app = spawn().await;
    let api = &app.api;
    let get = |path: &str, cookie: Option<&str>, accept: Option<&str>| {
        let mut request = no_redirects().get(format!("{}{path}", api.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(accept) = accept {
            request = request.header("accept-language", accept);
        }
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let (_, page) = get("/signin", None, None).await;
    assert!(
        page.contains(r#"<html lang="ko">"#) && page.contains("로그인"),
        "{page}"
    );
    let (_, page) = get("/signin", None, Some(ENGLISH)).await;
    assert!(page.contains(r#"<html lang="en">"#) && page.contains("Sign in"));

    // Minji signed up in Korean (the default): her pages are Korean, whatever the browser says.
    let minji_api = api.signed_up("minji", "customer").await;
    let minji = api.page_session("minji", &password_of("minji")).await;
    let (status, page) = get("/customer", Some(&minji.cookie), Some(ENGLISH)).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<html lang="ko">"#), "{page}");
    assert!(
        page.contains("택시 부르기") && page.contains("출발지"),
        "{page}"
    );

    // She switches to English on a page: the cookie, and her account's language.
    let answer = no_redirects()
        .post(format!("{}/ui/lang", api.base))
        .header("cookie", &minji.cookie)
        .header("origin", &api.base)
        .header("content-type", FORM)
        .body(form_body(&[
            ("lang", "en"),
            ("next", "/customer"),
            ("csrf", &minji.csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/customer");
    let lang = cookie_of(answer.headers(), "lang").expect("the language cookie");
    assert_eq!(lang, "lang=en");
    let (_, page) = get(
        "/customer",
        Some(&format!("{}; {lang}", minji.cookie)),
        None,
    )
    .await;
    assert!(
        page.contains(r#"<html lang="en">"#) && page.contains("Request a taxi"),
        "{page}"
    );
    let account = minji_api.get("/auth/users/minji").await.expect(200);
    assert_eq!(account["locale"], "en", "the choice is kept as hers");
    // Her next session speaks English without the cookie.
    let again = api.page_session("minji", &password_of("minji")).await;
    let (_, page) = get("/customer", Some(&again.cookie), None).await;
    assert!(page.contains(r#"<html lang="en">"#), "{page}");

    // Another site's form cannot switch it.
    let answer = no_redirects()
        .post(format!("{}/ui/lang", api.base))
        .header("cookie", &minji.cookie)
        .header("origin", "https://evil.example")
        .header("content-type", FORM)
        .body("lang=ko")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    app.shutdown().await;
}
