//! Tanda's signing keys: Ed25519 key pairs kept in identity's own database, created on first
//! start. Tokens are signed with the newest key in force and name it in their `kid`.
//!
//! Rotating the key logs nobody out. The new key is published in the JWKS at once but signs only
//! after a delay (longer than verifiers wait between two fetches of the JWKS), so no service meets
//! a token whose key it cannot have learnt yet; the old key stays published until every token it
//! signed has expired, and is deleted at a later rotation.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tanda_core::auth::{AUDIENCE, Claims, ISSUER, JwksSource};
use tanda_core::db::Migration;
use tanda_core::id::new_id;
use tanda_core::sql::{Executor, query};
use tanda_core::{Db, DbError, Timestamp};

pub const MIGRATION: Migration = Migration {
    version: 2,
    name: "signing keys",
    sql: "CREATE TABLE signing_keys (
              kid VARCHAR(64) PRIMARY KEY,
              private_key VARCHAR(200) NOT NULL,
              public_key VARCHAR(100) NOT NULL,
              signs_from BIGINT NOT NULL)",
};

/// Identity's keys, read from its database (so every instance signs and publishes the same).
#[derive(Clone)]
pub struct Keys {
    pub(crate) db: Db,
    /// How long a token lives: a replaced key stays published this long (and a minute more).
    pub(crate) token_ttl: Duration,
    /// How long after a rotation the new key starts signing.
    pub(crate) rotation_delay: Duration,
}

struct Stored {
    kid: String,
    private_key: Vec<u8>,
}

impl Keys {
    /// Makes a first key, signing at once, unless there is one.
    pub async fn ensure_one(&self) -> Result<(), DbError> {
        if self.signing(self.db.reader()).await?.is_none() {
            let mut uow = self.db.begin().await?;
            if self.signing(uow.conn()).await?.is_none() {
                let now = uow.now();
                insert_new(uow.conn(), now).await?;
            }
            uow.commit().await?;
        }
        Ok(())
    }

    /// Adds a key that signs from `rotation_delay` on, and deletes the keys no unexpired token
    /// can have been signed with. Returns the new key's id.
    pub async fn rotate(&self) -> Result<String, DbError> {
        let mut uow = self.db.begin().await?;
        let now = uow.now();
        query(
            "DELETE FROM signing_keys WHERE EXISTS (SELECT 1 FROM signing_keys newer
               WHERE newer.signs_from > signing_keys.signs_from AND newer.signs_from <= $1)",
        )
        .bind(self.replaced_before(now))
        .execute(uow.conn())
        .await?;
        let signs_from = now + self.rotation_delay.as_millis() as Timestamp;
        let kid = insert_new(uow.conn(), signs_from).await?;
        uow.commit().await?;
        tracing::info!(kid, "signing key rotated");
        Ok(kid)
    }

    /// A signed access token for `sub` with `roles`, valid for the token lifetime.
    pub async fn sign(
        &self,
        sub: &str,
        roles: &[&str],
        locale: Option<&str>,
    ) -> Result<String, DbError> {
        let key = match self.signing(self.db.reader()).await? {
            Some(key) => key,
            None => {
                self.ensure_one().await?;
                self.signing(self.db.reader())
                    .await?
                    .expect("a key was just made")
            }
        };
        let now = (self.db.now() / 1000) as u64;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: sub.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.token_ttl.as_secs(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            locale: locale.map(str::to_owned),
        };
        Ok(sign(&key, &claims))
    }

    /// The public keys of every key that signs now or will, or may have signed an unexpired
    /// token.
    pub async fn jwks(&self) -> Result<JwkSet, DbError> {
        let rows = query(
            "SELECT kid, public_key FROM signing_keys WHERE NOT EXISTS (
               SELECT 1 FROM signing_keys newer
               WHERE newer.signs_from > signing_keys.signs_from AND newer.signs_from <= $1)
             ORDER BY signs_from DESC",
        )
        .bind(self.replaced_before(self.db.now()))
        .fetch_all(self.db.reader())
        .await?;
        let keys = rows
            .iter()
            .map(|row| public_jwk(row.get("kid"), &decode(&row.get::<String, _>("public_key"))))
            .collect();
        Ok(JwkSet { keys })
    }

    /// A key replaced before this time signed no token that is still valid.
    fn replaced_before(&self, now: Timestamp) -> Timestamp {
        now - (self.token_ttl + Duration::from_secs(60)).as_millis() as Timestamp
    }

    /// The key that signs now: the newest whose time has come.
    async fn signing<'e>(&self, on: impl Executor<'e>) -> Result<Option<Stored>, DbError> {
        let row = query(
            "SELECT kid, private_key FROM signing_keys
             WHERE signs_from <= $1 ORDER BY signs_from DESC, kid DESC LIMIT 1",
        )
        .bind(self.db.now())
        .fetch_optional(on)
        .await?;
        Ok(row.map(|row| Stored {
            kid: row.get("kid"),
            private_key: decode(&row.get::<String, _>("private_key")),
        }))
    }
}

fn sign(key: &Stored, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.private_key))
        .expect("an Ed25519 key made by this module signs")
}

/// In-process verifiers (all-in-one) read the keys straight from identity.
#[async_trait]
impl JwksSource for Keys {
    async fn jwks(&self) -> Result<JwkSet, String> {
        Keys::jwks(self).await.map_err(|e| e.to_string())
    }

    fn min_refetch(&self) -> Duration {
        Duration::ZERO
    }
}

async fn insert_new<'e>(on: impl Executor<'e>, signs_from: Timestamp) -> Result<String, DbError> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let private = key
        .to_pkcs8_der()
        .expect("an Ed25519 key encodes as PKCS#8");
    let public = key.verifying_key().to_bytes();
    let kid = new_id();
    query(
        "INSERT INTO signing_keys (kid, private_key, public_key, signs_from) VALUES ($1, $2, $3, $4)",
    )
    .bind(kid.as_str())
    .bind(STANDARD.encode(private.as_bytes()))
    .bind(STANDARD.encode(public))
    .bind(signs_from)
    .execute(on)
    .await?;
    Ok(kid)
}

fn decode(b64: &str) -> Vec<u8> {
    STANDARD
        .decode(b64)
        .expect("keys are stored base64-encoded by this module")
}

fn public_jwk(kid: String, public_key: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tanda_core::SystemClock;
    use tanda_core::auth::{Role, Verifier};
    use tanda_core::db::Durability;
    use tanda_core::jwt::TokenError;

    use super::*;

    async fn keys(dir: &tempfile::TempDir) -> Keys {
        let db = Db::open_sqlite(
            dir.path(),
            "identity",
            Durability::Normal,
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        db.migrate(crate::MIGRATIONS).await.unwrap();
        let keys = Keys {
            db,
            token_ttl: Duration::from_secs(600),
            rotation_delay: Duration::ZERO,
        };
        keys.ensure_one().await.unwrap();
        keys
    }

    fn claims(sub: &str, exp_in: i64) -> Claims {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        Claims {
            iss: ISSUER.to_owned(),
            sub: sub.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now as u64,
            exp: (now + exp_in) as u64,
            roles: vec!["customer".to_owned()],
            locale: None,
        }
    }

    async fn signing_key(keys: &Keys) -> Stored {
        keys.signing(keys.db.reader()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_signed_token_names_its_subject_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(&dir).await;
        let verifier = Verifier::new(keys.source(), None);
        let token = keys.sign("hong", &["customer"], Some("en")).await.unwrap();
        let caller = verifier.verify(&token).await.unwrap();
        assert_eq!(caller.subject.as_str(), "hong");
        assert_eq!(caller.roles, vec![Role::Customer]);
    }

    #[tokio::test]
    async fn expired_forged_unsigned_and_misaddressed_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(&dir).await;
        let verifier = Verifier::new(keys.source(), None);
        let key = signing_key(&keys).await;

        let expired = sign(&key, &claims("hong", -3600));
        assert!(matches!(
            verifier.verify(&expired).await,
            Err(TokenError::Invalid(_))
        ));

        // Signed by a key that is not Tanda's, under Tanda's kid.
        let forger = Stored {
            kid: key.kid.clone(),
            private_key: SigningKey::from_bytes(&[7; 32])
                .to_pkcs8_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
        };
        let forged = sign(&forger, &claims("hong", 600));
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(TokenError::Invalid(_))
        ));

        let good = sign(&key, &claims("hong", 600));
        let payload = good.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            key.kid
        ));
        let unsigned = format!("{header}.{payload}.");
        assert!(verifier.verify(&unsigned).await.is_err());
        // The same claims re-signed as HMAC with the public key as the secret.
        let public = keys.jwks().await.unwrap().keys[0].clone();
        let AlgorithmParameters::OctetKeyPair(okp) = &public.algorithm else {
            panic!()
        };
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(key.kid.clone());
        let confused = jsonwebtoken::encode(
            &hs,
            &claims("hong", 600),
            &EncodingKey::from_secret(okp.x.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&confused).await.is_err());

        let mut other_issuer = claims("hong", 600);
        other_issuer.iss = "https://evil.example".to_owned();
        assert!(matches!(
            verifier.verify(&sign(&key, &other_issuer)).await,
            Err(TokenError::UnknownIssuer)
        ));
        let mut other_audience = claims("hong", 600);
        other_audience.aud = "someone-else".to_owned();
        assert!(matches!(
            verifier.verify(&sign(&key, &other_audience)).await,
            Err(TokenError::Invalid(_))
        ));
        assert!(verifier.verify("not.a.token").await.is_err());
        assert!(verifier.verify(&good).await.is_ok());
    }

    #[tokio::test]
    async fn rotation_keeps_unexpired_tokens_valid_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(&dir).await;
        let verifier = Verifier::new(keys.source(), None);
        let before = keys.sign("kim", &["driver"], None).await.unwrap();
        assert!(verifier.verify(&before).await.is_ok());
        let kid = keys.rotate().await.unwrap();
        let after = keys.sign("kim", &["driver"], None).await.unwrap();
        assert_eq!(jsonwebtoken::decode_header(&after).unwrap().kid, Some(kid));
        assert!(
            verifier.verify(&after).await.is_ok(),
            "the new key is learnt"
        );
        assert!(
            verifier.verify(&before).await.is_ok(),
            "nobody is logged out"
        );
        assert_eq!(keys.jwks().await.unwrap().keys.len(), 2);
    }

    #[tokio::test]
    async fn a_rotated_key_signs_only_after_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = keys(&dir).await;
        keys.rotation_delay = Duration::from_secs(3600);
        let old = signing_key(&keys).await.kid;
        let new = keys.rotate().await.unwrap();
        assert_eq!(signing_key(&keys).await.kid, old);
        let published: Vec<_> = keys
            .jwks()
            .await
            .unwrap()
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect();
        assert!(
            published.contains(&new) && published.contains(&old),
            "{published:?}"
        );
    }
}
