//! Tokens of an external OpenID Connect issuer (how a deployment plugs in Keycloak, Auth0 or
//! Cognito): verified with the keys its JWKS URL serves, roles read from its configured claim.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tanda_core::auth::{External, FixedJwks, HttpJwks, Role, TokenError, Verifier};
use tanda_core::jwt::{JwksSource, LEEWAY_SECS, MIN_REFETCH};

const ISSUER: &str = "https://id.example.test/realms/seoul";

struct Idp {
    key: SigningKey,
    jwks_url: reqwest::Url,
    /// What each fetch of the JWKS asked for: its `Host` header.
    fetches: Arc<std::sync::Mutex<Vec<String>>>,
}

/// An issuer whose JWKS this test serves over HTTP: its signing key's, among retired keys as a
/// real issuer keeps them for a while (with them the set is a few kilobytes, as Keycloak's is).
async fn idp() -> Idp {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let jwk = |kid: &str, key: &SigningKey| {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig"})
    };
    let retired = (0..24).map(|n| {
        let old = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        jwk(&format!("idp-retired-{n}"), &old)
    });
    let keys: Vec<Value> = retired.chain([jwk("idp-1", &key)]).collect();
    let jwks = json!({ "keys": keys });
    assert!(jwks.to_string().len() > 2_000, "a set of a few kilobytes");
    let fetches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = fetches.clone();
    let app = Router::new().route(
        "/certs",
        get(move |headers: axum::http::HeaderMap| {
            let host = headers.get("host").and_then(|h| h.to_str().ok());
            seen.lock()
                .unwrap()
                .push(host.unwrap_or_default().to_owned());
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        key,
        jwks_url: format!("http://{addr}/certs").parse().unwrap(),
        fetches,
    }
}

/// An issuer whose JWKS this test serves over HTTPS, with a certificate of its own CA (as a
/// private Keycloak's would be): the CA's certificate in PEM, and the issuer.
async fn idp_over_https() -> (Idp, String) {
    let plain = idp().await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = certified.cert.pem();
    let chain = vec![certified.cert.der().clone()];
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Each connection is relayed to the plain server: TLS is all this adds.
    let plain_addr = (
        plain.jwks_url.host_str().unwrap().to_owned(),
        plain.jwks_url.port().unwrap(),
    );
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let plain_addr = plain_addr.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut upstream = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    let jwks_url = format!("https://localhost:{port}/certs").parse().unwrap();
    (Idp { jwks_url, ..plain }, pem)
}

impl Idp {
    fn with_roots(&self, pem: &str) -> Verifier {
        let roots = tanda_core::jwt::pem_roots(pem.as_bytes()).unwrap();
        let external = External {
            issuer: ISSUER.to_owned(),
            audience: "tanda".to_owned(),
            roles_claim: "realm_access.roles".to_owned(),
            jwks: Arc::new(HttpJwks::with_roots(self.jwks_url.clone(), roots)),
        };
        Verifier::new(Arc::new(FixedJwks::default()), Some(external))
    }

    fn token(&self, claims: Value) -> String {
        self.token_with_kid("idp-1", claims)
    }

    fn token_with_kid(&self, kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let der = self.key.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    fn verifier(&self) -> Verifier {
        let external = External {
            issuer: ISSUER.to_owned(),
            audience: "tanda".to_owned(),
            roles_claim: "realm_access.roles".to_owned(),
            jwks: Arc::new(HttpJwks::new(self.jwks_url.clone())),
        };
        Verifier::new(Arc::new(FixedJwks::default()), Some(external))
    }
}

fn claims(aud: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({"iss": ISSUER, "sub": "kim", "aud": aud, "iat": now, "exp": now + 300,
           "realm_access": {"roles": ["driver", "offline_access", "uma_authorization"]}})
}

#[tokio::test]
async fn an_external_token_is_accepted_with_its_roles_mapped() {
    let idp = idp().await;
    let caller = idp
        .verifier()
        .verify(&idp.token(claims("tanda")))
        .await
        .unwrap();
    assert_eq!(caller.subject.as_str(), "kim");
    assert_eq!(caller.roles, vec![Role::Driver]);
}

#[tokio::test]
async fn an_external_token_for_another_audience_or_issuer_is_refused() {
    let idp = idp().await;
    let verifier = idp.verifier();
    assert!(matches!(
        verifier.verify(&idp.token(claims("another-app"))).await,
        Err(TokenError::Invalid(_))
    ));
    let mut elsewhere = claims("tanda");
    elsewhere["iss"] = json!("https://other.example.test");
    assert!(matches!(
        verifier.verify(&idp.token(elsewhere)).await,
        Err(TokenError::UnknownIssuer)
    ));
    // Without an external issuer configured, its tokens are not Tanda's business.
    let plain = Verifier::new(Arc::new(FixedJwks::default()), None);
    assert!(matches!(
        plain.verify(&idp.token(claims("tanda"))).await,
        Err(TokenError::UnknownIssuer)
    ));
}

#[tokio::test]
async fn an_issuers_keys_are_fetched_over_https_from_a_trusted_root_only() {
    let (idp, ca) = idp_over_https().await;
    let caller = idp
        .with_roots(&ca)
        .verify(&idp.token(claims("tanda")))
        .await
        .unwrap();
    assert_eq!(caller.roles, vec![Role::Driver]);
    // Asked by the host and port of the URL, as a server behind a name-based proxy needs.
    let authority = format!("localhost:{}", idp.jwks_url.port().unwrap());
    assert_eq!(*idp.fetches.lock().unwrap(), [authority]);
    // The same server, its certificate not trusted: no keys, so no token of its verifies.
    let untrusting = idp.verifier();
    match untrusting.verify(&idp.token(claims("tanda"))).await {
        Err(TokenError::KeysUnavailable(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("an untrusted JWKS was used: {other:?}"),
    }
    assert!(tanda_core::jwt::pem_roots(b"not a certificate").is_err());
}

#[tokio::test]
async fn made_up_key_ids_do_not_turn_into_a_flood_of_fetches() {
    let idp = idp().await;
    let verifier = idp.verifier();
    verifier.verify(&idp.token(claims("tanda"))).await.unwrap();
    for n in 0..5 {
        let forged = idp.token_with_kid(&format!("made-up-{n}"), claims("tanda"));
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(TokenError::UnknownKey(_))
        ));
    }
    let fetches = idp.fetches.lock().unwrap().clone();
    assert_eq!(fetches.len(), 1, "at most one fetch per {MIN_REFETCH:?}");
}

#[tokio::test]
async fn a_token_remembered_as_verified_is_refused_once_it_expires() {
    let idp = idp().await;
    let verifier = idp.verifier();
    let now = jsonwebtoken::get_current_timestamp();
    let mut brief = claims("tanda");
    // Valid, with the leeway allowed for clocks apart, for two more seconds.
    brief["exp"] = json!(now + 2 - LEEWAY_SECS);
    let token = idp.token(brief);
    verifier.verify(&token).await.unwrap();
    tanda_testkit::eventually("the expired token is refused", async || {
        matches!(verifier.verify(&token).await, Err(TokenError::Invalid(_)))
    })
    .await;
}

#[tokio::test]
async fn a_jwks_past_its_bound_is_refused() {
    let huge = json!({"keys": [], "padding": "x".repeat(300 * 1024)});
    let app = Router::new().route(
        "/certs",
        get(move || {
            let huge = huge.clone();
            async move { axum::Json(huge) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url: reqwest::Url = format!("http://{addr}/certs").parse().unwrap();
    let refused = HttpJwks::new(url).jwks().await.unwrap_err();
    assert!(refused.contains("larger than"), "{refused}");
}

/// The edge middleware in front of a route that needs a caller, answering with its subject.
fn guarded(verifier: Verifier) -> Router {
    use tanda_core::auth::{Caller, authenticate};
    Router::new()
        .route(
            "/me",
            get(|caller: Caller| async move { caller.subject.as_str().to_owned() }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(verifier),
            authenticate,
        ))
}

/// The status, the `WWW-Authenticate` challenge and the body of `GET /me` with `authorization`.
async fn call(router: &Router, authorization: Option<&str>) -> (u16, String, String) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::get("/me");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_edge_tells_a_missing_credential_from_a_bad_token() {
    let idp = idp().await;
    let router = guarded(idp.verifier());
    let token = idp.token(claims("tanda"));
    let (status, _, body) = call(&router, Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body.as_str()), (200, "kim"));
    // No credentials: a plain challenge (RFC 6750 §3: no error code when none was presented).
    let (status, challenge, body) = call(&router, None).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer realm="tanda""#)
    );
    assert!(body.contains("\"unauthenticated\""), "{body}");
    // A token that does not verify: refused here, whatever the route, as an invalid token.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "a.b.c"] {
        let (status, challenge, body) = call(&router, Some(&format!("Bearer {bad}"))).await;
        assert_eq!(status, 401);
        assert_eq!(challenge, r#"Bearer realm="tanda", error="invalid_token""#);
        assert!(body.contains("\"invalid_token\""), "{body}");
    }
    // A bearer that is no JWT (the service credential) is not a user's: the route finds no
    // caller, and says so as for no credentials at all.
    let (status, challenge, _) = call(&router, Some("Bearer a-service-secret-of-length")).await;
    assert_eq!(
        (status, challenge.as_str()),
        (401, r#"Bearer realm="tanda""#)
    );
}

/// An issuer's JWKS that can be taken down, refetched as often as asked.
struct Unreliable {
    set: jsonwebtoken::jwk::JwkSet,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl JwksSource for Unreliable {
    async fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, String> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the issuer is down".to_owned());
        }
        Ok(self.set.clone())
    }

    fn min_refetch(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

#[tokio::test]
async fn while_the_issuers_keys_cannot_be_fetched_the_keys_in_hand_still_verify() {
    let idp = idp().await;
    let set = reqwest::get(idp.jwks_url.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let source = Arc::new(Unreliable {
        set,
        down: false.into(),
    });
    let verifier = Verifier::new(
        Arc::new(FixedJwks::default()),
        Some(External {
            issuer: ISSUER.to_owned(),
            audience: "tanda".to_owned(),
            roles_claim: "realm_access.roles".to_owned(),
            jwks: source.clone(),
        }),
    );
    verifier.verify(&idp.token(claims("tanda"))).await.unwrap();
    source.down.store(true, std::sync::atomic::Ordering::SeqCst);
    // An unknown key makes the verifier fetch again; the fetch fails, and the keys it has stay.
    let unknown = idp.token_with_kid("rotated-in", claims("tanda"));
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(TokenError::UnknownKey(_))
    ));
    let mut another = claims("tanda");
    another["sub"] = json!("lee");
    let caller = verifier.verify(&idp.token(another)).await.unwrap();
    assert_eq!(caller.subject.as_str(), "lee");
}
