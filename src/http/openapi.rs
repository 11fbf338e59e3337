//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`: every route of the route table and
//! of the mailed-link pages, every status each can answer, and request rules built from the
//! limits and the config the validators use, so that the document and the server cannot drift
//! apart. CI holds the two together with Schemathesis (`.ci/schemathesis`).

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{json, Map, Value};

use crate::config::{Config, MailTransport};
use crate::domain::audit::ALL_KINDS;
use crate::domain::password::MAX_PASSWORD_CHARS;
use crate::domain::types::{
    EMAIL_LOCAL_SYMBOLS, MAX_DOMAIN_LABEL_BYTES, MAX_EMAIL_CHARS, MAX_EMAIL_LOCAL_BYTES,
    MAX_KEY_NAME_CHARS, MAX_NAME_CHARS,
};
use crate::http::handlers::activity::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::http::pages::{Page, PATHS};
use crate::http::router::{Access, Route};

/// The document for a server running with `config`.
pub fn document(config: &Config) -> Value {
    let mut paths = Map::new();
    let mut errors = Map::new();
    for op in operations(config) {
        let (path, method, item) = op.render(&mut errors);
        if method == "get" {
            let head = head_of(&item);
            insert(&mut paths, path, "head", head);
        }
        insert(&mut paths, path, method, item);
    }
    let key_prefix = &config.api_keys.prefix;
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cloudheed-auth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Accounts, sessions, API keys and two-factor authentication. Access tokens are \
                 EdDSA JWTs issued by `{}`; other services verify them against \
                 `/.well-known/jwks.json`. Every response carries `X-Request-Id`. A known path \
                 with another method is 405 `method_not_allowed` with `Allow`; any other path is \
                 404 `not_found`; request headers above `limits.max_header_bytes` are 431. `HEAD` \
                 is answered wherever `GET` is, without the body. Strings are counted in Unicode \
                 code points, and `null` in an optional field is the same as leaving it out.",
                config.tokens.issuer
            ),
        },
        "tags": [
            {"name": "accounts", "description": "Register, log in, refresh, the caller's account"},
            {"name": "sessions", "description": "The caller's sessions and security events"},
            {"name": "api-keys", "description": "Long-lived keys for programs"},
            {"name": "two-factor", "description": "TOTP authenticator apps and backup codes"},
            {"name": "email", "description": "Mailed links: verify, reset, change the address"},
            {"name": "services", "description": "For other services, proxies and orchestrators"},
            {"name": "pages", "description": "The HTML pages mailed links open"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from register, login or refresh: a session. \
                                    Routes that list only this scheme answer an API key with 403 \
                                    `session_required`.",
                },
                "api_key": {
                    "type": "http", "scheme": "bearer",
                    "description": format!("An API key (`{key_prefix}…`), sent as a bearer token; \
                                            only where a route lists this scheme."),
                },
            },
            "responses": errors,
            "schemas": schemas(config),
        },
    })
}

fn insert(paths: &mut Map<String, Value>, path: &str, method: &str, op: Value) {
    let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
    item[method] = op;
}

/// `HEAD` of a `GET` operation: the same statuses and headers, no body.
fn head_of(get: &Value) -> Value {
    let mut head = get.clone();
    if let Some(id) = get["operationId"].as_str() {
        head["operationId"] = json!(format!("{id}_head"));
    }
    head["summary"] = json!(format!(
        "{} (headers only)",
        get["summary"].as_str().unwrap_or_default()
    ));
    if let Some(responses) = head["responses"].as_object_mut() {
        for r in responses.values_mut() {
            if let Some(r) = r.as_object_mut() {
                r.remove("content");
                r.remove("links");
            }
        }
    }
    head
}

// ---- request rules, as regular expressions (ECMA 262, as JSON Schema reads them) ----

/// What `str::trim` removes (Unicode White_Space); a test holds it to `char::is_whitespace`.
const WHITESPACE: &[(char, char)] = &[
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// What `char::is_control` refuses inside names (Unicode Cc); a test holds it to the function.
const CONTROL: &[(char, char)] = &[('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')];

/// The characters of backup codes, either case (`crypto::backup_codes`; a test compares).
const BACKUP_CHARS: &str = "234679ACDEFGHJKMNPQRTUWXY38";

/// A character class of `sets` (or of everything else), every character written as `\uXXXX`
/// so that ECMA, Python and Rust regex engines read it alike.
fn class(sets: &[&[(char, char)]], negate: bool) -> String {
    let mut ranges: Vec<(char, char)> = sets.iter().flat_map(|s| s.iter().copied()).collect();
    ranges.sort();
    let mut merged: Vec<(char, char)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let u = |c: char| format!("\\u{:04X}", u32::from(c));
    let body: String = merged
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                u(lo)
            } else {
                format!("{}-{}", u(lo), u(hi))
            }
        })
        .collect();
    format!("[{}{body}]", if negate { "^" } else { "" })
}

/// Text that is trimmed and then must be 1 to `max` characters without control characters (or,
/// when `may_be_blank`, nothing at all): `DisplayName`, `Company`, `KeyName`.
fn trimmed_text(max: usize, may_be_blank: bool) -> String {
    let ws = class(&[WHITESPACE], false);
    let edge = class(&[WHITESPACE, CONTROL], true);
    let inner = class(&[CONTROL], true);
    let core = match max {
        1 => edge,
        _ => format!("{edge}(?:{inner}{{0,{}}}{edge})?", max - 2),
    };
    let core = if may_be_blank {
        format!("(?:{core})?")
    } else {
        core
    };
    format!("^{ws}*{core}{ws}*$")
}

/// `Email::parse`: trimmed, at most 254 characters, `local@domain` with an atext local part of
/// at most 64 bytes and a dotted domain of letter-digit-hyphen labels.
fn email_pattern() -> String {
    let ws = class(&[WHITESPACE], false);
    let symbols: String = EMAIL_LOCAL_SYMBOLS
        .chars()
        .map(|c| match c {
            '-' | '^' | '\\' | ']' | '[' => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect();
    let atext = format!("[A-Za-z0-9{symbols}]");
    let label = format!(
        "[A-Za-z0-9](?:[A-Za-z0-9-]{{0,{}}}[A-Za-z0-9])?",
        MAX_DOMAIN_LABEL_BYTES - 2
    );
    // The limits are negative lookaheads: generators (Hypothesis) filter on those, where a
    // positive lookahead leaves them unable to produce any address at all.
    format!(
        "^{ws}*(?![!-~]{{{}}})(?![^@]{{{}}})\
         {atext}+(?:\\.{atext}+)*@{label}(?:\\.{label})+{ws}*$",
        MAX_EMAIL_CHARS + 1,
        MAX_EMAIL_LOCAL_BYTES + 1
    )
}

/// A new password (`Password::check_new`): `min` to 128 code points, not one character repeated.
/// What no pattern can say (the list of common passwords, the account's own email) is in the
/// description.
fn new_password(min: usize) -> Value {
    json!({
        "type": "string",
        "minLength": min,
        "maxLength": MAX_PASSWORD_CHARS,
        "pattern": format!("^(?!([\\s\\S])\\1*$)[\\s\\S]{{{min},{MAX_PASSWORD_CHARS}}}$"),
        "description": format!(
            "{min} to {MAX_PASSWORD_CHARS} characters (code points), never trimmed or \
             truncated. Refused with 422 `password_too_common` as well: one character repeated, \
             a password on the list of very common ones (compared in lower case), the account's \
             email or the part before its `@`, and the product's name with little around it."
        ),
        "examples": ["correct horse battery staple"],
    })
}

/// A six-digit TOTP code or a backup code (`XXXXX-XXXXX`; case, dashes and spaces do not
/// matter): what 2FA disable checks.
fn second_factor() -> Value {
    let backup = format!(
        "[- ]*(?:[{}{}][- ]*){{10}}",
        BACKUP_CHARS,
        BACKUP_CHARS.to_ascii_lowercase()
    );
    json!({
        "type": "string",
        "pattern": format!("^(?:[0-9]{{6}}|{backup})$"),
        "description": "A current code of the authenticator app (6 digits) or an unused backup \
                        code (`XXXXX-XXXXX`, any case, dashes and spaces ignored).",
        "examples": ["123456"],
    })
}

/// The code a login, reset or deletion takes while two-factor authentication is on. No pattern:
/// with it off the field is not looked at, whatever it holds.
fn optional_second_factor() -> Value {
    json!({
        "type": ["string", "null"],
        "description": "Needed only while two-factor authentication is on, and ignored otherwise: \
                        a current code of the authenticator app (6 digits) or an unused backup \
                        code (`XXXXX-XXXXX`, any case, dashes and spaces ignored). Empty or null \
                        is the same as leaving it out; anything else that is not a right code is \
                        401 `invalid_totp_code`.",
        "examples": ["123456"],
    })
}

/// Decimal numbers in `1..=max` (or `0..=max`), at most `width` digits, leading zeros allowed:
/// what `str::parse::<u64>` takes after the length checks of `parse_duration` and
/// `Entry::parse_id`.
fn decimal(from_zero: bool, max: u64, width: usize) -> String {
    let digits = |n: usize| match n {
        0 => String::new(),
        1 => "[0-9]".to_string(),
        n => format!("[0-9]{{{n}}}"),
    };
    let zeros = |n: usize| match n {
        0 => String::new(),
        n => format!("0{{0,{n}}}"),
    };
    let m = max.to_string();
    let n = m.len();
    let mut alternatives = Vec::new();
    if from_zero {
        alternatives.push(format!("0{{1,{width}}}"));
    }
    if max == 0 {
        return format!("(?:{})", alternatives.join("|"));
    }
    for len in 1..n {
        alternatives.push(format!("{}[1-9]{}", zeros(width - len), digits(len - 1)));
    }
    let mut at_most = Vec::new();
    for (i, d) in m.bytes().map(|b| b - b'0').enumerate() {
        let lo = u8::from(i == 0);
        if d > lo {
            let range = if d - 1 == lo {
                lo.to_string()
            } else {
                format!("[{lo}-{}]", d - 1)
            };
            at_most.push(format!("{}{range}{}", &m[..i], digits(n - i - 1)));
        }
    }
    at_most.push(m.clone());
    alternatives.push(format!("{}(?:{})", zeros(width - n), at_most.join("|")));
    format!("(?:{})", alternatives.join("|"))
}

/// `parse_expires_in`: a positive whole number and a unit, at most `max`.
fn expires_in_pattern(max: std::time::Duration) -> String {
    let secs = max.as_secs();
    let units: Vec<String> = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        .iter()
        .filter(|(_, mult)| secs / mult >= 1)
        .map(|(unit, mult)| format!("{}{unit}", decimal(false, secs / mult, 20)))
        .collect();
    format!("^(?:{})$", units.join("|"))
}

/// Ids in paths: what the router takes for one (`router::is_id`); anything else is 404.
const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// A token in a mailed link, as the pages accept it (`pages::plausible_token`).
const PAGE_TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]{16,128}$";

// ---- operations ----

enum Body {
    None,
    Json {
        schema: &'static str,
        required: bool,
    },
    Form(Value),
}

/// One operation: its own outcomes; `render` adds what its access level, body and the
/// per-request deadline add to every route.
struct Op {
    method: Method,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<String>,
    params: Vec<Value>,
    body: Body,
    ok: Vec<(u16, Value)>,
    errors: Vec<(u16, &'static str)>,
    internal: bool,
}

impl Op {
    fn new(method: Method, path: &'static str, id: &'static str, tag: &'static str) -> Op {
        Op {
            method,
            path,
            id,
            tag,
            summary: "",
            description: None,
            params: Vec::new(),
            body: Body::None,
            ok: Vec::new(),
            errors: Vec::new(),
            internal: true,
        }
    }

    fn summary(mut self, s: &'static str) -> Op {
        self.summary = s;
        self
    }

    fn describe(mut self, d: impl Into<String>) -> Op {
        self.description = Some(d.into());
        self
    }

    fn json(mut self, schema: &'static str) -> Op {
        self.body = Body::Json {
            schema,
            required: true,
        };
        self
    }

    fn optional_json(mut self, schema: &'static str) -> Op {
        self.body = Body::Json {
            schema,
            required: false,
        };
        self
    }

    fn form(mut self, schema: Value) -> Op {
        self.body = Body::Form(schema);
        self
    }

    fn param(mut self, p: Value) -> Op {
        self.params.push(p);
        self
    }

    fn ok(mut self, status: u16, response: Value) -> Op {
        self.ok.push((status, response));
        self
    }

    fn err(mut self, status: u16, codes: &[&'static str]) -> Op {
        self.errors.extend(codes.iter().map(|c| (status, *c)));
        self
    }

    /// It touches neither the store nor the hashing pool: no 500.
    fn infallible(mut self) -> Op {
        self.internal = false;
        self
    }

    fn page(&self) -> bool {
        Page::at(self.path).is_some()
    }

    /// The operation, its error answers as references into `shared` (one entry per status and
    /// set of codes, so the many routes that answer alike share one description).
    fn render(self, shared: &mut Map<String, Value>) -> (&'static str, &'static str, Value) {
        let concrete = self.path.replace("{id}", "x-1");
        let access = Route::parse(&self.method, &concrete)
            .map(|r| r.access())
            .unwrap_or(Access::Public);
        let mut errors: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
        let mut add = |status: u16, code: &'static str| {
            let codes = errors.entry(status).or_default();
            if !codes.contains(&code) {
                codes.push(code);
            }
        };
        match access {
            Access::Public => {}
            Access::Any => {
                add(401, "unauthorized");
                add(403, "account_disabled");
            }
            Access::Session => {
                add(401, "unauthorized");
                add(403, "session_required");
                add(403, "account_disabled");
            }
        }
        match &self.body {
            Body::None => {}
            Body::Json { required, .. } => {
                add(400, "invalid_request");
                add(408, "request_timeout");
                add(413, "payload_too_large");
                add(415, "unsupported_media_type");
                if *required {
                    add(422, "validation_failed");
                }
            }
            Body::Form(_) => {
                add(400, "invalid_request");
                add(408, "request_timeout");
                add(413, "payload_too_large");
                add(415, "unsupported_media_type");
            }
        }
        for &(status, code) in &self.errors {
            add(status, code);
        }
        if self.internal {
            add(500, "internal_error");
        }
        add(503, "overloaded");

        let page = self.page();
        let mut responses = Map::new();
        for (status, response) in self.ok {
            responses.insert(status.to_string(), response);
        }
        for (status, codes) in &errors {
            let name = format!(
                "{status}_{}{}",
                codes.join("_or_"),
                if page { "_page" } else { "" }
            );
            shared
                .entry(name.clone())
                .or_insert_with(|| error_response(*status, codes, page));
            responses.insert(
                status.to_string(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
        let security = match access {
            Access::Public => json!([]),
            Access::Session => json!([{"session": []}]),
            Access::Any => json!([{"session": []}, {"api_key": []}]),
        };
        let mut op = json!({
            "operationId": self.id,
            "tags": [self.tag],
            "summary": self.summary,
            "security": security,
            "responses": responses,
        });
        if let Some(d) = self.description {
            op["description"] = json!(d);
        }
        if !self.params.is_empty() {
            op["parameters"] = json!(self.params);
        }
        match self.body {
            Body::None => {}
            Body::Json { schema, required } => {
                op["requestBody"] = json!({
                    "required": required,
                    "content": {"application/json": {"schema": reference(schema)}},
                });
            }
            Body::Form(schema) => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": {"application/x-www-form-urlencoded": {"schema": schema}},
                });
            }
        }
        let method = match self.method {
            Method::GET => "get",
            Method::POST => "post",
            Method::DELETE => "delete",
            _ => "x-unknown",
        };
        (self.path, method, op)
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON success: `schema` under `application/json`.
fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// `{"message_code": code}`.
fn message(description: &str, code: &str) -> Value {
    ok(
        description,
        json!({
            "type": "object",
            "required": ["message_code"],
            "properties": {"message_code": {"const": code}},
            "additionalProperties": false,
        }),
    )
}

/// `Cache-Control: no-store`, on every answer that carries a secret.
fn no_store(mut response: Value) -> Value {
    response["headers"]["Cache-Control"] = json!({
        "required": true,
        "description": "Never cached: the body carries a secret.",
        "schema": {"const": "no-store"},
    });
    response
}

fn html(description: &str) -> Value {
    json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}})
}

/// An error status: the codes it may carry, each explained, and the headers that come with it.
fn error_response(status: u16, codes: &[&'static str], page: bool) -> Value {
    let description = codes
        .iter()
        .map(|c| format!("`{c}`: {}", meaning(c)))
        .collect::<Vec<_>>()
        .join(" ");
    let json_body = json!({"schema": {"allOf": [
        reference("Error"),
        {"properties": {"message_code": {"enum": codes}}},
    ]}});
    let content = if page {
        let mut c = json!({"text/html": {"schema": {"type": "string"}}});
        if status == 503 {
            // The request deadline is enforced before any page is rendered.
            c["application/json"] = json_body;
        }
        c
    } else {
        json!({"application/json": json_body})
    };
    let mut response = json!({"description": description, "content": content});
    if status == 401 && !page {
        response["headers"]["WWW-Authenticate"] =
            json!({"required": true, "schema": {"const": "Bearer"}});
    }
    let retry_after = |required: bool| {
        json!({"required": required, "description": "Seconds to wait before trying again.",
               "schema": {"type": "string", "pattern": "^[0-9]+$"}})
    };
    if status == 429 {
        response["headers"]["Retry-After"] = retry_after(true);
    }
    if status == 503 {
        response["headers"]["Retry-After"] = retry_after(!codes.contains(&"email_not_configured"));
    }
    response
}

/// One line on each message code, for the response descriptions.
fn meaning(code: &str) -> &'static str {
    match code {
        "invalid_request" => "the body is not one JSON document of the documented shape (malformed, a value of the wrong type, an unknown or duplicated field), or the query is malformed.",
        "request_timeout" => "the body did not arrive within `limits.body_read_timeout`.",
        "payload_too_large" => "the body is larger than `limits.max_body_bytes`.",
        "unsupported_media_type" => "the body is not declared with the documented `Content-Type`.",
        "validation_failed" => "a field breaks a rule; `errors` names each field and why (`required`, `too_short`, `too_long`, `invalid_format`, `password_too_common`, `unknown_scope`, `out_of_range`).",
        "internal_error" => "the server failed; the details are only in its log.",
        "overloaded" => "too busy (the password-hashing queue or the request deadline ran out), or shutting down; see `Retry-After`.",
        "unauthorized" => "the bearer credential is missing, malformed, expired or revoked.",
        "session_required" => "an API key was sent where only a session may act.",
        "account_disabled" => "an operator disabled the account.",
        "email_not_verified" => "the email is not verified yet and `accounts.require_verified_email` is on (told only after a right password).",
        "invalid_credentials" => "wrong email or password (the same answer for an unknown email).",
        "totp_required" => "the account has two-factor authentication on: send a code.",
        "invalid_totp_code" => "the two-factor code is wrong, already used or not one of the account's.",
        "invalid_password" => "the password confirming the change is wrong (a guess under the account's lock).",
        "invalid_refresh_token" => "the refresh token is unknown, expired, rotated out or revoked.",
        "rate_limited" => "too many attempts; see `Retry-After`.",
        "email_taken" => "another account has this email.",
        "invalid_token" => "the mailed token is wrong, used or expired.",
        "email_already_verified" => "the email is verified already.",
        "email_not_configured" => "this server sends no mail (`email.transport = \"none\"`).",
        "not_found" => "no such object among the caller's own.",
        "api_key_limit_reached" => "the caller holds `api_keys.max_per_user` live keys.",
        "insufficient_scope" => "the credential lacks a scope asked for.",
        "reauthentication_required" => "the session's password login is older than 15 minutes: send the password (or a wrong one was sent).",
        "2fa_already_enabled" => "two-factor authentication is on already.",
        "2fa_not_enabled" => "two-factor authentication is not on.",
        "2fa_not_set_up" => "no setup to confirm: call setup first.",
        _ => "see the message.",
    }
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn id_param(what: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true,
           "description": format!("The {what}'s id; anything not shaped like one is 404."),
           "schema": {"type": "string", "pattern": ID_PATTERN}})
}

/// A link from a response to `operation`, feeding it `parameters` or a body.
fn link(operation: &str, parameters: Option<Value>, body: Option<Value>) -> Value {
    let mut l = json!({"operationId": operation});
    if let Some(p) = parameters {
        l["parameters"] = p;
    }
    if let Some(b) = body {
        l["requestBody"] = b;
    }
    l
}

fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

fn operations(config: &Config) -> Vec<Op> {
    let mail = config.email.transport != MailTransport::None;
    let refresh_link = json!({"refresh": link("refresh", None, Some(json!({"refresh_token": "$response.body#/refresh_token"})))});
    let mut ops = vec![
        Op::new(Method::POST, "/v1/auth/register", "register", "accounts")
            .summary("Create an account; a session is open at once")
            .json("RegisterRequest")
            .ok(201, with_links(no_store(ok("Created", reference("RegisterResponse"))), json!({
                "refresh": refresh_link["refresh"],
                "login": link("login", None, Some(json!({"email": "$request.body#/email", "password": "$request.body#/password"}))),
            })))
            .err(409, &["email_taken"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/login", "login", "accounts")
            .summary("Log in with email and password (and a code, with two-factor authentication on)")
            .json("LoginRequest")
            .ok(200, with_links(no_store(ok("Logged in", reference("LoginResponse"))), refresh_link.clone()))
            .err(401, &["invalid_credentials", "totp_required", "invalid_totp_code"])
            .err(403, &["account_disabled"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/refresh", "refresh", "accounts")
            .summary("Rotate a refresh token: a new pair; the old refresh token must never come back")
            .describe("Presenting a rotated-out refresh token again ends its whole session (reuse detection, RFC 9700).")
            .json("RefreshRequest")
            .ok(200, with_links(no_store(ok("A new pair", reference("TokenPair"))), refresh_link))
            .err(401, &["invalid_refresh_token"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/logout", "logout", "sessions")
            .summary("End this session; its tokens are refused from the next request on")
            .ok(200, message("Logged out", "logged_out")),
        Op::new(Method::GET, "/v1/auth/me", "me", "accounts")
            .summary("The caller's account")
            .ok(200, ok("The account", reference("Me"))),
        Op::new(Method::DELETE, "/v1/auth/me", "delete_account", "accounts")
            .summary("Delete the caller's account with its sessions, API keys and two-factor state")
            .json("DeleteAccountRequest")
            .ok(200, message("Deleted", "account_deleted"))
            .err(401, &["totp_required", "invalid_totp_code"])
            .err(422, &["invalid_password"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/password/change", "change_password", "accounts")
            .summary("Change the password; every other session ends, this one stays")
            .json("PasswordChangeRequest")
            .ok(200, message("Changed", "password_changed"))
            .err(422, &["invalid_password"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/email/verification", "request_verification", "email")
            .summary("Mail a new verification link (an older link stops working)")
            .ok(202, message("Queued", "verification_email_sent"))
            .err(409, &["email_already_verified"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/email/verify", "verify_email", "email")
            .summary("Verify the email with the mailed token")
            .json("TokenRequest")
            .ok(200, message("Verified", "email_verified"))
            .err(400, &["invalid_token"]),
        Op::new(Method::POST, "/v1/auth/email/change", "request_email_change", "email")
            .summary("Ask to move the account to another address; a confirmation link goes there")
            .json("EmailChangeRequest")
            .ok(202, message("Link sent to the new address", "email_change_requested"))
            .err(409, &["email_taken"])
            .err(422, &["invalid_password"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/email/change/confirm", "confirm_email_change", "email")
            .summary("Confirm the email change with the mailed token")
            .json("TokenRequest")
            .ok(200, message("Changed", "email_changed"))
            .err(400, &["invalid_token"])
            .err(409, &["email_taken"]),
        Op::new(Method::POST, "/v1/auth/password/forgot", "forgot_password", "email")
            .summary("Mail a password-reset link; the same answer whether or not the account exists")
            .json("ForgotPasswordRequest")
            .ok(202, message("Accepted", "password_reset_email_sent"))
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/password/reset", "reset_password", "email")
            .summary("Set a new password with the mailed token; every session ends")
            .json("ResetPasswordRequest")
            .ok(200, message("Reset", "password_reset"))
            .err(400, &["invalid_token"])
            .err(401, &["totp_required", "invalid_totp_code"])
            .err(429, &["rate_limited"]),
        Op::new(Method::GET, "/v1/auth/sessions", "list_sessions", "sessions")
            .summary("The caller's sessions, newest first")
            .ok(200, with_links(ok("Sessions", reference("Sessions")), json!({
                "revoke": link("revoke_session", Some(json!({"id": "$response.body#/sessions/0/id"})), None),
            }))),
        Op::new(Method::GET, "/v1/auth/activity", "activity", "sessions")
            .summary("The caller's own security events, newest first")
            .param(query("limit", "Events per page.", json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})))
            .param(query("before", "The `next` of the previous page: only older events.", json!({"type": "string", "pattern": format!("^ev-{}$", decimal(true, u64::MAX, 20))})))
            .ok(200, ok("A page of events", reference("Activity")))
            .err(400, &["invalid_request"])
            .err(422, &["validation_failed"]),
        Op::new(Method::DELETE, "/v1/auth/sessions/{id}", "revoke_session", "sessions")
            .summary("End one of the caller's sessions (the current one too)")
            .param(id_param("session"))
            .ok(200, message("Ended", "session_revoked"))
            .err(404, &["not_found"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/api-keys", "create_api_key", "api-keys")
            .summary("Create an API key; the key is shown this once")
            .json("CreateApiKeyRequest")
            .ok(201, with_links(no_store(ok("Created", reference("CreatedApiKey"))), json!({
                "revoke": link("revoke_api_key", Some(json!({"id": "$response.body#/id"})), None),
            })))
            .err(409, &["api_key_limit_reached"])
            .err(429, &["rate_limited"]),
        Op::new(Method::GET, "/v1/auth/api-keys", "list_api_keys", "api-keys")
            .summary("The caller's live API keys, newest first; never the key itself")
            .ok(200, with_links(ok("Keys", reference("ApiKeys")), json!({
                "revoke": link("revoke_api_key", Some(json!({"id": "$response.body#/api_keys/0/id"})), None),
            }))),
        Op::new(Method::DELETE, "/v1/auth/api-keys/{id}", "revoke_api_key", "api-keys")
            .summary("Revoke an API key; refused from the next request on")
            .param(id_param("key"))
            .ok(200, message("Revoked", "api_key_revoked"))
            .err(404, &["not_found"])
            .err(429, &["rate_limited"]),
        Op::new(Method::GET, "/v1/auth/verify", "verify", "services")
            .summary("Who is this, and may they do that: for other services and reverse proxies")
            .describe("Reads only `Authorization` and `scope`; any other parameter and any body are ignored. A session holds every configured scope.")
            .param(json!({
                "name": "scope", "in": "query", "required": false, "style": "form", "explode": true,
                "description": "Scopes the credential must hold, all of them; each value may hold several separated by spaces. An empty one is 400.",
                "schema": {"type": "array", "items": {"type": "string", "pattern": "[^ ]"}},
            }))
            .ok(200, verify_ok())
            .err(400, &["invalid_request"])
            .err(403, &["insufficient_scope"]),
        Op::new(Method::POST, "/v1/auth/2fa/setup", "totp_setup", "two-factor")
            .summary("Start enrolling an authenticator app: a new secret, pending until verify")
            .describe("Needs a password proof: the session's password login at most 15 minutes ago, or `password` in the body. The body is optional.")
            .optional_json("TotpSetupRequest")
            .ok(200, no_store(ok("The secret, its otpauth URL and that URL as a QR code", reference("TotpSetup"))))
            .err(403, &["reauthentication_required"])
            .err(409, &["2fa_already_enabled"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/2fa/verify", "totp_verify", "two-factor")
            .summary("Turn two-factor authentication on with a code of the pending secret; other sessions end")
            .json("TotpVerifyRequest")
            .ok(200, no_store(ok("On; ten backup codes, shown this once", reference("TotpEnabled"))))
            .err(409, &["2fa_already_enabled"])
            .err(422, &["invalid_totp_code", "2fa_not_set_up"])
            .err(429, &["rate_limited"]),
        Op::new(Method::POST, "/v1/auth/2fa/disable", "totp_disable", "two-factor")
            .summary("Turn two-factor authentication off with the password and a code")
            .json("TotpDisableRequest")
            .ok(200, message("Off", "2fa_disabled"))
            .err(409, &["2fa_not_enabled"])
            .err(422, &["invalid_password", "invalid_totp_code"])
            .err(429, &["rate_limited"]),
        Op::new(Method::GET, "/.well-known/jwks.json", "jwks", "services")
            .summary("The public keys that verify access tokens (RFC 7517)")
            .infallible()
            .ok(200, jwks_ok()),
        Op::new(Method::GET, "/v1/openapi.json", "openapi", "services")
            .summary("This document")
            .infallible()
            .ok(200, ok("OpenAPI 3.1", json!({"type": "object"}))),
        Op::new(Method::GET, "/healthz", "healthz", "services")
            .summary("Liveness: the process serves HTTP")
            .infallible()
            .ok(200, ok("Serving", json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}, "additionalProperties": false}))),
        Op::new(Method::GET, "/readyz", "readyz", "services")
            .summary("Readiness: the store answers and the server is not shutting down")
            .infallible()
            .ok(200, ok("Ready", json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ready"}}, "additionalProperties": false}))),
        Op::new(Method::GET, "/metrics", "metrics", "services")
            .summary("Prometheus metrics")
            .ok(200, json!({
                "description": "Prometheus text 0.0.4, or OpenMetrics 1.0.0 when `Accept` prefers it",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            })),
    ];
    for op in &mut ops {
        op.adjust_for(config, mail);
    }
    ops.extend(page_operations(config));
    ops
}

impl Op {
    /// Outcomes only some configurations have.
    fn adjust_for(&mut self, config: &Config, mail: bool) {
        if self.id == "login" && config.accounts.require_verified_email {
            self.errors.push((403, "email_not_verified"));
        }
        if !mail && matches!(self.id, "request_verification" | "request_email_change") {
            self.errors.push((503, "email_not_configured"));
        }
    }
}

fn page_operations(config: &Config) -> Vec<Op> {
    let min = config.passwords.min_length;
    let token = json!({"type": "string", "pattern": PAGE_TOKEN_PATTERN, "description": "The token of the mailed link."});
    let mut ops = Vec::new();
    for (path, page) in PATHS {
        let (show, submit, form, extra): (
            &'static str,
            &'static str,
            Value,
            &[(u16, &'static str)],
        ) = match page {
            Page::VerifyEmail => (
                "page_verify_email",
                "page_verify_email_submit",
                json!({"type": "object", "required": ["token"], "properties": {"token": token}}),
                &[(400, "invalid_token")],
            ),
            Page::ConfirmEmailChange => (
                "page_confirm_email_change",
                "page_confirm_email_change_submit",
                json!({"type": "object", "required": ["token"], "properties": {"token": token}}),
                &[(400, "invalid_token"), (409, "email_taken")],
            ),
            Page::ResetPassword => (
                "page_reset_password",
                "page_reset_password_submit",
                json!({
                    "type": "object",
                    "required": ["token", "password", "password_confirm"],
                    "properties": {
                        "token": token,
                        "password": new_password(min),
                        "password_confirm": {"type": "string", "description": "The new password again; a different one is 422."},
                        "totp_code": {"type": "string", "description": "Only while two-factor authentication is on: a current code or an unused backup code. Blank is none."},
                    },
                }),
                &[
                    (400, "invalid_token"),
                    (401, "totp_required"),
                    (401, "invalid_totp_code"),
                    (422, "validation_failed"),
                    (429, "rate_limited"),
                ],
            ),
        };
        ops.push(
            Op::new(Method::GET, path, show, "pages")
                .summary("The page a mailed link opens: a form, with the token moved into it")
                .describe("Opening the link changes nothing (mail scanners fetch links); the form's POST acts.")
                .param(json!({"name": "token", "in": "query", "required": true, "schema": token}))
                .infallible()
                .ok(200, html("The form"))
                .err(400, &["invalid_token"]),
        );
        let mut submit_op = Op::new(Method::POST, path, submit, "pages")
            .summary(
                "The form of a mailed link, submitted: runs the use case and shows how it went",
            )
            .form(form)
            .ok(200, html("Done"));
        for &(status, code) in extra {
            submit_op = submit_op.err(status, &[code]);
        }
        ops.push(submit_op);
    }
    ops
}

fn verify_ok() -> Value {
    let header = |d: &str, required: bool| json!({"required": required, "description": d, "schema": {"type": "string"}});
    json!({
        "description": "Allowed; the answer is in headers too",
        "headers": {
            "X-Auth-User-Id": header("The user.", true),
            "X-Auth-Credential": header("`session` or `api_key`.", true),
            "X-Auth-Scopes": header("The scopes held, space-separated.", true),
            "X-Auth-Key-Id": header("The key, for API keys only.", false),
        },
        "content": {"application/json": {"schema": reference("Verify")}},
    })
}

fn jwks_ok() -> Value {
    let mut r = ok("The key set", reference("Jwks"));
    r["headers"]["Cache-Control"] =
        json!({"required": true, "schema": {"const": "public, max-age=60"}});
    r
}

// ---- schemas ----

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

fn schemas(config: &Config) -> Value {
    let min = config.passwords.min_length;
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": ["string", "null"]});
    let date_time = json!({"type": "string", "format": "date-time"});
    let nullable_date_time = json!({"type": ["string", "null"], "format": "date-time"});
    let email = json!({
        "type": "string",
        "minLength": 1,
        "pattern": email_pattern(),
        "description": format!(
            "An address `local@domain`, at most {MAX_EMAIL_CHARS} characters after trimming \
             surrounding whitespace: ASCII only, an atext local part of at most \
             {MAX_EMAIL_LOCAL_BYTES} characters (dots between words), a domain of at least two \
             letter-digit-hyphen labels (use the punycode form of international domains). \
             Matched case-insensitively."
        ),
        "examples": ["ada@example.com"],
    });
    let name = |max: usize, what: &str, example: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "pattern": trimmed_text(max, false),
            "description": format!("{what}: 1 to {max} characters after trimming surrounding whitespace, no control characters."),
            "examples": [example],
        })
    };
    let mut configured: Vec<&str> = Vec::new();
    for scope in &config.api_keys.scopes {
        if !configured.contains(&scope.as_str()) {
            configured.push(scope);
        }
    }
    let scope_list = json!({
        "type": "array",
        "items": {"type": "string", "enum": configured},
        "minItems": 1,
        "maxItems": configured.len(),
        "uniqueItems": true,
    });
    let mut scopes_request = scope_list;
    scopes_request["description"] =
        json!("A non-empty set of the configured scopes (`api_keys.scopes`), without repeats.");
    // Keys keep the scopes they were made with, even ones the config no longer lists.
    let held = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    let any_password =
        json!({"type": "string", "description": "The account's password as it is now."});
    let user_id = json!({"type": "string", "pattern": "^user-"});
    let mut s = Map::new();
    s.insert("Error".into(), object(&["message_code", "message"], json!({
        "message_code": string, "message": string,
        "errors": {"type": "array", "minItems": 1, "items": object(&["field", "message_code"], json!({"field": string, "message_code": string}))},
    })));
    s.insert("RegisterRequest".into(), object(&["email", "password", "name"], json!({
        "email": email,
        "password": new_password(min),
        "name": name(MAX_NAME_CHARS, "The person's name", "Ada Lovelace"),
        "company": {
            "type": ["string", "null"],
            "pattern": trimmed_text(MAX_NAME_CHARS, true),
            "description": format!("Optional: at most {MAX_NAME_CHARS} characters after trimming, no control characters; blank is none."),
            "examples": ["Analytical Engines"],
        },
    })));
    s.insert("LoginRequest".into(), object(&["email", "password"], json!({
        "email": {"type": "string", "description": "The account's email (any string: an unknown one is 401 like a wrong password)."},
        "password": any_password,
        "totp_code": optional_second_factor(),
    })));
    s.insert(
        "RefreshRequest".into(),
        object(&["refresh_token"], json!({"refresh_token": string})),
    );
    s.insert(
        "TokenPair".into(),
        object(
            &["token", "refresh_token"],
            json!({"token": string, "refresh_token": string}),
        ),
    );
    s.insert("RegisterResponse".into(), object(&["token", "refresh_token", "user"], json!({
        "token": string, "refresh_token": string,
        "user": object(&["id", "email", "name"], json!({"id": user_id, "email": string, "name": string})),
    })));
    s.insert("LoginResponse".into(), object(&["token", "refresh_token", "user"], json!({
        "token": string, "refresh_token": string,
        "user": object(&["id", "email", "name", "two_factor_enabled"], json!({"id": user_id, "email": string, "name": string, "two_factor_enabled": {"type": "boolean"}})),
    })));
    s.insert("Me".into(), object(
        &["id", "email", "name", "company", "plan", "two_factor_enabled", "email_verified_at", "created_at"],
        json!({
            "id": user_id, "email": string, "name": string, "company": nullable_string, "plan": string,
            "two_factor_enabled": {"type": "boolean"}, "email_verified_at": nullable_date_time, "created_at": date_time,
        }),
    ));
    s.insert("Sessions".into(), object(&["sessions"], json!({"sessions": {"type": "array", "items": object(
        &["id", "created_at", "last_used_at", "user_agent", "ip", "current"],
        json!({"id": string, "created_at": date_time, "last_used_at": date_time, "user_agent": nullable_string, "ip": nullable_string, "current": {"type": "boolean"}}),
    )}})));
    s.insert("CreateApiKeyRequest".into(), object(&["name", "scopes"], json!({
        "name": name(MAX_KEY_NAME_CHARS, "The key's name", "Production Key"),
        "scopes": scopes_request,
        "expires_in": {
            "type": ["string", "null"],
            "pattern": expires_in_pattern(config.api_keys.max_expires_in),
            "description": format!(
                "How long the key lives: a positive whole number and a unit (s, m, h or d), at \
                 most {} seconds (`api_keys.max_expires_in`). Default `api_keys.default_expires_in` \
                 ({} seconds).",
                config.api_keys.max_expires_in.as_secs(),
                config.api_keys.default_expires_in.as_secs()
            ),
            "examples": ["365d", "12h"],
        },
    })));
    let key_prefix = regex_literal(&config.api_keys.prefix);
    s.insert("CreatedApiKey".into(), object(&["api_key", "id", "name", "prefix", "scopes", "expires_at"], json!({
        "api_key": {"type": "string", "pattern": format!("^{key_prefix}[0-9A-Za-z]{{38}}$")},
        "id": string, "name": string, "prefix": string, "scopes": held, "expires_at": date_time,
    })));
    s.insert("ApiKeys".into(), object(&["api_keys"], json!({"api_keys": {"type": "array", "items": object(
        &["id", "name", "prefix", "scopes", "last_used_at", "expires_at", "created_at"],
        json!({"id": string, "name": string, "prefix": string, "scopes": held, "last_used_at": nullable_date_time, "expires_at": date_time, "created_at": date_time}),
    )}})));
    s.insert("Verify".into(), json!({"oneOf": [
        object(&["user_id", "credential", "scopes"], json!({"user_id": user_id, "credential": {"const": "session"}, "scopes": held})),
        object(&["user_id", "credential", "scopes", "key_id"], json!({"user_id": user_id, "credential": {"const": "api_key"}, "scopes": held, "key_id": string})),
    ]}));
    s.insert("TotpSetupRequest".into(), object(&[], json!({"password": {
        "type": ["string", "null"],
        "description": "The account's password; needed only when the session's password login is older than 15 minutes.",
    }})));
    s.insert("TotpSetup".into(), object(&["secret", "qr_code_url", "qr_code_svg"], json!({
        "secret": {"type": "string", "pattern": "^[A-Z2-7]{32}$", "description": "The 160-bit secret, base32."},
        "qr_code_url": {"type": "string", "pattern": "^otpauth://totp/"},
        "qr_code_svg": {"type": "string", "description": "An SVG image of `qr_code_url`."},
    })));
    s.insert(
        "TotpVerifyRequest".into(),
        object(
            &["code"],
            json!({"code": {
                "type": "string", "pattern": "^[0-9]{6}$",
                "description": "A current code of the pending secret.",
                "examples": ["123456"],
            }}),
        ),
    );
    let backup_code = format!("^[{BACKUP_CHARS}]{{5}}-[{BACKUP_CHARS}]{{5}}$");
    s.insert("TotpEnabled".into(), object(&["message_code", "backup_codes"], json!({
        "message_code": {"const": "2fa_enabled"},
        "backup_codes": {"type": "array", "minItems": 10, "maxItems": 10, "items": {"type": "string", "pattern": backup_code}},
    })));
    s.insert(
        "TotpDisableRequest".into(),
        object(
            &["password", "code"],
            json!({"password": any_password, "code": second_factor()}),
        ),
    );
    s.insert("Jwks".into(), object(&["keys"], json!({"keys": {"type": "array", "items": object(
        &["kty", "crv", "x", "kid", "use", "alg"],
        json!({"kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "x": string, "kid": string, "use": {"const": "sig"}, "alg": {"const": "EdDSA"}}),
    )}})));
    s.insert(
        "PasswordChangeRequest".into(),
        object(
            &["current_password", "new_password"],
            json!({
                "current_password": any_password,
                "new_password": new_password(min),
            }),
        ),
    );
    s.insert(
        "DeleteAccountRequest".into(),
        object(
            &["password"],
            json!({"password": any_password, "totp_code": optional_second_factor()}),
        ),
    );
    let kinds: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
    s.insert("Activity".into(), object(&["events", "next"], json!({
        "events": {"type": "array", "maxItems": MAX_LIMIT, "items": object(&["id", "type", "at", "ip", "user_agent"], json!({
            "id": {"type": "string", "pattern": "^ev-[0-9]+$"},
            "type": {"type": "string", "enum": kinds},
            "at": date_time,
            "ip": nullable_string, "user_agent": nullable_string,
            "session_id": string, "key_id": string,
        }))},
        "next": {"type": ["string", "null"], "description": "Pass as `before` for the older page; null on the last."},
    })));
    s.insert(
        "TokenRequest".into(),
        object(
            &["token"],
            json!({"token": {"type": "string", "description": "The token from the mailed link."}}),
        ),
    );
    s.insert(
        "EmailChangeRequest".into(),
        object(
            &["new_email", "password"],
            json!({"new_email": email, "password": any_password}),
        ),
    );
    s.insert("ForgotPasswordRequest".into(), object(&["email"], json!({"email": {
        "type": "string",
        "description": "The account's email. Any string: the answer never tells whether an account has it.",
    }})));
    s.insert(
        "ResetPasswordRequest".into(),
        object(
            &["token", "password"],
            json!({
                "token": {"type": "string", "description": "The token from the mailed link."},
                "password": new_password(min),
                "totp_code": optional_second_factor(),
            }),
        ),
    );
    Value::Object(s)
}

/// `text` matched literally inside a regular expression.
fn regex_literal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\^$.|?*+()[]{}".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::router::TABLE;

    fn doc() -> Value {
        document(&Config::from_toml("").expect("defaults"))
    }

    fn operations_of(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn the_document_and_the_route_table_agree() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut in_doc: Vec<(String, String)> = operations_of(&doc)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let mut expected: Vec<(String, String)> = Vec::new();
        for (m, p) in TABLE {
            expected.push((m.to_string(), p.to_string()));
            if *m == "GET" {
                expected.push(("HEAD".into(), p.to_string()));
            }
        }
        for (p, _) in PATHS {
            for m in ["GET", "HEAD", "POST"] {
                expected.push((m.into(), p.to_string()));
            }
        }
        in_doc.sort();
        expected.sort();
        assert_eq!(in_doc, expected);
    }

    /// A response, through its `$ref` if it has one.
    fn resolved<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/responses/");
                &doc["components"]["responses"][name]
            }
            None => response,
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let text = doc.to_string();
        for kind in ["schemas", "responses"] {
            let defined = doc["components"][kind].as_object().expect(kind);
            for part in text.split(&format!("#/components/{kind}/")).skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(defined.contains_key(&name), "{kind}: {name}");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_real_ones() {
        let doc = doc();
        let ops = operations_of(&doc);
        let mut ids: Vec<&str> = ops
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().expect("operationId"))
            .collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before);
        for (_, _, op) in &ops {
            for response in op["responses"].as_object().expect("responses").values() {
                for l in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = l["operationId"].as_str().expect("link target");
                    assert!(ids.contains(&target), "{target}");
                }
            }
        }
    }

    #[test]
    fn access_levels_give_security_and_the_statuses_they_bring() {
        let doc = doc();
        for (method, path, op) in operations_of(&doc) {
            let m: Method = method.parse().expect("method");
            let access = Route::parse(&m, &path.replace("{id}", "x-1"))
                .expect("routed")
                .access();
            let codes_of = |status: &str| {
                resolved(&doc, &op["responses"][status])["content"]["application/json"]["schema"]
                    ["allOf"][1]["properties"]["message_code"]["enum"]
                    .clone()
            };
            match access {
                Access::Public => assert_eq!(op["security"], json!([]), "{method} {path}"),
                Access::Session => {
                    assert_eq!(op["security"], json!([{"session": []}]));
                    assert_eq!(codes_of("401")[0], "unauthorized", "{path}");
                    assert!(codes_of("403")
                        .as_array()
                        .expect("403")
                        .contains(&json!("session_required")));
                }
                Access::Any => {
                    assert_eq!(op["security"], json!([{"session": []}, {"api_key": []}]));
                    assert_eq!(codes_of("401")[0], "unauthorized", "{path}");
                }
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
            assert!(op["responses"]["503"].is_object(), "{method} {path}");
        }
    }

    #[test]
    fn the_whitespace_and_control_classes_are_rusts() {
        let within = |set: &[(char, char)], c: char| set.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(within(WHITESPACE, c), c.is_whitespace(), "{:X}", c as u32);
            assert_eq!(within(CONTROL, c), c.is_control(), "{:X}", c as u32);
        }
        assert_eq!(
            class(&[WHITESPACE], false),
            "[\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028-\\u2029\\u202F\\u205F\\u3000]"
        );
    }

    #[test]
    fn backup_code_characters_are_the_ones_codes_are_made_of() {
        for b in 0u8..=127 {
            let c = b as char;
            let code = c.to_string().repeat(10);
            let ours = BACKUP_CHARS.contains(c.to_ascii_uppercase()) && c.is_ascii_alphanumeric();
            assert_eq!(
                crate::crypto::backup_codes::normalize(&code).is_some(),
                ours,
                "{c:?}"
            );
        }
    }

    #[test]
    fn ids_in_paths_are_what_the_router_takes() {
        assert_eq!(ID_PATTERN, "^[A-Za-z0-9_-]{1,64}$");
        let parses =
            |id: &str| Route::parse(&Method::DELETE, &format!("/v1/auth/api-keys/{id}")).is_ok();
        assert!(parses(&"a".repeat(64)));
        assert!(!parses(&"a".repeat(65)));
        for b in 0x21u8..=0x7e {
            let c = b as char;
            let ours = c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if c != '/' {
                assert_eq!(parses(&format!("a{c}")), ours, "{c:?}");
            }
        }
    }

    #[test]
    fn decimals_are_bounded_exactly() {
        assert_eq!(
            decimal(false, 3650, 20),
            "(?:0{0,19}[1-9]|0{0,18}[1-9][0-9]|0{0,17}[1-9][0-9]{2}|0{0,16}(?:[1-2][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650))"
        );
        assert_eq!(decimal(true, 9, 2), "(?:0{1,2}|0{0,1}(?:[1-8]|9))");
        assert_eq!(decimal(false, 10, 2), "(?:0{0,1}[1-9]|(?:10))");
        let max = decimal(true, u64::MAX, 20);
        assert!(max.ends_with("18446744073709551615))"), "{max}");
        assert_eq!(
            expires_in_pattern(std::time::Duration::from_secs(90)),
            format!(
                "^(?:{}s|{}m)$",
                decimal(false, 90, 20),
                decimal(false, 1, 20)
            )
        );
    }

    #[test]
    fn request_rules_come_from_the_config() {
        let config = Config::from_toml(
            "[passwords]\nmin_length = 12\n[api_keys]\nscopes = [\"a:read\", \"b:write\", \"c\"]\n",
        )
        .expect("config");
        let doc = document(&config);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["CreateApiKeyRequest"]["properties"]["scopes"]["items"]["enum"],
            json!(["a:read", "b:write", "c"])
        );
        for (schema, field) in [
            ("RegisterRequest", "password"),
            ("PasswordChangeRequest", "new_password"),
            ("ResetPasswordRequest", "password"),
        ] {
            let p = &schemas[schema]["properties"][field];
            assert_eq!(p["minLength"], 12, "{schema}");
            assert_eq!(p["maxLength"], MAX_PASSWORD_CHARS, "{schema}");
        }
    }
}
