//! The OpenAPI 3.1 description of every route, body and error, served at
//! `GET /v1/openapi.json`. A test checks it against the route table.

use serde_json::{json, Map, Value};

/// The document, built once per call (it is small and rarely fetched).
pub fn document(issuer: &str) -> Value {
    let err = |desc: &str| json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |desc: &str, schema: Value| json!({"description": desc, "content": {"application/json": {"schema": schema}}});
    let body = |schema: Value, required: bool| json!({"required": required, "content": {"application/json": {"schema": schema}}});
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let message = |code: &str| json!({"type": "object", "required": ["message_code"], "properties": {"message_code": {"const": code}}});
    let common = |mut responses: Map<String, Value>| {
        responses.insert(
            "400".into(),
            err("Malformed JSON, wrong types, unknown fields (invalid_request)"),
        );
        responses.insert("413".into(), err("Body too large (payload_too_large)"));
        responses.insert(
            "429".into(),
            err("Too many attempts (rate_limited); see Retry-After"),
        );
        responses.insert(
            "500".into(),
            err("Internal error (internal_error); details only in the log"),
        );
        responses.insert(
            "503".into(),
            err("Overloaded (overloaded); see Retry-After"),
        );
        Value::Object(responses)
    };
    let responses = |pairs: Vec<(&str, Value)>| {
        common(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    };
    let bearer = json!([{"bearer": []}]);
    let op = |summary: &str, security: Option<&Value>, request: Option<Value>, resp: Value| {
        let mut o = json!({"summary": summary, "responses": resp});
        if let Some(s) = security {
            o["security"] = s.clone();
        }
        if let Some(b) = request {
            o["requestBody"] = b;
        }
        o
    };
    let unauthorized = err("Missing, malformed, expired or revoked bearer (unauthorized)");
    let forbidden = err("session_required (an API key cannot do this) or account_disabled");
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut paths = Map::new();
    paths.insert("/v1/auth/register".into(), json!({"post": op("Create an account", None, Some(body(r("RegisterRequest"), true)), responses(vec![
        ("201", ok("Account created; a session is open", r("RegisterResponse"))),
        ("409", err("Email taken (email_taken)")),
        ("415", err("Body not JSON (unsupported_media_type)")),
        ("422", err("Invalid fields (validation_failed)")),
    ]))}));
    paths.insert(
        "/v1/auth/login".into(),
        json!({"post": op("Log in", None, Some(body(r("LoginRequest"), true)), responses(vec![
            ("200", ok("Logged in", r("LoginResponse"))),
            ("401", err("invalid_credentials, totp_required or invalid_totp_code")),
        ("403", err("account_disabled (told only after a right password)")),
            ("422", err("Missing fields (validation_failed)")),
        ]))}),
    );
    paths.insert("/v1/auth/refresh".into(), json!({"post": op("Rotate a refresh token", None, Some(body(r("RefreshRequest"), true)), responses(vec![
        ("200", ok("New pair", r("TokenPair"))),
        ("401", err("invalid_refresh_token")),
    ]))}));
    paths.insert(
        "/v1/auth/logout".into(),
        json!({"post": op("End this session", Some(&bearer), None, responses(vec![
            ("200", ok("Logged out", message("logged_out"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
        ]))}),
    );
    paths.insert(
        "/v1/auth/me".into(),
        json!({
            "get": op("The caller's profile", Some(&bearer), None, responses(vec![
                ("200", ok("Profile", r("Me"))),
                ("401", unauthorized.clone()),
            ])),
            "delete": op("Delete the caller's account, with its sessions, keys and 2FA", Some(&bearer), Some(body(r("DeleteAccountRequest"), true)), responses(vec![
                ("200", ok("Deleted", message("account_deleted"))),
                ("401", err("unauthorized, totp_required or invalid_totp_code")),
                ("403", forbidden.clone()),
                ("422", err("invalid_password, or a missing field (validation_failed)")),
                ("429", err("Too many wrong passwords or codes (rate_limited)")),
            ])),
        }),
    );
    paths.insert(
        "/v1/auth/email/verification".into(),
        json!({"post": op("Mail a new verification link (the previous one stops working)", Some(&bearer), None, responses(vec![
            ("202", ok("Queued", message("verification_email_sent"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
            ("409", err("email_already_verified")),
            ("429", err("At most one a minute (rate_limited)")),
            ("503", err("email_not_configured")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/email/verify".into(),
        json!({"post": op("Verify the email with the mailed token", None, Some(body(r("TokenRequest"), true)), responses(vec![
            ("200", ok("Verified", message("email_verified"))),
            ("400", err("invalid_token: wrong, used or expired")),
            ("422", err("Missing token (validation_failed)")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/email/change".into(),
        json!({"post": op("Ask to move the account to another address; a link goes there", Some(&bearer), Some(body(r("EmailChangeRequest"), true)), responses(vec![
            ("202", ok("Link sent to the new address", message("email_change_requested"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
            ("409", err("email_taken")),
            ("422", err("invalid_password, or an invalid new_email (validation_failed)")),
            ("429", err("Too many wrong passwords (rate_limited)")),
            ("503", err("email_not_configured")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/email/change/confirm".into(),
        json!({"post": op("Confirm the email change with the mailed token", None, Some(body(r("TokenRequest"), true)), responses(vec![
            ("200", ok("Changed", message("email_changed"))),
            ("400", err("invalid_token: wrong, used or expired")),
            ("409", err("email_taken: another account took the address meanwhile")),
            ("422", err("Missing token (validation_failed)")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/password/forgot".into(),
        json!({"post": op("Mail a password-reset link; the same answer whether or not the account exists", None, Some(body(r("ForgotPasswordRequest"), true)), responses(vec![
            ("202", ok("Accepted", message("password_reset_email_sent"))),
            ("422", err("Missing email (validation_failed)")),
            ("429", err("Too many requests from this client (rate_limited)")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/password/reset".into(),
        json!({"post": op("Set a new password with the mailed token; every session ends", None, Some(body(r("ResetPasswordRequest"), true)), responses(vec![
            ("200", ok("Reset", message("password_reset"))),
            ("400", err("invalid_token: wrong, used or expired")),
            ("401", err("totp_required or invalid_totp_code (2FA on; the token stays usable)")),
            ("422", err("The new password fails the policy, or a field is missing (validation_failed)")),
            ("429", err("Too many wrong codes (rate_limited)")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/password/change".into(),
        json!({"post": op("Change the password; every other session ends", Some(&bearer), Some(body(r("PasswordChangeRequest"), true)), responses(vec![
            ("200", ok("Changed", message("password_changed"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
            ("422", err("invalid_password, or the new password fails the policy (validation_failed)")),
            ("429", err("Too many wrong passwords (rate_limited)")),
        ]))}),
    );
    paths.insert(
        "/v1/auth/sessions".into(),
        json!({"get": op("The caller's sessions", Some(&bearer), None, responses(vec![
            ("200", ok("Sessions, newest first", r("Sessions"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
        ]))}),
    );
    paths.insert(
        "/v1/auth/activity".into(),
        json!({"get": {
            "summary": "The caller's own security events, newest first (sessions only)",
            "security": bearer.clone(),
            "parameters": [
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
                {"name": "before", "in": "query", "required": false, "description": "The `next` of the previous page", "schema": {"type": "string", "pattern": "^ev-[0-9]{1,20}$"}},
            ],
            "responses": responses(vec![
                ("200", ok("A page of events", r("Activity"))),
                ("400", err("An invalid cursor (invalid_request)")),
                ("401", unauthorized.clone()),
                ("403", forbidden.clone()),
                ("422", err("limit outside 1-100 (validation_failed)")),
            ]),
        }}),
    );
    paths.insert("/v1/auth/sessions/{id}".into(), json!({"parameters": id_param, "delete": op("End one of the caller's sessions", Some(&bearer), None, responses(vec![
        ("200", ok("Ended", message("session_revoked"))),
        ("401", unauthorized.clone()),
        ("403", forbidden.clone()),
        ("404", err("Not the caller's session (not_found)")),
    ]))}));
    paths.insert("/v1/auth/api-keys".into(), json!({
        "post": op("Create an API key (shown once)", Some(&bearer), Some(body(r("CreateApiKeyRequest"), true)), responses(vec![
            ("201", ok("Created", r("CreatedApiKey"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
            ("409", err("Too many keys (api_key_limit_reached)")),
            ("422", err("Invalid fields (validation_failed: unknown_scope, ...)")),
        ])),
        "get": op("The caller's API keys", Some(&bearer), None, responses(vec![
            ("200", ok("Keys, newest first; never the key itself", r("ApiKeys"))),
            ("401", unauthorized.clone()),
            ("403", forbidden.clone()),
        ])),
    }));
    paths.insert("/v1/auth/api-keys/{id}".into(), json!({"parameters": id_param, "delete": op("Revoke an API key", Some(&bearer), None, responses(vec![
        ("200", ok("Revoked", message("api_key_revoked"))),
        ("401", unauthorized.clone()),
        ("403", forbidden.clone()),
        ("404", err("Not the caller's key (not_found)")),
    ]))}));
    paths.insert("/v1/auth/verify".into(), json!({"get": {
        "summary": "Who is this and may they do that (for services and reverse proxies)",
        "security": bearer,
        "parameters": [{"name": "scope", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Scope(s) required, space-separated; may repeat"}],
        "responses": responses(vec![
            ("200", json!({"description": "Allowed; also in X-Auth-User-Id, X-Auth-Credential, X-Auth-Scopes", "content": {"application/json": {"schema": r("Verify")}}})),
            ("401", unauthorized.clone()),
            ("403", err("insufficient_scope, or account_disabled")),
        ]),
    }}));
    paths.insert("/v1/auth/2fa/setup".into(), json!({"post": op("Start TOTP enrolment", Some(&bearer), Some(body(r("TotpSetupRequest"), false)), responses(vec![
        ("200", ok("Secret, otpauth URL and its QR code", r("TotpSetup"))),
        ("401", unauthorized.clone()),
        ("403", err("session_required, reauthentication_required or account_disabled")),
        ("409", err("2fa_already_enabled")),
    ]))}));
    paths.insert("/v1/auth/2fa/verify".into(), json!({"post": op("Confirm enrolment with a code", Some(&bearer), Some(body(r("TotpVerifyRequest"), true)), responses(vec![
        ("200", ok("Enabled; backup codes shown once", r("TotpEnabled"))),
        ("401", unauthorized.clone()),
        ("403", forbidden.clone()),
        ("409", err("2fa_already_enabled")),
        ("422", err("invalid_totp_code or 2fa_not_set_up")),
    ]))}));
    paths.insert("/v1/auth/2fa/disable".into(), json!({"post": op("Turn TOTP off", Some(&bearer), Some(body(r("TotpDisableRequest"), true)), responses(vec![
        ("200", ok("Disabled", message("2fa_disabled"))),
        ("401", unauthorized.clone()),
        ("403", forbidden.clone()),
        ("409", err("2fa_not_enabled")),
        ("422", err("invalid_password or invalid_totp_code")),
    ]))}));
    paths.insert("/.well-known/jwks.json".into(), json!({"get": {"summary": "Public signing keys (RFC 7517)", "responses": {"200": ok("Key set", r("Jwks"))}}}));
    paths.insert("/v1/openapi.json".into(), json!({"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}));
    paths.insert(
        "/healthz".into(),
        json!({"get": {"summary": "Liveness", "responses": {"200": ok("Serving", r("Status"))}}}),
    );
    paths.insert("/readyz".into(), json!({"get": {"summary": "Readiness", "responses": {"200": ok("Ready", r("Status")), "503": err("Not ready (overloaded)")}}}));
    paths.insert("/metrics".into(), json!({"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text 0.0.4, or OpenMetrics 1.0.0 when Accept prefers it", "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}, "application/openmetrics-text; version=1.0.0": {"schema": {"type": "string"}}}}}}}));

    let s = |t: &str| json!({"type": t});
    let nullable = |t: &str| json!({"type": [t, "null"]});
    let dt = json!({"type": "string", "format": "date-time"});
    let object = |required: &[&str], props: Value| json!({"type": "object", "required": required, "properties": props, "additionalProperties": false});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "cloudheed-auth", "version": env!("CARGO_PKG_VERSION"), "description": format!("Access tokens are EdDSA JWTs issued by `{issuer}`.")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An access token (JWT) or, where allowed, an API key"}},
            "schemas": {
                "Error": {"type": "object", "required": ["message_code", "message"], "properties": {
                    "message_code": s("string"), "message": s("string"),
                    "errors": {"type": "array", "items": object(&["field", "message_code"], json!({"field": s("string"), "message_code": s("string")}))},
                }},
                "RegisterRequest": object(&["email", "password", "name"], json!({"email": s("string"), "password": s("string"), "name": s("string"), "company": s("string")})),
                "LoginRequest": object(&["email", "password"], json!({"email": s("string"), "password": s("string"), "totp_code": s("string")})),
                "RefreshRequest": object(&["refresh_token"], json!({"refresh_token": s("string")})),
                "TokenPair": object(&["token", "refresh_token"], json!({"token": s("string"), "refresh_token": s("string")})),
                "RegisterResponse": object(&["token", "refresh_token", "user"], json!({"token": s("string"), "refresh_token": s("string"),
                    "user": object(&["id", "email", "name"], json!({"id": s("string"), "email": s("string"), "name": s("string")}))})),
                "LoginResponse": object(&["token", "refresh_token", "user"], json!({"token": s("string"), "refresh_token": s("string"),
                    "user": object(&["id", "email", "name", "two_factor_enabled"], json!({"id": s("string"), "email": s("string"), "name": s("string"), "two_factor_enabled": s("boolean")}))})),
                "Me": object(&["id", "email", "name", "company", "plan", "two_factor_enabled", "email_verified_at", "created_at"], json!({
                    "id": s("string"), "email": s("string"), "name": s("string"), "company": nullable("string"), "plan": s("string"),
                    "two_factor_enabled": s("boolean"), "email_verified_at": {"type": ["string", "null"], "format": "date-time"}, "created_at": dt})),
                "Sessions": object(&["sessions"], json!({"sessions": {"type": "array", "items": object(&["id", "created_at", "last_used_at", "user_agent", "ip", "current"], json!({
                    "id": s("string"), "created_at": dt, "last_used_at": dt, "user_agent": nullable("string"), "ip": nullable("string"), "current": s("boolean")}))}})),
                "CreateApiKeyRequest": object(&["name", "scopes"], json!({"name": s("string"), "scopes": strings, "expires_in": {"type": "string", "examples": ["365d", "12h"]}})),
                "CreatedApiKey": object(&["api_key", "id", "name", "prefix", "scopes", "expires_at"], json!({
                    "api_key": s("string"), "id": s("string"), "name": s("string"), "prefix": s("string"), "scopes": strings, "expires_at": dt})),
                "ApiKeys": object(&["api_keys"], json!({"api_keys": {"type": "array", "items": object(&["id", "name", "prefix", "scopes", "last_used_at", "expires_at", "created_at"], json!({
                    "id": s("string"), "name": s("string"), "prefix": s("string"), "scopes": strings,
                    "last_used_at": {"type": ["string", "null"], "format": "date-time"}, "expires_at": dt, "created_at": dt}))}})),
                "Verify": object(&["user_id", "credential", "scopes"], json!({"user_id": s("string"), "credential": {"enum": ["session", "api_key"]}, "scopes": strings, "key_id": s("string")})),
                "TotpSetupRequest": object(&[], json!({"password": s("string")})),
                "TotpSetup": object(&["secret", "qr_code_url", "qr_code_svg"], json!({"secret": s("string"), "qr_code_url": s("string"), "qr_code_svg": s("string")})),
                "TotpVerifyRequest": object(&["code"], json!({"code": s("string")})),
                "TotpEnabled": object(&["message_code", "backup_codes"], json!({"message_code": {"const": "2fa_enabled"}, "backup_codes": strings})),
                "TotpDisableRequest": object(&["password", "code"], json!({"password": s("string"), "code": s("string")})),
                "Jwks": object(&["keys"], json!({"keys": {"type": "array", "items": object(&["kty", "crv", "x", "kid", "use", "alg"], json!({
                    "kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "x": s("string"), "kid": s("string"), "use": {"const": "sig"}, "alg": {"const": "EdDSA"}}))}})),
                "Status": object(&["status"], json!({"status": s("string")})),
            }
        }
    });
    // The account-lifecycle bodies, apart: one json! of every schema is past the macro's
    // recursion limit.
    let schemas = &mut doc["components"]["schemas"];
    schemas["PasswordChangeRequest"] = object(
        &["current_password", "new_password"],
        json!({"current_password": s("string"), "new_password": s("string")}),
    );
    schemas["DeleteAccountRequest"] = object(
        &["password"],
        json!({"password": s("string"), "totp_code": s("string")}),
    );
    schemas["Activity"] = object(
        &["events", "next"],
        json!({
            "events": {"type": "array", "items": object(&["id", "type", "at", "ip", "user_agent"], json!({
                "id": s("string"), "type": s("string"), "at": {"type": "string", "format": "date-time"},
                "ip": nullable("string"), "user_agent": nullable("string"),
                "session_id": s("string"), "key_id": s("string")}))},
            "next": nullable("string"),
        }),
    );
    schemas["TokenRequest"] = object(&["token"], json!({"token": s("string")}));
    schemas["EmailChangeRequest"] = object(
        &["new_email", "password"],
        json!({"new_email": s("string"), "password": s("string")}),
    );
    schemas["ForgotPasswordRequest"] = object(&["email"], json!({"email": s("string")}));
    schemas["ResetPasswordRequest"] = object(
        &["token", "password"],
        json!({"token": s("string"), "password": s("string"), "totp_code": s("string")}),
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::router::TABLE;

    #[test]
    fn the_document_and_the_route_table_agree() {
        let doc = document("cloudheed-auth");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let mut in_doc: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for (method, _) in item.as_object().expect("item") {
                if method != "parameters" {
                    in_doc.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        let mut in_table: Vec<(String, String)> = TABLE
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        in_doc.sort();
        in_table.sort();
        assert_eq!(in_doc, in_table);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document("x");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "{name}");
        }
    }
}
