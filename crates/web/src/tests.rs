//! The pages' sessions and cross-site defences, over a stand-in for the public API: signing in
//! sets the session cookie; pages need it; a form's POST needs this site's origin and the page's
//! CSRF token before anything reaches the API; a user acts only as themselves. And the pages'
//! languages: Korean unless the browser, the user or the switcher asks for English, with no word
//! of a template left untranslated.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tanda_core::Problem;
use tanda_core::auth::{AUDIENCE, FixedJwks, ISSUER, Verifier, authenticate};
use tower::ServiceExt;

use crate::session::csrf_token;

/// Tokens as identity signs them, and the public key that verifies them.
struct Issuer {
    key: SigningKey,
}

impl Issuer {
    fn new() -> Self {
        Issuer {
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    fn token(&self, sub: &str, role: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".to_owned());
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now,
                            "exp": now + 600, "roles": [role]});
        let der = self.key.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    fn verifier(&self) -> Arc<Verifier> {
        let x = URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes());
        let set: JwkSet = serde_json::from_value(
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"}]}),
        )
        .unwrap();
        Arc::new(Verifier::new(Arc::new(FixedJwks(set)), None))
    }
}

/// What reached the stand-in API: method, path and bearer token of each call.
type Calls = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// The pages in front of a stand-in API, behind the edge's token check, as the gateway mounts
/// them.
fn pages(issuer: &Issuer) -> (Router, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let tokens = issuer.token("minji", "customer");
    let api =
        Router::new()
            .route(
                "/auth/token",
                post(move |axum::Json(body): axum::Json<Value>| {
                    let token = tokens.clone();
                    async move {
                        if body["username"] == "minji" && body["password"] == "correct horse" {
                            axum::Json(json!({"access_token": token, "token_type": "Bearer",
                                          "expires_in": 600}))
                            .into_response()
                        } else {
                            Problem::new(
                                StatusCode::UNAUTHORIZED,
                                "invalid_credentials",
                                "wrong username or password",
                            )
                            .into_response()
                        }
                    }
                }),
            )
            .route(
                "/accounts/{id}",
                get(|Path(id): Path<String>| async move {
                    axum::Json(json!({"userId": id, "balance": 0}))
                }),
            )
            .route(
                "/accounts/{id}/deposit",
                post(|Path(id): Path<String>| async move {
                    axum::Json(json!({"userId": id, "balance": 777}))
                }),
            )
            .route(
                "/auth/users/{id}/locale",
                put(
                    |Path(id): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                        axum::Json(json!({"userId": id, "locale": body["locale"]}))
                    },
                ),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let seen = seen.clone();
                    async move {
                        let bearer = request
                            .headers()
                            .get(header::AUTHORIZATION)
                            .map(|v| v.to_str().unwrap().to_owned());
                        seen.lock().unwrap().push((
                            request.method().to_string(),
                            request.uri().path().to_owned(),
                            bearer,
                        ));
                        next.run(request).await
                    }
                },
            ));
    let verifier = issuer.verifier();
    let checked_api = api.layer(axum::middleware::from_fn_with_state(
        verifier.clone(),
        authenticate,
    ));
    let router = crate::router(crate::Api::new(checked_api), verifier.clone(), &[])
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate));
    (router, calls)
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response: Response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A page as an English-speaking browser asks for it (the tests of languages ask otherwise).
fn get_req(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path)
        .header(header::HOST, "tanda.test")
        .header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9");
    if let Some(cookie) = cookie {
        r = r.header(header::COOKIE, cookie);
    }
    r.body(Body::empty()).unwrap()
}

fn form_post(path: &str, headers: &[(&str, &str)], form: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::HOST, "tanda.test")
        .header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    r.body(Body::from(form.to_owned())).unwrap()
}

/// The `name=value` of a `Set-Cookie` named `name`.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value of the hidden input `name` in a page's content (not its header's language switcher).
fn hidden(page: &str, name: &str) -> String {
    let page = &page[page.find("</header>").unwrap_or(0)..];
    let at = page
        .find(&format!(r#"name="{name}" value=""#))
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn signing_in_sets_an_http_only_same_site_cookie_and_goes_where_asked() {
    let issuer = Issuer::new();
    let (router, _) = pages(&issuer);

    let (status, headers, page) = send(&router, get_req("/signin?next=/traveller", None)).await;
    assert_eq!(status, StatusCode::OK);
    let form_cookie = set_cookie(&headers, "tanda_form").expect("the form's cookie");
    assert!(form_cookie.contains("HttpOnly") && form_cookie.contains("SameSite=Strict"));
    let form_cookie = form_cookie.split(';').next().unwrap().to_owned();
    let csrf = hidden(&page, "csrf");
    assert_eq!(hidden(&page, "next"), "/traveller");

    // A wrong password: the form again, with a message, and no session.
    let body = format!("csrf={csrf}&next=%2Ftraveller&username=minji&password=wrong");
    let (status, headers, page) = send(
        &router,
        form_post("/ui/signin", &[("cookie", &form_cookie)], &body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("That username and password do not match."));
    assert!(page.contains(r#"value="minji""#), "the username is kept");
    assert!(set_cookie(&headers, "tanda_session").is_none());

    // Without the form's token, or from another site: refused before identity is asked.
    let body = "next=%2Ftraveller&username=minji&password=correct+horse";
    let (status, _, refused) = send(
        &router,
        form_post("/ui/signin", &[("cookie", &form_cookie)], body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(refused.contains("csrf_rejected"), "{refused}");

    let body = format!("csrf={csrf}&next=%2Ftraveller&username=minji&password=correct+horse");
    let (status, headers, _) = send(
        &router,
        form_post(
            "/ui/signin",
            &[("cookie", &form_cookie), ("origin", "https://evil.example")],
            &body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&headers, "tanda_session").is_none());

    // The right password, from this site, over HTTPS.
    let (status, headers, _) = send(
        &router,
        form_post(
            "/ui/signin",
            &[
                ("cookie", &form_cookie),
                ("origin", "https://tanda.test"),
                ("x-forwarded-proto", "https"),
            ],
            &body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/traveller");
    let session = set_cookie(&headers, "tanda_session").expect("the session cookie");
    let token = issuer.token("minji", "customer");
    assert_eq!(
        session,
        format!("tanda_session={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=600; Secure")
    );
}

#[tokio::test]
async fn pages_need_a_session_and_fragments_send_their_page_to_sign_in() {
    let issuer = Issuer::new();
    let (router, calls) = pages(&issuer);
    let (status, headers, _) = send(&router, get_req("/traveller?x=1", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/signin?next=%2Ftraveller%3Fx%3D1"
    );

    // An expired or forged session is no session.
    let forged = "tanda_session=eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.c2ln";
    let (status, _, _) = send(&router, get_req("/traveller", Some(forged))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let request = Request::get("/ui/traveller/balance")
        .header("hx-request", "true")
        .header("hx-current-url", "http://tanda.test/traveller")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&router, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["hx-redirect"], "/signin?next=%2Ftraveller");
    assert!(body.contains(r#""code":"unauthenticated""#), "{body}");
    assert!(calls.lock().unwrap().is_empty(), "the API was not asked");

    // Signed in, the page is the user's, and every call carries their token.
    let token = issuer.token("minji", "customer");
    let cookie = format!("tanda_session={token}");
    let (status, _, page) = send(&router, get_req("/traveller", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<strong id="who">minji</strong>"#));
    assert!(
        page.contains(&format!(r#""X-CSRF-Token": "{}""#, csrf_token(&token))),
        "htmx sends the page's CSRF token"
    );
    assert!(
        !page.contains(&token),
        "the token itself is never in a page"
    );
    let calls = calls.lock().unwrap();
    assert!(!calls.is_empty());
    for (method, path, bearer) in calls.iter() {
        assert_eq!(
            bearer.as_deref(),
            Some(format!("Bearer {token}").as_str()),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_cross_site_deposit_is_refused_before_it_reaches_the_api() {
    let issuer = Issuer::new();
    let (router, calls) = pages(&issuer);
    let token = issuer.token("minji", "customer");
    let cookie = format!("tanda_session={token}");
    let csrf = csrf_token(&token);
    let deposit = |headers: &[(&str, &str)]| {
        let mut all = vec![("cookie", cookie.as_str())];
        all.extend_from_slice(headers);
        form_post("/ui/traveller/deposit", &all, "amount=777")
    };
    for (what, headers) in [
        (
            "another site, with the token",
            vec![("origin", "https://evil.example"), ("x-csrf-token", &csrf)],
        ),
        ("no token", vec![("origin", "http://tanda.test")]),
        (
            "another session's token",
            vec![
                ("origin", "http://tanda.test"),
                ("x-csrf-token", &csrf_token("someone.else.s")),
            ],
        ),
        (
            "an opaque origin",
            vec![("origin", "null"), ("x-csrf-token", &csrf)],
        ),
    ] {
        let (status, _, body) = send(&router, deposit(&headers)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
        assert!(body.contains(r#""code":"csrf_rejected""#), "{what}: {body}");
    }
    assert!(calls.lock().unwrap().is_empty(), "nothing reached the API");

    let (status, _, body) = send(
        &router,
        deposit(&[("origin", "http://tanda.test"), ("x-csrf-token", &csrf)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"data-balance="777""#), "{body}");
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        [(
            "POST".to_owned(),
            "/accounts/minji/deposit".to_owned(),
            Some(format!("Bearer {token}"))
        )]
    );
}

#[tokio::test]
async fn a_user_acts_only_as_themselves_an_operator_for_anyone() {
    let issuer = Issuer::new();
    let (router, calls) = pages(&issuer);
    let minji = issuer.token("minji", "customer");
    let cookie = format!("tanda_session={minji}");

    let (status, _, page) = send(&router, get_req("/traveller?userId=hong", Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("someone else"), "{page}");
    let (status, _, body) = send(
        &router,
        get_req("/ui/traveller/balance?userId=hong", Some(&cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains(r#""code":"forbidden""#), "{body}");
    let (status, _, _) = send(
        &router,
        form_post(
            "/ui/traveller/deposit?userId=hong",
            &[("cookie", &cookie), ("x-csrf-token", &csrf_token(&minji))],
            "amount=777",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&router, get_req("/operator", Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&router, get_req("/driver", Some(&cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(calls.lock().unwrap().is_empty(), "nothing reached the API");

    let operator = issuer.token("operator", "operator");
    let cookie = format!("tanda_session={operator}");
    let (status, _, page) = send(&router, get_req("/traveller", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"name="userId""#),
        "the operator chooses for whom"
    );
    let (status, _, page) = send(&router, get_req("/traveller?userId=hong", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"hx-get="/ui/traveller/balance?userId=hong""#),
        "{page}"
    );
}

/// Every template, by name, as compiled in.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("choose.html", include_str!("../templates/choose.html")),
    ("customer.html", include_str!("../templates/customer.html")),
    (
        "customer_history.html",
        include_str!("../templates/customer_history.html"),
    ),
    (
        "customer_ride.html",
        include_str!("../templates/customer_ride.html"),
    ),
    ("docs.html", include_str!("../templates/docs.html")),
    ("driver.html", include_str!("../templates/driver.html")),
    (
        "driver_panel.html",
        include_str!("../templates/driver_panel.html"),
    ),
    (
        "driver_trips.html",
        include_str!("../templates/driver_trips.html"),
    ),
    ("drivers.html", include_str!("../templates/drivers.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("layout.html", include_str!("../templates/layout.html")),
    ("message.html", include_str!("../templates/message.html")),
    (
        "notifications.html",
        include_str!("../templates/notifications.html"),
    ),
    ("operator.html", include_str!("../templates/operator.html")),
    (
        "operator_panel.html",
        include_str!("../templates/operator_panel.html"),
    ),
    ("signin.html", include_str!("../templates/signin.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    (
        "traveller.html",
        include_str!("../templates/traveller.html"),
    ),
    (
        "traveller_balance.html",
        include_str!("../templates/traveller_balance.html"),
    ),
    (
        "traveller_flights.html",
        include_str!("../templates/traveller_flights.html"),
    ),
    (
        "traveller_reservations.html",
        include_str!("../templates/traveller_reservations.html"),
    ),
    (
        "traveller_tickets.html",
        include_str!("../templates/traveller_tickets.html"),
    ),
];

/// The code that asks for words.
pub(crate) const SOURCES: &[&str] = &[
    include_str!("lib.rs"),
    include_str!("account.rs"),
    include_str!("customer.rs"),
    include_str!("driver.rs"),
    include_str!("i18n.rs"),
    include_str!("notifications.rs"),
    include_str!("operator.rs"),
    include_str!("traveller.rs"),
    include_str!("view.rs"),
];

/// What a template shows a reader when its expressions are taken out: its text, and the
/// attributes a person reads (placeholders, labels, titles, confirmations).
fn visible_text(template: &str) -> String {
    let mut text = String::new();
    let mut rest = template;
    // Expressions, tags and comments of the template language go first.
    while let Some(at) = rest.find(['{', '<']) {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        let close = if rest.starts_with("{{") {
            "}}"
        } else if rest.starts_with("{%") {
            "%}"
        } else if rest.starts_with("{#") {
            "#}"
        } else if rest.starts_with("<script") {
            "</script>"
        } else if rest.starts_with('<') {
            // A tag: keep the values of the attributes people read.
            let end = tag_end(rest);
            let tag = &rest[..end];
            for attr in [
                " placeholder=\"",
                " title=\"",
                " aria-label=\"",
                " alt=\"",
                " hx-confirm=\"",
            ] {
                if let Some(at) = tag.find(attr) {
                    let value = &tag[at + attr.len()..];
                    text.push(' ');
                    text.push_str(&visible_text(&value[..attr_end(value)]));
                    text.push(' ');
                }
            }
            text.push(' ');
            rest = &rest[end..];
            continue;
        } else {
            text.push_str(&rest[..1]);
            rest = &rest[1..];
            continue;
        };
        let end = rest.find(close).map_or(rest.len(), |e| e + close.len());
        text.push(' ');
        rest = &rest[end..];
    }
    text.push_str(rest);
    text
}

/// Where a quoted attribute's value ends, past any `{{ }}` inside it.
fn attr_end(value: &str) -> usize {
    let mut rest = value;
    let mut at = 0;
    loop {
        match (rest.find('"'), rest.find("{{")) {
            (Some(quote), Some(open)) if open < quote => {
                let close = rest[open..].find("}}").map_or(rest.len(), |c| open + c + 2);
                at += close;
                rest = &rest[close..];
            }
            (Some(quote), _) => return at + quote,
            (None, _) => return value.len(),
        }
    }
}

/// Where a tag that starts `html` ends, past any `{{ }}` inside it.
fn tag_end(html: &str) -> usize {
    let mut depth = 0;
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1).is_some_and(|b| matches!(b, b'{' | b'%')) => depth += 1,
            b'}' | b'%' if depth > 0 && bytes.get(i + 1) == Some(&b'}') => depth -= 1,
            b'>' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    html.len()
}

#[test]
fn no_template_says_a_word_of_its_own() {
    // Not a word of a language: the brand.
    let allowed = ["Tanda"];
    for (name, template) in TEMPLATES {
        let text = visible_text(template);
        let words: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty() && !allowed.contains(w))
            .collect();
        assert!(
            words.is_empty(),
            "{name} says {words:?} itself; its words belong in locales/*/web.ftl"
        );
    }
}

#[test]
fn visible_text_keeps_text_and_read_attributes_only() {
    let text = visible_text(
        r#"<p class="x" title="Hello">{{ tr.t("k") }} Ride {% if a %}<b>{{ b }}</b>{% endif %}</p><input placeholder="{{ tr.t("x") }}">"#,
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["Hello", "Ride"]);
}

/// The language of a page: `<html lang>` and its words.
fn spoken(page: &str) -> &str {
    let at = page.find("<html lang=\"").expect("an html element") + 12;
    &page[at..at + 2]
}

#[tokio::test]
async fn pages_speak_korean_unless_asked_otherwise() {
    let issuer = Issuer::new();
    let (router, _) = pages(&issuer);
    let get = |headers: &[(&'static str, &str)]| {
        let mut r = Request::get("/signin").header(header::HOST, "tanda.test");
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        r.body(Body::empty()).unwrap()
    };
    let (_, _, page) = send(&router, get(&[])).await;
    assert_eq!(spoken(&page), "ko");
    assert!(page.contains("<h1>로그인</h1>"), "{page}");
    assert!(
        page.contains(r#"value="ko" lang="ko" aria-current="true""#),
        "{page}"
    );

    let (_, _, page) = send(
        &router,
        get(&[("accept-language", "en-GB,en;q=0.8,ko;q=0.5")]),
    )
    .await;
    assert_eq!(spoken(&page), "en");
    assert!(page.contains("<h1>Sign in</h1>"));

    // The switcher's cookie outweighs the browser.
    let (_, _, page) = send(
        &router,
        get(&[("accept-language", "en"), ("cookie", "lang=ko")]),
    )
    .await;
    assert_eq!(spoken(&page), "ko");
}

#[tokio::test]
async fn the_switcher_sets_the_cookie_and_keeps_a_users_choice() {
    let issuer = Issuer::new();
    let (router, calls) = pages(&issuer);
    // Nobody signed in: the cookie, and back to the page.
    let (status, headers, _) = send(
        &router,
        form_post(
            "/ui/lang",
            &[("origin", "http://tanda.test")],
            "lang=en&next=%2Fsignin%3Fnext%3D%252Fcustomer",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/signin?next=%2Fcustomer");
    assert_eq!(
        set_cookie(&headers, "lang").unwrap(),
        "lang=en; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000"
    );
    assert!(calls.lock().unwrap().is_empty());

    // Not back to another site, and not from one.
    let (_, headers, _) = send(
        &router,
        form_post("/ui/lang", &[], "lang=ko&next=%2F%2Fevil.example"),
    )
    .await;
    assert_eq!(headers[header::LOCATION], "/");
    let (status, _, _) = send(
        &router,
        form_post("/ui/lang", &[("origin", "https://evil.example")], "lang=ko"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Signed in: the page's CSRF token is needed, and the choice is kept as the user's.
    let token = issuer.token("minji", "customer");
    let cookie = format!("tanda_session={token}");
    let (status, _, _) = send(
        &router,
        form_post(
            "/ui/lang",
            &[("cookie", &cookie)],
            "lang=ko&next=%2Ftraveller",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let body = format!("lang=ko&next=%2Ftraveller&csrf={}", csrf_token(&token));
    let (status, headers, _) = send(
        &router,
        form_post("/ui/lang", &[("cookie", &cookie)], &body),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/traveller");
    assert!(
        set_cookie(&headers, "lang")
            .unwrap()
            .starts_with("lang=ko;")
    );
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        [(
            "PUT".to_owned(),
            "/auth/users/minji/locale".to_owned(),
            Some(format!("Bearer {token}"))
        )]
    );

    // The page then speaks Korean, whatever the browser says.
    let request = Request::get("/traveller")
        .header(header::HOST, "tanda.test")
        .header(header::ACCEPT_LANGUAGE, "en")
        .header(header::COOKIE, format!("{cookie}; lang=ko"))
        .body(Body::empty())
        .unwrap();
    let (status, _, page) = send(&router, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spoken(&page), "ko");
    assert!(page.contains("지갑"), "{page}");
    assert!(
        page.contains(r#"<strong id="who">minji</strong> 님"#),
        "{page}"
    );
    assert!(
        page.contains(r#"name="next" value="/traveller""#),
        "the switcher comes back here"
    );
}
