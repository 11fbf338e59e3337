//! Access tokens and the JWKS: what we sign, that any verifier can check it, and what we refuse.

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{jwt_part, keys, TestApp};

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// HMAC-SHA256 (RFC 2104), written out so the test depends on nothing of the server's.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), msg].concat());
    Sha256::digest([opad.as_slice(), inner.as_slice()].concat()).to_vec()
}

async fn jwks(app: &TestApp) -> Value {
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200);
    r.json()
}

#[tokio::test]
async fn access_tokens_carry_the_documented_header_and_claims() {
    let app = TestApp::spawn().await;
    let t = app.register("claims@example.com").await;
    let header = jwt_part(&t.token, 0);
    let claims = jwt_part(&t.token, 1);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        keys(&claims),
        ["auth_time", "exp", "iat", "iss", "jti", "sid", "sub"]
    );
    assert_eq!(claims["iss"], "cloudheed-auth");
    assert_eq!(claims["sub"], t.user_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        900
    );
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert!(claims["sid"].as_str().expect("sid").starts_with("ses-"));
    let kid = header["kid"].as_str().expect("kid");
    let set = jwks(&app).await;
    assert!(set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["kid"] == kid));
}

#[tokio::test]
async fn the_configured_issuer_and_ttl_are_used() {
    let app = TestApp::spawn_with(
        "[tokens]\nissuer = \"https://auth.example.com\"\naccess_ttl = \"90s\"",
    )
    .await;
    let t = app.register("iss@example.com").await;
    let claims = jwt_part(&t.token, 1);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        90
    );
}

#[tokio::test]
async fn jwks_publishes_public_keys_that_verify_our_tokens() {
    let app = TestApp::spawn().await;
    let t = app.register("jwks@example.com").await;
    let set = jwks(&app).await;
    let text = set.to_string();
    assert!(!text.contains("\"d\""), "never a private member: {text}");
    let jwk = &set["keys"][0];
    assert_eq!(keys(jwk), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let x = BASE64URL_NOPAD
        .decode(jwk["x"].as_str().expect("x").as_bytes())
        .expect("x b64");
    assert_eq!(x.len(), 32);
    // kid is the RFC 7638 thumbprint.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        jwk["x"].as_str().expect("x")
    );
    assert_eq!(
        jwk["kid"].as_str(),
        Some(b64(&Sha256::digest(canonical.as_bytes())).as_str())
    );
    // Verify the token the way another service would: with the JWK alone.
    let key = VerifyingKey::from_bytes(&x.try_into().expect("32")).expect("key");
    let (input, sig) = t.token.rsplit_once('.').expect("jws");
    let sig: [u8; 64] = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .expect("sig")
        .try_into()
        .expect("64");
    key.verify_strict(input.as_bytes(), &Signature::from_bytes(&sig))
        .expect("signature verifies");
}

#[tokio::test]
async fn tokens_and_keys_survive_a_restart() {
    let app = TestApp::spawn().await;
    let t = app.register("restart@example.com").await;
    let before = jwks(&app).await;
    let app = app.restart().await;
    assert_eq!(jwks(&app).await, before, "same signing key");
    assert_eq!(
        app.me(&t.token).await.status,
        200,
        "token issued before the restart"
    );
    assert_eq!(app.refresh(&t.refresh_token).await.status, 200);
}

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let r = app.me(token).await;
    assert_eq!(r.status, 401, "{what}: {:?}", r.body);
    assert_eq!(r.code(), "unauthorized", "{what}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{what}"
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains("user-"),
        "{what}: no data"
    );
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.register("forge@example.com").await;
    let header = jwt_part(&t.token, 0);
    let kid = header["kid"].as_str().expect("kid").to_string();
    let claims = jwt_part(&t.token, 1);
    let body = t.token.split('.').nth(1).expect("claims").to_string();
    let parts: Vec<&str> = t.token.split('.').collect();
    let x = jwks(&app).await["keys"][0]["x"]
        .as_str()
        .expect("x")
        .to_string();
    let x_raw = BASE64URL_NOPAD.decode(x.as_bytes()).expect("x");

    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({"alg": alg, "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes());
        assert_refused(&app, &format!("{h}.{body}."), alg).await;
    }
    for t in [
        "eyJhbGciOm51bGx9.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
        "e30.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
    ] {
        assert_refused(&app, t, t).await;
    }
    // HS256 keyed with our public key, in each form an attacker might try.
    let jwks_text = jwks(&app).await.to_string();
    for secret in [x_raw.as_slice(), x.as_bytes(), jwks_text.as_bytes()] {
        let h = b64(json!({"alg": "HS256", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes());
        let input = format!("{h}.{body}");
        let token = format!("{input}.{}", b64(&hmac_sha256(secret, input.as_bytes())));
        assert_refused(&app, &token, "HS256 with the public key").await;
    }
    for alg in ["RS256", "ES256", "PS256"] {
        let h = b64(json!({"alg": alg, "kid": kid}).to_string().as_bytes());
        assert_refused(&app, &format!("{h}.{body}.{}", b64(&[7; 64])), alg).await;
    }
    // A valid signature from another key, under our kid and under its own.
    let attacker = SigningKey::from_bytes(&[42; 32]);
    for k in [kid.as_str(), "attacker-kid", "../../../../dev/null"] {
        let h = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": k})
            .to_string()
            .as_bytes());
        let input = format!("{h}.{body}");
        let token = format!(
            "{input}.{}",
            b64(&attacker.sign(input.as_bytes()).to_bytes())
        );
        assert_refused(&app, &token, k).await;
    }
    // Header members we never issue, with a valid signature from our own key's forger.
    for h in [
        json!({"alg": "EdDSA", "kid": kid, "x5u": "https://evil.example/x"}),
        json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}),
        json!({"alg": "EdDSA", "kid": 5}),
        json!({"alg": "EdDSA", "kid": "' OR 1=1 --"}),
        json!({"alg": "EdDSA", "kid": "k".repeat(10_000)}),
    ] {
        let input = format!("{}.{body}", b64(h.to_string().as_bytes()));
        let token = format!(
            "{input}.{}",
            b64(&attacker.sign(input.as_bytes()).to_bytes())
        );
        let label: String = h.to_string().chars().take(40).collect();
        assert_refused(&app, &token, &label).await;
    }
    // Claims we never issue or that are out of range, signed by a forger.
    for c in [
        json!({"iss": "cloudheed-auth", "sub": t.user_id, "iat": 1, "exp": -1, "jti": "j", "sid": claims["sid"], "auth_time": 1}),
        json!({"iss": "cloudheed-auth", "sub": t.user_id, "iat": 1, "exp": 99999999999_i64, "nbf": 99999999999_i64, "jti": "j", "sid": claims["sid"], "auth_time": 1}),
        json!({"iss": "cloudheed-auth", "sub": t.user_id, "iat": 1, "exp": 99999999999_i64, "aud": "x", "jti": "j", "sid": claims["sid"], "auth_time": 1}),
    ] {
        let input = format!("{}.{}", parts[0], b64(c.to_string().as_bytes()));
        let token = format!(
            "{input}.{}",
            b64(&attacker.sign(input.as_bytes()).to_bytes())
        );
        assert_refused(&app, &token, "forged claims").await;
    }
    // The signature in the standard base64 alphabet.
    let std_sig = data_encoding::BASE64_NOPAD
        .encode(&BASE64URL_NOPAD.decode(parts[2].as_bytes()).expect("sig"));
    if std_sig != parts[2] {
        assert_refused(
            &app,
            &format!("{}.{}.{std_sig}", parts[0], parts[1]),
            "+/ alphabet",
        )
        .await;
    }
    // Our header, claims changed, original signature kept.
    let mut c = claims.clone();
    c["sub"] = json!("user-someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&app, &tampered, "tampered sub").await;
    // Shapes.
    assert_refused(
        &app,
        &format!("{}.{}.", parts[0], parts[1]),
        "stripped signature",
    )
    .await;
    assert_refused(&app, &format!("{}.{}", parts[0], parts[1]), "two segments").await;
    assert_refused(&app, &format!("{}.x", t.token), "four segments").await;
    assert_refused(&app, &format!("{}=", t.token), "padded").await;
    assert_refused(&app, &"a".repeat(8000), "huge").await;
    // And the genuine token still works.
    assert_eq!(app.me(&t.token).await.status, 200);
}

#[tokio::test]
async fn expired_tokens_are_refused_with_no_leeway() {
    let app = TestApp::spawn().await;
    let t = app.register("expiry@example.com").await;
    app.clock.advance(899);
    assert_eq!(app.me(&t.token).await.status, 200);
    app.clock.advance(1);
    assert_refused(&app, &t.token, "expired").await;
}

#[tokio::test]
async fn refresh_and_access_tokens_are_not_interchangeable() {
    let app = TestApp::spawn().await;
    let t = app.register("swap@example.com").await;
    assert_refused(&app, &t.refresh_token, "refresh token as bearer").await;
    let r = app.refresh(&t.token).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_refresh_token".to_string())
    );
    assert!(r.json().get("token").is_none());
}

#[tokio::test]
async fn bearer_must_be_in_the_authorization_header() {
    let app = TestApp::spawn().await;
    let t = app.register("hdr@example.com").await;
    let query = app
        .get(&format!("/v1/auth/me?access_token={}", t.token), None)
        .await;
    assert_eq!(query.status, 401);
    let basic = app
        .request(
            "GET",
            "/v1/auth/me",
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    assert_eq!(basic.status, 401);
    let bearer = format!("Bearer {}", t.token);
    let two = app
        .request(
            "GET",
            "/v1/auth/me",
            &[("authorization", &bearer), ("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(two.status, 401);
    assert_eq!(
        app.get("/v1/auth/me", None)
            .await
            .header("www-authenticate"),
        Some("Bearer")
    );
}
