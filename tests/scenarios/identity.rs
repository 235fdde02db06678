//! Accounts and tokens through the gateway (API.md "Identity and access"): sign-up, sign-in, the
//! public keys, and credentials that do not verify.

use serde_json::json;

use crate::common::{OPERATOR_PASSWORD, TestApp, Topology};

pub async fn a_customer_signs_up_and_signs_in_through_the_gateway(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let signed_up = api
        .post(
            "/auth/signup",
            json!({"username": "hong", "password": "correct horse", "name": "Hong Gildong",
                   "phone": "010-2233-0002", "role": "customer", "locale": "en"}),
        )
        .await
        .expect(201);
    assert_eq!(signed_up["userId"], "hong");
    api.post(
        "/auth/signup",
        json!({"username": "hong", "password": "other horse", "name": "Someone Else",
               "phone": "010-0000-0000", "role": "customer"}),
    )
    .await
    .expect_problem(409, "username_taken");
    api.post(
        "/auth/token",
        json!({"username": "hong", "password": "wrong horse"}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let token = api.token("hong", "correct horse").await;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let jwks = api.get("/.well-known/jwks.json").await.expect(200);
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let header = token.split('.').next().unwrap();
    use base64::Engine;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], kid);
    app.shutdown().await;
}

pub async fn credentials_that_do_not_verify_are_refused_everywhere(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let forged = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vIn0.eyJpc3MiOiJ0YW5kYSJ9.c2ln";
    for path in ["/books?customerId=hong", "/flights", "/healthz"] {
        let answer = api.get_as(forged, path).await;
        let challenge = answer.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        answer.expect_problem(401, "invalid_token");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    api.anonymous()
        .post_empty("/admin/signing-keys/rotate")
        .await
        .expect_problem(401, "unauthenticated");

    let operator = api.token("operator", OPERATOR_PASSWORD).await;
    let rotated = api
        .post_as(&operator, "/admin/signing-keys/rotate", json!({}))
        .await
        .expect(200);
    assert!(rotated["kid"].is_string());
    // The operator's token, signed with the key before the rotation, still works.
    api.post_as(&operator, "/admin/signing-keys/rotate", json!({}))
        .await
        .expect(200);
    app.shutdown().await;
}
