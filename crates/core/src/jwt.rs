//! Verifying bearer tokens: Tanda's own (signed by identity with EdDSA, the public keys found by
//! `kid` in identity's JWKS) and, when one is configured, an external OpenID Connect issuer's
//! (Keycloak, Auth0, Cognito: RSA, EC or EdDSA keys from its JWKS URL, roles from a claim).
//!
//! Keys are cached. A token naming a `kid` the cache lacks fetches the JWKS again — that is how a
//! rotated key is learnt without anyone being logged out — but at most once per
//! [`MIN_REFETCH`], so made-up `kid`s cannot turn a stranger's requests into a flood of fetches.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
pub use rustls::pki_types::CertificateDer as Certificate;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::id::ClientId;
use crate::locale::Locale;

/// The `iss` of Tanda's own tokens.
pub const ISSUER: &str = "tanda";
/// The `aud` of Tanda's own tokens.
pub const AUDIENCE: &str = "tanda";
/// The least time between two fetches of one JWKS.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);
/// How long fetched keys are used before the JWKS is read again (so retired keys leave).
const MAX_AGE: Duration = Duration::from_secs(600);
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// The claims of Tanda's tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub roles: Vec<String>,
    /// The language the user chose at sign-up (`ko` or `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Where a set of public keys comes from: identity's own table in-process, or a JWKS URL.
#[async_trait]
pub trait JwksSource: Send + Sync {
    async fn jwks(&self) -> Result<JwkSet, String>;

    /// The least time between two fetches. A source in the same process, which costs one local
    /// read, may be asked as often as an unknown `kid` comes.
    fn min_refetch(&self) -> Duration {
        MIN_REFETCH
    }
}

/// A set of keys given once, e.g. none at all for a process that accepts no tokens.
#[derive(Default)]
pub struct FixedJwks(pub JwkSet);

#[async_trait]
impl JwksSource for FixedJwks {
    async fn jwks(&self) -> Result<JwkSet, String> {
        Ok(self.0.clone())
    }
}

/// A JWKS served over HTTP or HTTPS: identity's own inside a cluster (plain HTTP on the private
/// network), or an external issuer's (HTTPS, verified against the system's roots and any roots
/// configured for a private issuer).
pub struct HttpJwks {
    client: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    url: reqwest::Url,
}

/// A JWKS is a few keys; an answer larger than this is refused.
const MAX_JWKS_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

impl HttpJwks {
    pub fn new(url: reqwest::Url) -> Self {
        Self::with_roots(url, Vec::new())
    }

    /// The same, trusting `roots` besides the system's (a private issuer's own CA).
    pub fn with_roots(url: reqwest::Url, roots: Vec<CertificateDer<'static>>) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain-HTTP client has no TLS backend that could fail to start");
        Self {
            client,
            tls: Arc::new(tls_config(roots)),
            url,
        }
    }

    async fn fetch_http(&self) -> Result<Vec<u8>, String> {
        let answer = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("it answered {}", answer.status()));
        }
        // Read up to the bound, whatever the answer says its length is.
        let mut answer = answer;
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One `GET` over TLS (rustls on ring, HTTP/1.1): all an issuer's JWKS needs.
    async fn fetch_https(&self) -> Result<Vec<u8>, String> {
        use http_body_util::{BodyExt, Empty, Limited};
        let host = self.url.host_str().ok_or("the URL has no host")?.to_owned();
        let port = self.url.port_or_known_default().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let target = match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_owned(),
        };
        let request = axum::http::Request::get(target)
            .header(axum::http::header::HOST, authority(&self.url))
            .header(axum::http::header::ACCEPT, "application/json")
            .body(Empty::<axum::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("it answered {}", answer.status()));
        }
        let body = Limited::new(answer.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(body.to_bytes().to_vec())
    }
}

/// `host[:port]`, as the `Host` header wants it.
fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// TLS as a browser would: the system's roots (`ca-certificates`) and the extra ones given,
/// TLS 1.2 or 1.3, ring's cryptography (the provider is passed, never installed process-wide).
fn tls_config(extra: Vec<CertificateDer<'static>>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::warn!(%error, "a system root certificate could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    let (extra_added, _) = roots.add_parsable_certificates(extra);
    tracing::debug!(system = added, extra = extra_added, "TLS roots for JWKS");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The certificates of a PEM bundle (a private issuer's CA), for [`HttpJwks::with_roots`].
pub fn pem_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let roots = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if roots.is_empty() {
        return Err("it holds no certificate".to_owned());
    }
    Ok(roots)
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn jwks(&self) -> Result<JwkSet, String> {
        let fetch = async {
            match self.url.scheme() {
                "https" => self.fetch_https().await,
                _ => self.fetch_http().await,
            }
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("the JWKS at {} did not answer in time", self.url))?
            .map_err(|e| format!("the JWKS at {} cannot be fetched: {e}", self.url))?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("the JWKS at {} cannot be read: {e}", self.url))
    }
}

/// An external OpenID Connect issuer whose tokens are accepted.
pub struct External {
    pub issuer: String,
    pub audience: String,
    /// Where the roles are in its tokens, e.g. `roles` or `realm_access.roles` (Keycloak).
    pub roles_claim: String,
    pub jwks: Arc<dyn JwksSource>,
}

/// Why a token was refused (always a 401).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's key ({0}) is unknown")]
    UnknownKey(String),
    #[error("the token is not valid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("the token's subject is not a valid user id")]
    BadSubject,
    #[error("the keys to verify the token cannot be had: {0}")]
    KeysUnavailable(String),
}

/// Checks bearer tokens and says who they belong to.
///
/// A token that verified is remembered (by its SHA-256) until it expires, so a client's next
/// request costs a hash instead of a signature check. Only tokens that verified are remembered
/// — and a valid token takes a signing key to make — and the memory is bounded.
pub struct Verifier {
    tanda: KeyCache,
    external: Option<(External, KeyCache)>,
    verified: std::sync::Mutex<HashMap<[u8; 32], (Caller, u64)>>,
}

/// The most verified tokens remembered at once.
const VERIFIED_CAPACITY: usize = 10_000;

impl Verifier {
    pub fn new(tanda: Arc<dyn JwksSource>, external: Option<External>) -> Self {
        let external = external.map(|e| {
            let cache = KeyCache::new(e.jwks.clone());
            (e, cache)
        });
        Self {
            tanda: KeyCache::new(tanda),
            external,
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The caller a token stands for, if its signature, issuer, audience and lifetime hold.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((caller, exp)) = self.verified.lock().expect("verified lock").get(&digest)
            && now < *exp
        {
            return Ok(caller.clone());
        }
        let (caller, exp) = self.check(token).await?;
        let mut verified = self.verified.lock().expect("verified lock");
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, (_, exp)| now < *exp);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(digest, (caller.clone(), exp));
        Ok(caller)
    }

    /// Checks a token's signature and claims: its caller and when it expires.
    async fn check(&self, token: &str) -> Result<(Caller, u64), TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let issuer = unverified_issuer(token)?;
        if issuer == ISSUER {
            let (key, alg) = self.tanda.key(&kid).await?;
            if alg != Algorithm::EdDSA || header.alg != alg {
                return Err(TokenError::UnknownKey(kid));
            }
            let claims: Claims = decode(token, &key, &validation(alg, ISSUER, AUDIENCE))
                .map_err(TokenError::Invalid)?
                .claims;
            let roles = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
            let locale = claims.locale.as_deref().and_then(Locale::parse);
            return Ok((caller(&claims.sub, roles)?.with_locale(locale), claims.exp));
        }
        let Some((external, cache)) = self.external.as_ref().filter(|(e, _)| e.issuer == issuer)
        else {
            return Err(TokenError::UnknownIssuer);
        };
        let (key, alg) = cache.key(&kid).await?;
        if header.alg != alg {
            return Err(TokenError::UnknownKey(kid));
        }
        let validation = validation(alg, &external.issuer, &external.audience);
        let claims: serde_json::Value = decode(token, &key, &validation)
            .map_err(TokenError::Invalid)?
            .claims;
        let sub = claims["sub"].as_str().ok_or(TokenError::BadSubject)?;
        let exp = claims["exp"].as_u64().ok_or(TokenError::Malformed)?;
        Ok((caller(sub, roles_at(&claims, &external.roles_claim))?, exp))
    }
}

fn caller(sub: &str, roles: Vec<Role>) -> Result<Caller, TokenError> {
    let subject = ClientId::parse(sub).map_err(|_| TokenError::BadSubject)?;
    Ok(Caller::new(subject, roles))
}

fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v
}

/// The `iss` claim, read before the signature is checked only to choose whose keys check it.
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let iss: Iss = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    Ok(iss.iss)
}

/// The roles in an external token's claim at a dotted `path`: a list of names (or one string of
/// names separated by spaces); names that are not Tanda roles are ignored.
fn roles_at(claims: &serde_json::Value, path: &str) -> Vec<Role> {
    let value = path.split('.').fold(claims, |v, key| &v[key]);
    let names: Vec<&str> = match value {
        serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        serde_json::Value::String(s) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    names.into_iter().filter_map(Role::parse).collect()
}

type Key = (DecodingKey, Algorithm);

/// One JWKS, fetched on demand and kept by `kid`.
struct KeyCache {
    source: Arc<dyn JwksSource>,
    keys: RwLock<(HashMap<String, Key>, Option<Instant>)>,
    fetching: tokio::sync::Mutex<()>,
}

impl KeyCache {
    fn new(source: Arc<dyn JwksSource>) -> Self {
        Self {
            source,
            keys: RwLock::new((HashMap::new(), None)),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    async fn key(&self, kid: &str) -> Result<Key, TokenError> {
        if let Some(key) = self.cached(kid, MAX_AGE) {
            return Ok(key);
        }
        let _one_fetch_at_a_time = self.fetching.lock().await;
        if let Some(key) = self.cached(kid, MAX_AGE) {
            return Ok(key);
        }
        let fetched_at = self.keys.read().expect("key cache lock").1;
        if fetched_at.is_none_or(|at| at.elapsed() >= self.source.min_refetch()) {
            match self.source.jwks().await {
                Ok(set) => {
                    *self.keys.write().expect("key cache lock") =
                        (usable(&set), Some(Instant::now()));
                }
                Err(e) if fetched_at.is_none() => return Err(TokenError::KeysUnavailable(e)),
                // Keep verifying with the keys we have while the JWKS is unreachable.
                Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
            }
        }
        self.cached(kid, Duration::MAX)
            .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))
    }

    /// The key for `kid`, if the keys were fetched less than `max_age` ago.
    fn cached(&self, kid: &str, max_age: Duration) -> Option<Key> {
        let keys = self.keys.read().expect("key cache lock");
        let fresh = keys.1.is_some_and(|at| at.elapsed() < max_age);
        fresh.then(|| keys.0.get(kid).cloned()).flatten()
    }
}

/// The signing keys of a JWKS that can verify tokens, by `kid`, each with the one algorithm it
/// may be used with (a token whose header names another is refused).
fn usable(set: &JwkSet) -> HashMap<String, Key> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(a), _) => algorithm(*a)?,
                (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                (None, AlgorithmParameters::EllipticCurve(p)) => match p.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return None,
                },
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, _) => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, (key, alg)))
        })
        .collect()
}

/// Public-key algorithms only: a JWKS entry for HMAC would let a public key act as a secret.
fn algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_are_read_from_nested_claims_and_filtered() {
        let claims =
            json!({"realm_access": {"roles": ["driver", "offline_access"]}, "scope": "customer x"});
        assert_eq!(roles_at(&claims, "realm_access.roles"), vec![Role::Driver]);
        assert_eq!(roles_at(&claims, "scope"), vec![Role::Customer]);
        assert!(roles_at(&claims, "missing.path").is_empty());
    }

    #[test]
    fn public_keys_are_used_with_the_algorithm_they_name_or_their_type_implies() {
        // Public keys made for this test (`openssl genrsa 2048`, `openssl ecparam -genkey`).
        let n = concat!(
            "ipHst-0skHkXdYZgicn5O6zCp-kxyU61orRvLPoAFd2UVe9_wceaWO2XNOsenBbrYrlxLLd-lADlLVGxcF",
            "XGyztW7ahjz4YPBnfVZrUygyXB8SVkmqNyqOmVn6Kqft_aEoC6TxXzDDT1C9O3YS7frLml-de55B8VBtKLym3YWH",
            "DMedXLxKpeACavtHAZqz3y4y22YiWrJGp5uvR_r8zAGeacp77_2arRw6rCzW0DDb1QHABH3Hpxaz0up1SPklCnJO",
            "LcJMnS3AHwOfClrog-lYoXJnffRCzEEhF9p9mryDMp6rQcUG3XKhcw07u8xERYxZKQEOhnTe1FajQIBm_kDQ",
        );
        let e = "AQAB";
        let (x, y) = (
            "aHBa7KdCF1gwXbslXUuZ1l-_ymrE0BV3kyoAppng3mo",
            "WUhci4TAe17YAGO7DkyRBpWoP3giMeUedKQ2Wa54Els",
        );
        let (x384, y384) = (
            "NCssBj2OGAsYXi807jIHYwJFzj4C1Wst9LK2hTtL6uWS1hf8ZszWoMq0YJfLyRU7",
            "miAnyObtJuLHmLAA9S-9iOXx3QMvDKjqIQOw7RzytInzzpHUUJEERkCmCNjqXALU",
        );
        let mut keys = vec![
            json!({"kid": "okp", "kty": "OKP", "crv": "Ed25519", "x": x}),
            json!({"kid": "p256", "kty": "EC", "crv": "P-256", "x": x, "y": y}),
            json!({"kid": "p384", "kty": "EC", "crv": "P-384", "x": x384, "y": y384}),
            json!({"kid": "rsa", "kty": "RSA", "n": n, "e": e}),
        ];
        let named = [
            ("RS256", Algorithm::RS256),
            ("RS384", Algorithm::RS384),
            ("RS512", Algorithm::RS512),
            ("PS256", Algorithm::PS256),
            ("PS384", Algorithm::PS384),
            ("PS512", Algorithm::PS512),
        ];
        for (alg, _) in named {
            keys.push(json!({"kid": alg, "alg": alg, "kty": "RSA", "n": n, "e": e}));
        }
        keys.push(
            json!({"kid": "ES256", "alg": "ES256", "kty": "EC", "crv": "P-256", "x": x, "y": y}),
        );
        keys.push(
            json!({"kid": "ES384", "alg": "ES384", "kty": "EC", "crv": "P-384", "x": x384, "y": y384}),
        );
        keys.push(json!({"kid": "EdDSA", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": x}));
        let set: JwkSet = serde_json::from_value(json!({ "keys": keys })).unwrap();
        let usable = usable(&set);
        let alg_of = |kid: &str| usable.get(kid).map(|(_, alg)| *alg);
        let implied = [
            ("okp", Algorithm::EdDSA),
            ("p256", Algorithm::ES256),
            ("p384", Algorithm::ES384),
            ("rsa", Algorithm::RS256),
            ("ES256", Algorithm::ES256),
            ("ES384", Algorithm::ES384),
            ("EdDSA", Algorithm::EdDSA),
        ];
        for (kid, alg) in named.into_iter().chain(implied) {
            assert_eq!(alg_of(kid), Some(alg), "{kid}");
        }
        assert_eq!(usable.len(), 13);
    }

    #[test]
    fn hmac_keys_are_never_usable() {
        let set: JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}
        ]}))
        .unwrap();
        assert!(usable(&set).is_empty());
    }
}
