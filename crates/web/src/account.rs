//! Signing up, in and out: the pages' forms over `POST /auth/signup` and `POST /auth/token`, the
//! session cookie set from the token that answers, and the way back to where the user was going.
//! Also the language switcher every page has: the `lang` cookie, and for a signed-in user their
//! choice kept by identity (`PUT /auth/users/{userId}/locale`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;
use tanda_core::auth::session_cookie;
use tanda_core::locale::Locale;

use crate::api::{Api, ApiError, enc};
use crate::i18n::{self, Lang, Tr};
use crate::session::{
    self, CSRF_FIELD, Pages, User, check_origin, csrf_rejected, csrf_token, form_secret, same,
};
use crate::view::{Frame, html};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/signin", get(signin_page))
        .route("/signup", get(signup_page))
        .route("/ui/signin", post(sign_in))
        .route("/ui/signup", post(sign_up))
        .route("/ui/signout", post(sign_out))
        .route("/ui/lang", post(switch_language))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    frame: Frame,
    csrf: String,
    next: String,
    next_q: String,
    username: String,
    /// "You are signed in as …", as HTML.
    signed_in_as: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUp {
    frame: Frame,
    csrf: String,
    next: String,
    next_q: String,
    username: String,
    name: String,
    phone: String,
    role: String,
    locale: String,
    error: Option<String>,
}

/// The forms' secret (the one the browser has, or a new one) and the `Set-Cookie` for a new one.
fn form_secret_for(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match form_secret(headers) {
        Some(secret) => (secret, None),
        None => {
            let secret = session::new_form_secret();
            let cookie = session::form_set_cookie(&secret, session::scheme(headers) == "https");
            (secret, Some(cookie))
        }
    }
}

/// A form page with the cookie its CSRF token is made from, when the browser has none yet.
fn with_form_cookie(status: StatusCode, page: Response, cookie: Option<HeaderValue>) -> Response {
    let mut response = (status, page).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `?next=…` for a link to the other form, keeping where to go after.
fn next_q(next: &str) -> String {
    match session::safe_next(next) {
        Some(next) => format!("?next={}", enc(next)),
        None => String::new(),
    }
}

fn next_of(q: &HashMap<String, String>) -> String {
    q.get("next")
        .and_then(|n| session::safe_next(n))
        .unwrap_or_default()
        .to_owned()
}

async fn signin_page(
    headers: HeaderMap,
    user: Option<User>,
    lang: Lang,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (secret, cookie) = form_secret_for(&headers);
    let next = next_of(&q);
    let page = SignIn {
        frame: Frame::guest(&lang, "title-signin", "signin"),
        csrf: csrf_token(&secret),
        next_q: next_q(&next),
        next,
        username: String::new(),
        signed_in_as: user.map(|u| lang.tr.strong("signin-signed-in-as", "who", u.id(), "")),
        error: None,
    };
    with_form_cookie(StatusCode::OK, html(&page), cookie)
}

async fn signup_page(
    headers: HeaderMap,
    lang: Lang,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (secret, cookie) = form_secret_for(&headers);
    let next = next_of(&q);
    let page = SignUp {
        frame: Frame::guest(&lang, "title-signup", "signup"),
        csrf: csrf_token(&secret),
        next_q: next_q(&next),
        next,
        username: String::new(),
        name: String::new(),
        phone: String::new(),
        role: q.get("role").cloned().unwrap_or_default(),
        // The account's language starts as the one its owner is reading.
        locale: lang.tr.lang().to_owned(),
        error: None,
    };
    with_form_cookie(StatusCode::OK, html(&page), cookie)
}

/// A form page answered at `/ui/…`: its language switcher comes back to the form's own page.
fn guest_at(lang: Lang, page: &str, next: &str) -> Lang {
    Lang {
        here: format!("{page}{}", next_q(next)),
        ..lang
    }
}

/// The cross-site checks of the sign-in and sign-up forms: this site's origin, and the token
/// made from the forms' cookie. The refusal says why, for [`csrf_rejected`].
fn check_guest_form(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    form: &HashMap<String, String>,
    pages: &Pages,
) -> Result<(), String> {
    check_origin(headers, uri, &pages.allowed_origins)?;
    let sent = form
        .get(CSRF_FIELD)
        .map(String::as_bytes)
        .unwrap_or_default();
    match form_secret(headers) {
        Some(secret) if same(sent, csrf_token(&secret).as_bytes()) => Ok(()),
        _ => Err("the form did not come from this site's sign-in page; open it again".to_owned()),
    }
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

/// Exchanges a username and password for an access token, as the browser's client (`api` is
/// [`Api::for_client`]'s, so failed attempts count against the browser's address).
async fn sign_in_with(api: &Api, username: &str, password: &str) -> Result<Token, ApiError> {
    api.post::<Token>(
        "/auth/token",
        &json!({"username": username, "password": password}),
    )
    .await
}

async fn sign_in(
    State(pages): State<Pages>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    lang: Lang,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_guest_form(&headers, &uri, &form, &pages) {
        return csrf_rejected(&headers, &refused);
    }
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let username = field("username").to_owned();
    let next = session::safe_next(field("next"))
        .unwrap_or_default()
        .to_owned();
    // The password is passed on as typed, and kept nowhere.
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let token = sign_in_with(&pages.api.for_client(&headers), &username, password).await;
    match token {
        Ok(token) => signed_in(&pages, &headers, token, &next).await,
        Err(e) => {
            let (secret, cookie) = form_secret_for(&headers);
            let tr = lang.tr;
            let page = SignIn {
                frame: Frame::guest(&guest_at(lang, "/signin", &next), "title-signin", "signin"),
                csrf: csrf_token(&secret),
                next_q: next_q(&next),
                next,
                username,
                signed_in_as: None,
                error: Some(sign_in_error(tr, &e)),
            };
            with_form_cookie(e.status, html(&page), cookie)
        }
    }
}

fn sign_in_error(tr: Tr, e: &ApiError) -> String {
    match (e.status, e.code.as_str()) {
        (StatusCode::UNAUTHORIZED, _) => tr.t("signin-mismatch"),
        (StatusCode::TOO_MANY_REQUESTS, _) => match e.retry_after {
            Some(secs) => tr.t1(
                "signin-too-many-in",
                "wait",
                &crate::view::minutes_or_seconds(tr, secs),
            ),
            None => tr.t("signin-too-many"),
        },
        _ => tr.problem(e),
    }
}

async fn sign_up(
    State(pages): State<Pages>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    lang: Lang,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_guest_form(&headers, &uri, &form, &pages) {
        return csrf_rejected(&headers, &refused);
    }
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim())
            .unwrap_or_default()
            .to_owned()
    };
    let (username, name, phone, role, locale) = (
        field("username"),
        field("name"),
        field("phone"),
        field("role"),
        field("locale"),
    );
    let next = session::safe_next(&field("next"))
        .unwrap_or_default()
        .to_owned();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let mut body = json!({
        "username": username, "password": password, "name": name, "phone": phone, "role": role,
    });
    if !locale.is_empty() {
        body["locale"] = json!(locale);
    }
    let api = pages.api.for_client(&headers);
    let created = api.post::<serde_json::Value>("/auth/signup", &body).await;
    let token = match created {
        Ok(_) => sign_in_with(&api, &username, password).await,
        Err(e) => Err(e),
    };
    match token {
        Ok(token) => signed_in(&pages, &headers, token, &next).await,
        Err(e) => {
            let (secret, cookie) = form_secret_for(&headers);
            let tr = lang.tr;
            let page = SignUp {
                frame: Frame::guest(&guest_at(lang, "/signup", &next), "title-signup", "signup"),
                csrf: csrf_token(&secret),
                next_q: next_q(&next),
                next,
                username,
                name,
                phone,
                role,
                locale,
                error: Some(sign_up_error(tr, &e)),
            };
            with_form_cookie(e.status, html(&page), cookie)
        }
    }
}

fn sign_up_error(tr: Tr, e: &ApiError) -> String {
    match e.code.as_str() {
        "username_taken" => tr.t("signup-taken"),
        "weak_password" => tr.t("signup-weak"),
        _ => sign_in_error(tr, e),
    }
}

/// The session starts: its cookie, and on to the page asked for or the role's own page.
async fn signed_in(pages: &Pages, headers: &HeaderMap, token: Token, next: &str) -> Response {
    let caller = match pages.verifier.verify(&token.access_token).await {
        Ok(caller) => caller,
        Err(e) => {
            tracing::error!(error = %e, "a token identity just issued does not verify");
            return tanda_core::Problem::internal(&e).into_response();
        }
    };
    tracing::info!(user = %caller.subject, "signed in to the pages");
    let to = match session::safe_next(next) {
        Some(next) if !next.is_empty() => next.to_owned(),
        _ => session::home_of(&caller).to_owned(),
    };
    let secure = session::scheme(headers) == "https";
    let mut response = see_other(&to);
    response.headers_mut().append(
        header::SET_COOKIE,
        session::session_set_cookie(&token.access_token, token.expires_in, secure),
    );
    response
}

/// Ends the session (a form of this site's page only: another site cannot sign its users out).
async fn sign_out(
    State(pages): State<Pages>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_origin(&headers, &uri, &pages.allowed_origins) {
        return csrf_rejected(&headers, &refused);
    }
    if let Some(token) = session_cookie(&headers) {
        let sent = form
            .get(CSRF_FIELD)
            .map(String::as_bytes)
            .unwrap_or_default();
        if !same(sent, csrf_token(&token).as_bytes()) {
            return csrf_rejected(&headers, "the form did not come from this session's page");
        }
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        session::session_clear_cookie(session::scheme(&headers) == "https"),
    );
    response
}

/// The language switcher: `lang` (`ko` or `en`) from any page, back to `next` with the `lang`
/// cookie set. A signed-in user's choice is also kept as theirs (identity's
/// `PUT /auth/users/{userId}/locale`), so their notifications follow; if identity cannot keep
/// it, the cookie still applies. The same cross-site checks as signing out: this site's origin,
/// and a session's CSRF token when there is a session.
async fn switch_language(
    State(pages): State<Pages>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_origin(&headers, &uri, &pages.allowed_origins) {
        return csrf_rejected(&headers, &refused);
    }
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let Some(locale) = Locale::parse(field("lang")) else {
        return tanda_core::Problem::bad_request("invalid_locale", "lang is ko or en")
            .into_response();
    };
    if let Some(token) = session_cookie(&headers)
        && let Ok(caller) = pages.verifier.verify(&token).await
    {
        if !same(field(CSRF_FIELD).as_bytes(), csrf_token(&token).as_bytes()) {
            return csrf_rejected(&headers, "the form did not come from this session's page");
        }
        let path = format!("/auth/users/{}/locale", enc(caller.subject.as_str()));
        let kept = pages
            .api
            .for_client(&headers)
            .as_user(&token)
            .put::<serde_json::Value>(&path, &json!({"locale": locale.as_str()}))
            .await;
        if let Err(e) = kept {
            tracing::info!(user = %caller.subject, status = %e.status, "the language chosen on a page is kept by its cookie only");
        }
    }
    let to = match session::safe_next(field("next")) {
        Some(next) => next.to_owned(),
        None => "/".to_owned(),
    };
    let mut response = see_other(&to);
    response.headers_mut().append(
        header::SET_COOKIE,
        i18n::lang_cookie(locale, session::scheme(&headers) == "https"),
    );
    response
}

/// 303 to a path of this site.
fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(to) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, to);
    }
    response
}
