//! What checking a bearer token costs every request: the first time a token is seen (its EdDSA
//! signature and claims checked) and after (a SHA-256 of the token, looked up).
//!
//! `cargo bench -p tanda-core --bench verify`. BENCHMARKS.md sets both beside the CPU a booking
//! costs.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tanda_core::auth::{AUDIENCE, FixedJwks, ISSUER, Verifier};

struct Issuer {
    key: EncodingKey,
    verifier: Verifier,
}

fn issuer() -> Issuer {
    let signing = SigningKey::from_bytes(&[3; 32]);
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let jwks = serde_json::from_value(json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}
    ]}))
    .expect("a JWKS");
    let der = signing.to_pkcs8_der().expect("PKCS#8");
    Issuer {
        key: EncodingKey::from_ed_der(der.as_bytes()),
        verifier: Verifier::new(Arc::new(FixedJwks(jwks)), None),
    }
}

impl Issuer {
    /// A customer's token as identity makes them, for user `n`.
    fn token(&self, n: u64) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("customer-{n}"),
                            "roles": ["customer"], "locale": "ko", "iat": now, "exp": now + 3600});
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("signs")
    }
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let issuer = issuer();
    let seen = issuer.token(0);
    runtime
        .block_on(issuer.verifier.verify(&seen))
        .expect("the token verifies");
    let mut n = 1;
    c.bench_function("verify a token seen for the first time", |b| {
        b.iter_batched(
            || {
                n += 1;
                issuer.token(n)
            },
            |token| runtime.block_on(issuer.verifier.verify(black_box(&token))),
            BatchSize::SmallInput,
        );
    });
    c.bench_function("verify a token seen before", |b| {
        b.iter(|| runtime.block_on(issuer.verifier.verify(black_box(&seen))));
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
