//! Who is calling, and what they may do (API.md "Identity and access"; DESIGN §5.10).
//!
//! Authentication happens once, at the edge of every process: [`authenticate`] reads the bearer
//! token (or, for a page's `GET`, its session cookie), has the [`Verifier`] check it, and puts the
//! resulting [`Caller`] into the request. Authorization happens in each handler, which is the only
//! place that knows who owns the resource: it takes a [`Caller`] (no credentials → 401) and asks it
//! `act_as`, `may_read` or `require`. A service never trusts an identity it did not verify itself,
//! so in distributed mode the gateway is not the only lock.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::id::ClientId;
use crate::locale::Locale;
use crate::problem::Problem;

pub use crate::jwt::{
    AUDIENCE, Claims, External, FixedJwks, HttpJwks, ISSUER, JwksSource, TokenError, Verifier,
};

/// The cookie the web pages keep their session token in.
pub const SESSION_COOKIE: &str = "tanda_session";

/// What an identity may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    Driver,
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Customer, Role::Driver, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Driver => "driver",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified identity: the user id (`sub`: the customerId, driverId or flight userId of the
/// calls) and the roles its token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: ClientId,
    pub roles: Vec<Role>,
    /// The language the user chose (the token's `locale` claim), when the token says.
    pub locale: Option<Locale>,
}

impl Caller {
    pub fn new(subject: ClientId, roles: Vec<Role>) -> Self {
        Self {
            subject,
            roles,
            locale: None,
        }
    }

    pub fn with_locale(self, locale: Option<Locale>) -> Self {
        Self { locale, ..self }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_operator(&self) -> bool {
        self.has(Role::Operator)
    }

    /// 403 unless the caller has `role` (an operator may do everything).
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.has(role) || self.is_operator() {
            Ok(())
        } else {
            Err(forbidden(format!("this needs the {role} role")))
        }
    }

    /// 403 unless the caller is an operator.
    pub fn require_operator(&self) -> Result<(), Problem> {
        self.require(Role::Operator)
    }

    /// The id a `role` action is done as: the caller's own (when `named` is omitted or is the
    /// caller), or, for an operator acting on someone's behalf, the one named (required then).
    /// Anything else is acting as someone else: 403.
    pub fn act_as(&self, role: Role, named: Option<&ClientId>) -> Result<ClientId, Problem> {
        if self.is_operator() {
            return named.cloned().ok_or_else(|| {
                Problem::bad_request(
                    "missing_field",
                    format!("an operator acting for a {role} names the {role}'s id"),
                )
            });
        }
        if !self.has(role) {
            return Err(forbidden(format!("this needs the {role} role")));
        }
        match named {
            Some(id) if *id != self.subject => Err(forbidden(format!(
                "a {role} acts only as themselves ({})",
                self.subject
            ))),
            _ => Ok(self.subject.clone()),
        }
    }

    /// Whether the caller may see what `owner` owns as a `role`: their own, or anything for an
    /// operator. Handlers answer a `false` as 404, so that a stranger cannot tell someone else's
    /// resource from one that does not exist.
    pub fn may_read(&self, role: Role, owner: &str) -> bool {
        self.is_operator() || (self.has(role) && self.subject.as_str() == owner)
    }
}

/// 403, code `forbidden`.
pub fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// 401, code `unauthenticated` (or `invalid_token`), with `WWW-Authenticate: Bearer`.
pub fn unauthenticated(code: &str, detail: impl Into<String>) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, code, detail).into_response();
    let challenge = if code == "invalid_token" {
        r#"Bearer realm="tanda", error="invalid_token""#
    } else {
        r#"Bearer realm="tanda""#
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// A handler that takes a `Caller` is closed to requests without verified credentials.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            unauthenticated(
                "unauthenticated",
                "sign in: this call needs a bearer token (POST /auth/token)",
            )
        })
    }
}

/// The edge middleware of every process: verifies the credentials a request carries and puts
/// the [`Caller`] into it. A request without credentials passes on without one (public routes
/// need none; the others refuse it through the extractor); a bearer token that does not verify
/// is refused here, whatever the route. A session cookie that does not verify (most often one
/// that expired) counts as no credentials: the browser keeps sending it until it is replaced,
/// and the page it asked for then sends its reader to sign in again.
pub async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    // Nothing outside this middleware may put an identity into a request.
    request.extensions_mut().remove::<Caller>();
    let presented = match credentials(request.method(), request.headers()) {
        // A bearer that is no JWT is not a user's: the service credential, which only the
        // internal routes take (`credential::require`), is one.
        Ok(Some(Presented::Bearer(token))) if token.split('.').count() != 3 => {
            return next.run(request).await;
        }
        Ok(Some(presented)) => presented,
        Ok(None) => return next.run(request).await,
        Err(detail) => return unauthenticated("invalid_token", detail),
    };
    match verifier.verify(presented.token()).await {
        Ok(caller) => {
            // The write limit holds each signed-in caller to their own allowance.
            let key = crate::rate::RateKey(format!("user:{}", caller.subject));
            request.extensions_mut().insert(key);
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(_) if matches!(presented, Presented::Cookie(_)) => next.run(request).await,
        Err(e) => unauthenticated("invalid_token", e.to_string()),
    }
}

/// A token and where the request carried it.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    Bearer(String),
    Cookie(String),
}

impl Presented {
    fn token(&self) -> &str {
        match self {
            Presented::Bearer(t) | Presented::Cookie(t) => t,
        }
    }
}

/// The token a request presents: `Authorization: Bearer …`, or the session cookie on a request
/// that changes nothing (a page's own reads and its notification stream). A cookie never
/// authenticates a state-changing request: the pages' forms exchange it for a bearer token after
/// their cross-site checks, so another site cannot ride on it.
fn credentials(method: &Method, headers: &HeaderMap) -> Result<Option<Presented>, &'static str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| "malformed Authorization header")?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or("Authorization must be `Bearer <token>`")?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err("Authorization must be `Bearer <token>`");
        }
        return Ok(Some(Presented::Bearer(token.trim().to_owned())));
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(session_cookie(headers).map(Presented::Cookie));
    }
    Ok(None)
}

/// The session token from the `Cookie` headers, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name` in the `Cookie` headers, if it is there and not empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn a_customer_acts_only_as_themselves() {
        let hong = Caller::new(id("hong"), vec![Role::Customer]);
        assert_eq!(hong.act_as(Role::Customer, None).unwrap(), id("hong"));
        assert_eq!(
            hong.act_as(Role::Customer, Some(&id("hong"))).unwrap(),
            id("hong")
        );
        assert_eq!(
            hong.act_as(Role::Customer, Some(&id("kim")))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(hong.act_as(Role::Driver, None).unwrap_err().status, 403);
    }

    #[test]
    fn an_operator_acts_for_whoever_it_names() {
        let op = Caller::new(id("operator"), vec![Role::Operator]);
        assert_eq!(
            op.act_as(Role::Driver, Some(&id("kim"))).unwrap(),
            id("kim")
        );
        assert_eq!(op.act_as(Role::Customer, None).unwrap_err().status, 400);
        assert!(op.may_read(Role::Customer, "anyone"));
        assert!(op.require(Role::Driver).is_ok());
    }

    #[test]
    fn reading_is_for_the_owner_in_the_right_role() {
        let kim = Caller::new(id("kim"), vec![Role::Driver]);
        assert!(kim.may_read(Role::Driver, "kim"));
        assert!(!kim.may_read(Role::Customer, "kim"));
        assert!(!kim.may_read(Role::Driver, "lee"));
        assert_eq!(kim.require_operator().unwrap_err().status, 403);
    }

    #[test]
    fn bearer_tokens_and_read_only_cookies_are_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; tanda_session=abc".parse().unwrap());
        assert_eq!(
            credentials(&Method::GET, &headers).unwrap(),
            Some(Presented::Cookie("abc".to_owned()))
        );
        assert_eq!(credentials(&Method::POST, &headers).unwrap(), None);
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(
            credentials(&Method::POST, &headers).unwrap(),
            Some(Presented::Bearer("xyz".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert!(credentials(&Method::GET, &headers).is_err());
    }

    /// A route behind the middleware that says whether a caller reached it.
    async fn who(request: Request) -> Response {
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|caller: Option<axum::Extension<Caller>>| async move {
                    caller.map_or("nobody".to_owned(), |c| c.subject.to_string())
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(Verifier::new(Arc::new(FixedJwks::default()), None)),
                authenticate,
            ));
        tower::ServiceExt::oneshot(app, request).await.unwrap()
    }

    #[tokio::test]
    async fn a_session_cookie_that_no_longer_verifies_is_no_credentials_but_a_bearer_is_refused() {
        let expired = "eyJhbGciOiJFZERTQSIsImtpZCI6Im9sZCJ9.eyJpc3MiOiJ0YW5kYSJ9.c2ln";
        let by_cookie = Request::builder()
            .uri("/")
            .header(header::COOKIE, format!("{SESSION_COOKIE}={expired}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let answer = who(by_cookie).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"nobody");

        let by_bearer = Request::builder()
            .uri("/")
            .header(header::AUTHORIZATION, format!("Bearer {expired}"))
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(who(by_bearer).await.status(), StatusCode::UNAUTHORIZED);
    }
}
