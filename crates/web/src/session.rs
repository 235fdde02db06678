//! Who is using a page, and the pages' defences against other sites.
//!
//! Signing in puts the access token into the `tanda_session` cookie (`HttpOnly`, `SameSite=Lax`).
//! A page's `GET` is authenticated at the edge from that cookie (the [`Caller`] is in the
//! request); a page's `POST` is not — another site can make a browser send one — so every `/ui`
//! `POST` first proves it comes from a page of this site: its `Origin`, when sent, is this site's
//! (or an allowed one), and it carries the CSRF token the page was rendered with, which only this
//! site's pages know (a hash of the session token: another site can read neither). Only then is
//! the cookie's token verified and used, as the bearer token of the API calls the page makes.
//!
//! The sign-in and sign-up forms have no session yet: theirs is the hash of a random value kept in
//! a cookie of its own (a double-submitted token).

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role, SESSION_COOKIE, Verifier, session_cookie};
use tanda_core::id::ClientId;

use crate::api::{Api, enc};
use crate::i18n::{self, Tr};

/// The cookie holding the sign-in and sign-up forms' secret.
pub(crate) const FORM_COOKIE: &str = "tanda_form";
/// The header htmx sends the page's CSRF token in (set on `<body>` with `hx-headers`).
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The form field plain (non-htmx) forms send it in.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// What every page handler has: the API, and what checks sessions and origins.
#[derive(Clone)]
pub(crate) struct Pages {
    /// The API without credentials (sign-up and sign-in are public).
    pub api: Api,
    pub verifier: Arc<Verifier>,
    /// Origins besides this site's own that may send its forms.
    pub allowed_origins: Arc<[String]>,
}

/// The signed-in user of a page or a form, and the API as them.
pub(crate) struct User {
    pub caller: Caller,
    /// The API with the session's token as the bearer token of every call.
    pub api: Api,
    /// The page's CSRF token, to embed in what it renders.
    pub csrf: String,
    /// The language the page speaks (`i18n::choose`).
    pub tr: Tr,
    /// The path and query of the request: for a page, where the language switcher comes back.
    pub here: String,
}

impl User {
    fn new(caller: Caller, token: &str, pages: &Pages) -> Self {
        User {
            tr: Tr(caller.locale.unwrap_or_default()),
            here: "/".to_owned(),
            api: pages.api.as_user(token),
            csrf: csrf_token(token),
            caller,
        }
    }

    /// The user of the request `parts` belong to: its language and its place.
    fn at(self, parts: &Parts) -> Self {
        User {
            tr: Tr(i18n::choose(&parts.headers, Some(&self.caller))),
            here: i18n::here(parts),
            ..self
        }
    }

    pub fn id(&self) -> &str {
        self.caller.subject.as_str()
    }

    pub fn is_operator(&self) -> bool {
        self.caller.is_operator()
    }

    /// Whom a page or action of `role` is for: the user themselves, or, for an operator, the one
    /// named in the `key` parameter (an operator acts for anyone, as a call centre does). A user
    /// naming someone else, or without the role, is refused.
    pub fn acting(
        &self,
        role: Role,
        key: &'static str,
        named: Option<&str>,
    ) -> Result<Acting, Refusal> {
        let named = named.map(str::trim).filter(|n| !n.is_empty());
        if self.is_operator() {
            let Some(named) = named else {
                return Err(Refusal::ChooseWho);
            };
            let id = ClientId::parse(named).map_err(|_| Refusal::Invalid(named.to_owned()))?;
            return Ok(Acting {
                q: format!("?{key}={}", enc(id.as_str())),
                id: id.to_string(),
                for_someone: true,
            });
        }
        if !self.caller.has(role) {
            return Err(Refusal::WrongRole(role));
        }
        match named {
            Some(other) if other != self.id() => Err(Refusal::NotYours),
            _ => Ok(Acting {
                id: self.id().to_owned(),
                q: String::new(),
                for_someone: false,
            }),
        }
    }
}

/// Whom a page acts for, and how its links and forms say so.
pub(crate) struct Acting {
    pub id: String,
    /// `?customerId=…` when an operator acts for someone; empty for oneself.
    pub q: String,
    /// An operator acting on someone's behalf.
    pub for_someone: bool,
}

/// Why a user may not have a page or do an action.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An operator opened a page without saying for whom.
    ChooseWho,
    /// The id named (here) is not an id.
    Invalid(String),
    /// Someone else's page.
    NotYours,
    /// A page for another role.
    WrongRole(Role),
}

impl Refusal {
    /// As a fragment's or an action's answer: a problem.
    pub fn problem(&self) -> Response {
        match self {
            Refusal::ChooseWho => {
                Problem::bad_request("missing_field", "an operator names whom this is for")
                    .into_response()
            }
            Refusal::Invalid(named) => {
                Problem::bad_request("invalid_id", format!("\"{named}\" is not an id"))
                    .into_response()
            }
            Refusal::NotYours => {
                tanda_core::auth::forbidden("you act only as yourself").into_response()
            }
            Refusal::WrongRole(role) => {
                tanda_core::auth::forbidden(format!("this needs the {role} role")).into_response()
            }
        }
    }
}

impl FromRequestParts<Pages> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, pages: &Pages) -> Result<Self, Response> {
        if matches!(parts.method, Method::GET | Method::HEAD) {
            // The edge verified the token the request carries, the cookie or a bearer token.
            let caller = parts.extensions.get::<Caller>().cloned();
            let token = bearer(&parts.headers).or_else(|| session_cookie(&parts.headers));
            return match (caller, token) {
                (Some(caller), Some(token)) => Ok(User::new(caller, &token, pages).at(parts)),
                _ => Err(sign_in_first(parts)),
            };
        }
        check_origin(&parts.headers, &parts.uri, &pages.allowed_origins)
            .map_err(|refused| csrf_rejected(&parts.headers, &refused))?;
        let Some(token) = session_cookie(&parts.headers) else {
            return Err(sign_in_first(parts));
        };
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !same(sent, csrf_token(&token).as_bytes()) {
            return Err(csrf_rejected(
                &parts.headers,
                "the form did not come from this session's page; reload the page",
            ));
        }
        match pages.verifier.verify(&token).await {
            Ok(caller) => Ok(User::new(caller, &token, pages).at(parts)),
            Err(_) => Err(sign_in_first(parts)),
        }
    }
}

impl OptionalFromRequestParts<Pages> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        pages: &Pages,
    ) -> Result<Option<Self>, Response> {
        match <User as FromRequestParts<Pages>>::from_request_parts(parts, pages).await {
            Ok(user) => Ok(Some(user)),
            Err(_) if matches!(parts.method, Method::GET | Method::HEAD) => Ok(None),
            Err(refused) => Err(refused),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The CSRF token of a session (or of a sign-in form's secret): only pages rendered for it
/// know it, and it tells nothing of the token it comes from.
pub(crate) fn csrf_token(secret: &str) -> String {
    hex::encode(Sha256::digest(format!("csrf:{secret}").as_bytes()))
}

/// Equal, in a time that does not depend on where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A form's `POST` from another site is refused: when the browser says where it comes from, that
/// must be this site (the scheme the request arrived with, its `Host`) or an allowed origin.
/// The refusal says why, for [`csrf_rejected`].
pub(crate) fn check_origin(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    allowed: &[String],
) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(axum::http::uri::Authority::as_str));
    let ours = host
        .is_some_and(|host| origin.eq_ignore_ascii_case(&format!("{}://{host}", scheme(headers))));
    if ours || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(format!("a form of this site cannot be sent from {origin}"))
    }
}

/// `https` when a proxy in front says the request came over HTTPS, else `http`.
pub(crate) fn scheme(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if https { "https" } else { "http" }
}

/// 403 `csrf_rejected`. A page of this site whose token is stale (the session changed in another
/// window) reloads, to be rendered for the session there is now.
pub(crate) fn csrf_rejected(headers: &HeaderMap, detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::FORBIDDEN, "csrf_rejected", detail).into_response();
    if headers.contains_key("hx-request") {
        response
            .headers_mut()
            .insert("hx-refresh", HeaderValue::from_static("true"));
    }
    response
}

/// Not signed in (or the session expired): a page goes to the sign-in page, and comes back after;
/// a fragment or an action answers 401 and sends the page it is on there.
pub(crate) fn sign_in_first(parts: &Parts) -> Response {
    let htmx = parts.headers.contains_key("hx-request");
    let fragment = parts.uri.path().starts_with("/ui/");
    if !htmx && !fragment && matches!(parts.method, Method::GET | Method::HEAD) {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        return Redirect::to(&signin_path(Some(&here))).into_response();
    }
    let page = parts
        .headers
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .and_then(path_of_url);
    let mut response = tanda_core::auth::unauthenticated(
        "unauthenticated",
        "sign in: this page needs a session (POST /ui/signin)",
    );
    if let Ok(to) = HeaderValue::from_str(&signin_path(page.as_deref())) {
        response.headers_mut().insert("hx-redirect", to);
    }
    response
}

/// `/signin`, with where to come back to.
pub(crate) fn signin_path(next: Option<&str>) -> String {
    match next.and_then(safe_next) {
        Some(next) if next != "/" => format!("/signin?next={}", enc(next)),
        _ => "/signin".to_owned(),
    }
}

/// The path (and query) of an absolute URL, e.g. the page htmx says it is on.
fn path_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    safe_next(path).map(str::to_owned)
}

/// Where to go after signing in: a path on this site, never another site (`//evil.example`,
/// `/\evil.example`, `https://…`), and never a fragment of a page.
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/ui/")
        && next.len() <= 2000
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// The page a role starts on.
pub(crate) fn home_of(caller: &Caller) -> &'static str {
    if caller.is_operator() {
        "/operator"
    } else if caller.has(Role::Driver) {
        "/driver"
    } else {
        "/customer"
    }
}

/// `Set-Cookie` for a new session: readable by no script, sent on this site's own requests and on
/// top-level navigations to it, not on other sites' form posts or frames.
pub(crate) fn session_set_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    cookie(SESSION_COOKIE, token, max_age_secs, "Lax", secure)
}

/// `Set-Cookie` that ends the session.
pub(crate) fn session_clear_cookie(secure: bool) -> HeaderValue {
    cookie(SESSION_COOKIE, "", 0, "Lax", secure)
}

/// `Set-Cookie` for the sign-in forms' secret.
pub(crate) fn form_set_cookie(secret: &str, secure: bool) -> HeaderValue {
    cookie(FORM_COOKIE, secret, 3600, "Strict", secure)
}

fn cookie(name: &str, value: &str, max_age: u64, same_site: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite={same_site}; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("tokens and secrets are cookie-safe text")
}

/// The sign-in forms' secret from its cookie, if it has one of the expected form.
pub(crate) fn form_secret(headers: &HeaderMap) -> Option<String> {
    tanda_core::auth::cookie(headers, FORM_COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A new secret for the sign-in forms.
pub(crate) fn new_form_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_this_site_or_an_allowed_origin_may_send_a_form() {
        let uri: axum::http::Uri = "/ui/traveller/deposit".parse().unwrap();
        let allowed = ["https://app.example".to_owned()];
        let ok = |h: HeaderMap| check_origin(&h, &uri, &allowed).is_ok();
        assert!(ok(headers(&[("host", "tanda.example:8080")])), "no Origin");
        assert!(ok(headers(&[
            ("host", "tanda.example:8080"),
            ("origin", "http://tanda.example:8080")
        ])));
        assert!(ok(headers(&[
            ("host", "tanda.example"),
            ("origin", "https://tanda.example"),
            ("x-forwarded-proto", "https")
        ])));
        assert!(ok(headers(&[
            ("host", "tanda.example"),
            ("origin", "https://app.example")
        ])));
        for origin in [
            "https://evil.example",
            "null",
            "http://tanda.example:8081",
            "https://tanda.example:8080",
        ] {
            let refused = check_origin(
                &headers(&[("host", "tanda.example:8080"), ("origin", origin)]),
                &uri,
                &allowed,
            )
            .unwrap_err();
            assert!(refused.contains(origin), "{refused}");
        }
    }

    #[test]
    fn csrf_tokens_are_a_hash_of_the_session_compared_whole() {
        let token = csrf_token("header.payload.signature");
        assert_eq!(token.len(), 64);
        assert!(!token.contains("payload"));
        assert_ne!(token, csrf_token("header.payload.other"));
        assert!(same(
            token.as_bytes(),
            csrf_token("header.payload.signature").as_bytes()
        ));
        assert!(!same(token.as_bytes(), &token.as_bytes()[..63]));
        assert!(!same(b"", token.as_bytes()));
    }

    #[test]
    fn after_sign_in_only_a_path_on_this_site() {
        assert_eq!(safe_next("/customer"), Some("/customer"));
        assert_eq!(
            safe_next("/customer?customerId=minji"),
            Some("/customer?customerId=minji")
        );
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/ui/customer/ride",
            "/a b",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(signin_path(Some("/driver")), "/signin?next=%2Fdriver");
        assert_eq!(signin_path(Some("//evil.example")), "/signin");
        assert_eq!(
            path_of_url("http://127.0.0.1:8080/traveller?userId=u").as_deref(),
            Some("/traveller?userId=u")
        );
    }

    #[test]
    fn the_session_cookie_is_http_only_same_site_and_secure_over_https() {
        let plain = session_set_cookie("a.b.c", 3600, false);
        assert_eq!(
            plain,
            "tanda_session=a.b.c; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"
        );
        let secure = session_set_cookie("a.b.c", 60, true);
        assert!(secure.to_str().unwrap().ends_with("; Max-Age=60; Secure"));
        assert!(
            session_clear_cookie(false)
                .to_str()
                .unwrap()
                .contains("tanda_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
        );
        assert_eq!(scheme(&headers(&[("x-forwarded-proto", "https")])), "https");
        assert_eq!(scheme(&headers(&[])), "http");
    }

    #[test]
    fn an_operator_acts_for_whom_it_names_a_user_only_as_themselves() {
        let id = |s: &str| ClientId::parse(s).unwrap();
        let pages = Pages {
            api: Api::new(axum::Router::new()),
            verifier: Arc::new(Verifier::new(
                Arc::new(tanda_core::auth::FixedJwks::default()),
                None,
            )),
            allowed_origins: Arc::from(Vec::new()),
        };
        let user = |sub: &str, roles| User::new(Caller::new(id(sub), roles), "t.o.k", &pages);

        let minji = user("minji", vec![Role::Customer]);
        let me = minji.acting(Role::Customer, "customerId", None).unwrap();
        assert_eq!((me.id.as_str(), me.q.as_str()), ("minji", ""));
        assert!(
            minji
                .acting(Role::Customer, "customerId", Some("minji"))
                .is_ok()
        );
        assert_eq!(
            minji
                .acting(Role::Customer, "customerId", Some("hong"))
                .err(),
            Some(Refusal::NotYours)
        );
        assert_eq!(
            minji.acting(Role::Driver, "driverId", None).err(),
            Some(Refusal::WrongRole(Role::Driver))
        );

        let operator = user("operator", vec![Role::Operator]);
        assert_eq!(
            operator.acting(Role::Customer, "customerId", None).err(),
            Some(Refusal::ChooseWho)
        );
        let hong = operator
            .acting(Role::Customer, "customerId", Some("hong"))
            .unwrap();
        assert_eq!(
            (hong.id.as_str(), hong.q.as_str()),
            ("hong", "?customerId=hong")
        );
        assert!(matches!(
            operator.acting(Role::Customer, "customerId", Some("no spaces")),
            Err(Refusal::Invalid(_))
        ));
    }
}
