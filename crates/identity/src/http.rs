//! Identity's HTTP edge (API.md "Identity and access"): sign-up, sign-in (`POST /auth/token`,
//! answering with OAuth 2.0's field names), an account and its language (`/auth/users/{userId}`),
//! the public keys, and the operator's key rotation.

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::http::{Json, Path};
use tanda_core::id::ClientId;
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::account::{Locale, NewAccount, Password, phone, text};
use crate::attempts::{ACCOUNT_FAILURES, ADDRESS_FAILURES, Attempts};
use crate::keys::Keys;
use crate::{Error, claims, store};

/// At most this many password hashes are computed at once: each holds Argon2id's 19 MiB.
const HASHING_AT_ONCE: usize = 4;

pub(crate) struct App {
    pub keys: Keys,
    by_account: Attempts,
    by_address: Attempts,
    hashing: Semaphore,
}

impl App {
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            by_account: Attempts::new(ACCOUNT_FAILURES),
            by_address: Attempts::new(ADDRESS_FAILURES),
            hashing: Semaphore::new(HASHING_AT_ONCE),
        }
    }

    /// Runs password hashing on a blocking thread, a few at a time.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self.hashing.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    routes().with_state(app).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(token))
        .routes(routes!(get_user))
        .routes(routes!(set_locale))
        .routes(routes!(jwks))
        .routes(routes!(rotate))
}

type AppState = State<Arc<App>>;

// Every field is optional here so that a missing one gets its own problem; the document says
// which are required.
/// A new account.
#[derive(Deserialize, ToSchema)]
struct SignUpBody {
    /// Also the userId: 1–64 letters, digits, `-` or `_`.
    #[schema(required = true, nullable = false)]
    username: Option<String>,
    /// At least 8 characters (else `weak_password`).
    #[schema(required = true, nullable = false, min_length = 8)]
    password: Option<String>,
    #[schema(required = true, nullable = false)]
    name: Option<String>,
    #[schema(required = true, nullable = false)]
    phone: Option<String>,
    /// `customer` or `driver`.
    #[schema(required = true, nullable = false, example = "customer")]
    role: Option<String>,
    /// The language of the account's notifications: `ko` (omitted) or `en`.
    #[schema(example = "ko")]
    locale: Option<String>,
}

/// The account made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SignedUp<'a> {
    /// The username: the customerId or driverId of the calls.
    user_id: &'a str,
    username: &'a str,
    #[schema(example = "customer")]
    role: &'a str,
    #[schema(example = "ko")]
    locale: &'a str,
}

/// Creates a customer's or driver's account. A username that something was already done for (an
/// operator booked, reserved or deposited for it, or registered it as a driver) is taken, unless
/// the operator is the one opening the account.
#[utoipa::path(post, path = "/auth/signup", security(()),
    request_body(content = SignUpBody, example = json!({
        "username": "kim-minji", "password": "correct-horse-42", "name": "Kim Minji",
        "phone": "010-1234-5678", "role": "customer", "locale": "en"
    })),
    responses(
        (status = CREATED, description = "Signed up", body = SignedUp),
        (status = CONFLICT, description = "`username_taken`: an account has it, or an operator \
            already acted for it", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn sign_up(
    State(app): AppState,
    caller: Option<Extension<Caller>>,
    Json(body): Json<SignUpBody>,
) -> Result<Response, Problem> {
    let (account, password) = parse_sign_up(body)?;
    let operator = caller.is_some_and(|Extension(c)| c.is_operator());
    if !operator
        && claims::is_claimed(&app.keys.db, &account.user_id)
            .await
            .map_err(Error::from)?
    {
        return Err(Error::Claimed(account.user_id.to_string()).into());
    }
    let hash = app.hashing(move || password.hash()).await?;
    if !store::insert(&app.keys.db, &account, &hash)
        .await
        .map_err(Error::from)?
    {
        return Err(Error::Taken(account.user_id.to_string()).into());
    }
    tracing::info!(user_id = %account.user_id, role = %account.role, "account created");
    let body = SignedUp {
        user_id: account.user_id.as_str(),
        username: account.user_id.as_str(),
        role: account.role.as_str(),
        locale: account.locale.as_str(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

fn parse_sign_up(body: SignUpBody) -> Result<(NewAccount, Password), Error> {
    let username = required(body.username, "username")?;
    let user_id = ClientId::parse(&username)
        .map_err(|e| Error::invalid("invalid_username", format!("username {e}")))?;
    let password = Password::parse(required(body.password, "password")?)?;
    let name = text("name", &required(body.name, "name")?, 100)?;
    let phone = phone(&required(body.phone, "phone")?)?;
    let role = match required(body.role, "role")?.as_str() {
        "customer" => Role::Customer,
        "driver" => Role::Driver,
        _ => {
            return Err(Error::invalid(
                "invalid_role",
                "role must be customer or driver",
            ));
        }
    };
    let locale = match body.locale.as_deref() {
        None => Locale::Ko,
        Some(raw) => locale(raw)?,
    };
    let account = NewAccount {
        user_id,
        name,
        phone,
        role,
        locale,
    };
    Ok((account, password))
}

fn locale(raw: &str) -> Result<Locale, Error> {
    Locale::parse(raw).ok_or_else(|| Error::invalid("invalid_locale", "locale must be ko or en"))
}

/// An account, as its owner and the operator see it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserView<'a> {
    user_id: &'a str,
    username: &'a str,
    #[schema(example = "customer")]
    role: &'a str,
    /// The language of the account's notifications: `ko` or `en`.
    #[schema(example = "ko")]
    locale: &'a str,
}

/// The account `raw` names, if it is the caller's to see: their own, or any for an operator.
/// Someone else's is as good as unknown.
fn own(caller: &Caller, raw: &str) -> Result<ClientId, Problem> {
    let user_id = ClientId::parse(raw)
        .map_err(|e| Error::invalid("invalid_user_id", format!("userId {e}")))?;
    if caller.is_operator() || caller.subject == user_id {
        Ok(user_id)
    } else {
        Err(Problem::not_found("account", user_id.as_str()))
    }
}

/// An account: its role and the language of its notifications.
#[utoipa::path(get, path = "/auth/users/{userId}", security(("bearer" = ["customer", "driver"])),
    params(("userId" = String, Path)),
    responses((status = OK, description = "The account", body = UserView)))]
async fn get_user(
    State(app): AppState,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Response, Problem> {
    let user_id = own(&caller, &user_id)?;
    let Some(account) = store::find(&app.keys.db, &user_id)
        .await
        .map_err(Error::from)?
    else {
        return Err(Problem::not_found("account", user_id.as_str()));
    };
    Ok(axum::Json(UserView {
        user_id: account.user_id.as_str(),
        username: account.user_id.as_str(),
        role: account.role.as_str(),
        locale: account.locale.as_str(),
    })
    .into_response())
}

// Optional here so that a missing locale gets its own problem.
/// The language to read Tanda in.
#[derive(Deserialize, ToSchema)]
struct LocaleBody {
    /// `ko` or `en`.
    #[schema(required = true, nullable = false, example = "en")]
    locale: Option<String>,
}

/// An account's language, as it is now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LocaleView<'a> {
    user_id: &'a str,
    #[schema(example = "en")]
    locale: &'a str,
}

/// Changes the language of an account's notifications.
///
/// Everything the account reads from then on is in the new language, notifications told
/// before the change included. An access token keeps the `locale` claim it was issued with until
/// its owner signs in again.
#[utoipa::path(put, path = "/auth/users/{userId}/locale",
    security(("bearer" = ["customer", "driver"])),
    params(("userId" = String, Path)),
    request_body(content = LocaleBody, example = json!({"locale": "en"})),
    responses(
        (status = OK, description = "The language set", body = LocaleView),
        (status = BAD_REQUEST, description = "`invalid_locale`: not `ko` or `en`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn set_locale(
    State(app): AppState,
    caller: Caller,
    Path(user_id): Path<String>,
    Json(body): Json<LocaleBody>,
) -> Result<Response, Problem> {
    let user_id = own(&caller, &user_id)?;
    let locale = locale(&required(body.locale, "locale")?)?;
    let Some(account) = store::set_locale(&app.keys.db, &user_id, locale)
        .await
        .map_err(Error::from)?
    else {
        return Err(Problem::not_found("account", user_id.as_str()));
    };
    tracing::info!(user_id = %account.user_id, locale = %account.locale, "locale set");
    Ok(axum::Json(LocaleView {
        user_id: account.user_id.as_str(),
        locale: account.locale.as_str(),
    })
    .into_response())
}

// Both fields are optional here so that a missing one gets its own problem.
/// A username and password.
#[derive(Deserialize, ToSchema)]
struct TokenBody {
    #[schema(required = true, nullable = false)]
    username: Option<String>,
    #[schema(required = true, nullable = false)]
    password: Option<String>,
}

/// An access token, with OAuth 2.0's field names.
#[derive(Serialize, ToSchema)]
struct TokenAnswer {
    /// A signed JWT: `sub` is the userId, `roles` the account's roles.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    expires_in: u64,
}

/// A password's hash to check unknown usernames against, so that an unknown name takes as long
/// to refuse as a wrong password (no telling which accounts exist by timing).
static DECOY: LazyLock<String> =
    LazyLock::new(|| Password::typed("not anyone's password".to_owned()).hash());

/// Signs in: an access token for a username and password.
#[utoipa::path(post, path = "/auth/token", security(()),
    request_body(content = TokenBody,
        example = json!({"username": "kim-minji", "password": "correct-horse-42"})),
    responses(
        (status = OK, description = "Signed in", body = TokenAnswer),
        (status = UNAUTHORIZED, description = "`invalid_credentials`: unknown username or wrong \
            password", body = Problem, content_type = "application/problem+json"),
        (status = TOO_MANY_REQUESTS, description = "`too_many_attempts`: too many failed \
            sign-ins for this username or from this address",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
async fn token(
    State(app): AppState,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
) -> Result<Response, Problem> {
    let username = required(body.username, "username")?;
    let password = Password::typed(required(body.password, "password")?);
    let address = client_address(&headers);
    app.by_account.check(&username).map_err(Error::Throttled)?;
    if let Some(address) = &address {
        app.by_address.check(address).map_err(Error::Throttled)?;
    }
    let account = match ClientId::parse(&username) {
        Ok(id) => store::find(&app.keys.db, &id).await.map_err(Error::from)?,
        Err(_) => None,
    };
    let hash = account
        .as_ref()
        .map_or_else(|| DECOY.clone(), |a| a.password_hash.clone());
    let matches = app.hashing(move || password.matches(&hash)).await?;
    let Some(account) = account.filter(|_| matches) else {
        app.by_account.failed(&username);
        if let Some(address) = &address {
            app.by_address.failed(address);
        }
        return Err(Error::InvalidCredentials.into());
    };
    app.by_account.succeeded(&username);
    let token = app
        .keys
        .sign(
            account.user_id.as_str(),
            &[account.role.as_str()],
            Some(account.locale.as_str()),
        )
        .await
        .map_err(Error::from)?;
    Ok(axum::Json(TokenAnswer {
        access_token: token,
        token_type: "Bearer",
        expires_in: app.keys.token_ttl.as_secs(),
    })
    .into_response())
}

/// The public keys that verify Tanda's tokens (a JSON Web Key Set).
#[utoipa::path(get, path = "/.well-known/jwks.json", security(()),
    responses((status = OK, description = "The keys (RFC 7517): Ed25519, one per `kid`",
        body = Object,
        headers(("Cache-Control" = String, description = "`public, max-age=60`")),
        example = json!({"keys": [{
            "use": "sig", "alg": "EdDSA", "kid": "0196f0c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }]}))))]
async fn jwks(State(app): AppState) -> Result<Response, Problem> {
    let set = app.keys.jwks().await.map_err(Error::from)?;
    Ok(([("cache-control", "public, max-age=60")], axum::Json(set)).into_response())
}

/// The signing key made.
#[derive(Serialize, ToSchema)]
struct Rotated {
    /// The new key's id, in the JWKS now; it signs once every verifier can know it.
    #[schema(format = "uuid")]
    kid: String,
}

/// Makes a new signing key.
///
/// The new key is published at once and signs tokens after the rotation delay; the keys it
/// replaces stay published while tokens they signed are valid.
#[utoipa::path(post, path = "/admin/signing-keys/rotate",
    responses((status = OK, description = "Rotated", body = Rotated)))]
async fn rotate(State(app): AppState, caller: Caller) -> Result<Response, Problem> {
    caller.require_operator()?;
    let kid = app.keys.rotate().await.map_err(Error::from)?;
    Ok(axum::Json(Rotated { kid }).into_response())
}

/// The client's address, as the edge in front of every process sets it (`X-Forwarded-For`: the
/// connection's peer at the entry point, passed on by the gateway to the services behind it).
fn client_address(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then(|| last.to_owned())
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid("missing_field", format!("{field} is required")))
}
