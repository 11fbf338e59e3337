//! The TOML config file: read it strictly into a validated `Config`, reporting every problem at once.
//!
//! Every key is optional; a missing key takes the default shown in `config/cloudheed-auth.toml`.
//! An unknown key or a value of the wrong type or range is a problem that names the key, and
//! all problems are reported together so a self-hoster fixes the file in one pass.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::duration::parse_duration;
use crate::domain::net::Cidr;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration; no `Option`s where a default exists.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Directory holding `cloudheed-auth.redb`.
    pub data_dir: PathBuf,
    /// TOTP issuer: the label authenticator apps show.
    pub issuer: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Where users reach this server, `http(s)://host[:port]`: the base of links in mail.
    pub public_url: String,
    /// `[email]`.
    pub email: EmailConfig,
    /// `[accounts]`.
    pub accounts: AccountsConfig,
    /// `[tokens]`.
    pub tokens: TokensConfig,
    /// `[passwords]`.
    pub passwords: PasswordsConfig,
    /// `[api_keys]`.
    pub api_keys: ApiKeysConfig,
    /// `[rate_limits]`.
    pub rate_limits: RateLimitsConfig,
    /// `[cors]`.
    pub cors: CorsConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// Every setting as `key = value`, values as written or defaulted; secret-free.
    pub effective: Vec<String>,
}

/// How mail leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransport {
    /// To an SMTP relay.
    Smtp,
    /// Into one `.eml` file per message under `<data_dir>/mail/`: nothing is delivered.
    File,
    /// Nowhere: mail features are off.
    None,
}

/// An SMTP relay, from `email.smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// `smtps://`: TLS from the first byte. Otherwise plain, upgraded with STARTTLS.
    pub implicit_tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl SmtpUrl {
    /// Parse `smtp://host[:port]` (port 587 by default) or `smtps://host[:port]` (465), with no
    /// user, path or query: credentials have their own keys, so they never sit in a URL.
    pub fn parse(s: &str) -> Result<SmtpUrl, String> {
        let err = || "must look like \"smtp://host:587\" or \"smtps://host:465\"".to_string();
        let (scheme, rest) = s.split_once("://").ok_or_else(err)?;
        let (implicit_tls, default_port) = match scheme {
            "smtp" => (false, 587),
            "smtps" => (true, 465),
            _ => return Err(err()),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(err)?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None if rest.starts_with('[') && !rest.ends_with(']') => return Err(err()),
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(err)?,
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
        if !host_ok {
            return Err(err());
        }
        Ok(SmtpUrl {
            implicit_tls,
            host: host.to_string(),
            port,
        })
    }

    /// Whether the relay is on this machine, where mail may go in the clear.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// `[email]`.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// How mail leaves the server.
    pub transport: MailTransport,
    /// The relay, when `transport` is SMTP.
    pub smtp_url: Option<SmtpUrl>,
    /// SMTP AUTH user; none means no AUTH.
    pub smtp_username: Option<String>,
    /// File holding the SMTP password (a systemd credential), read at start.
    pub smtp_password_file: Option<PathBuf>,
    /// The `From` mailbox, as written (`Name <addr>` or `addr`).
    pub from: String,
    /// Send a verification mail at registration.
    pub verify_on_register: bool,
    /// Lifetime of an email-verification link.
    pub verification_ttl: Duration,
    /// Lifetime of a password-reset link.
    pub reset_ttl: Duration,
    /// Lifetime of an email-change confirmation link.
    pub change_ttl: Duration,
    /// Deliveries tried before a message is dropped.
    pub max_attempts: u32,
}

/// `[accounts]`.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Plan given to every new account.
    pub default_plan: String,
    /// Refuse logins of accounts whose email is not verified (403 `email_not_verified`).
    pub require_verified_email: bool,
}

/// `[tokens]`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// The JWT `iss` claim.
    pub issuer: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Absolute lifetime of a session and so of every refresh token in it.
    pub refresh_ttl: Duration,
    /// How long a rotated-out refresh token may be presented again and get the same successor.
    pub refresh_reuse_grace: Duration,
    /// Most sessions one user may hold; opening one more ends the oldest.
    pub max_sessions_per_user: usize,
}

/// `[passwords]`.
#[derive(Debug, Clone)]
pub struct PasswordsConfig {
    /// Fewest code points a password may have.
    pub min_length: usize,
    /// scrypt cost: N = 2^log_n.
    pub scrypt_log_n: u8,
    /// scrypt block size.
    pub scrypt_r: u32,
    /// scrypt parallelism.
    pub scrypt_p: u32,
    /// Most password hashes computed at once; each takes 128 * r * N bytes.
    pub max_concurrent_hashes: usize,
    /// How long a request waits for a hashing slot before it gets 503.
    pub queue_timeout: Duration,
}

/// `[api_keys]`.
#[derive(Debug, Clone)]
pub struct ApiKeysConfig {
    /// Prefix of every key, so secret scanners can recognise it.
    pub prefix: String,
    /// Scopes a key may be given.
    pub scopes: Vec<String>,
    /// Lifetime of a key created without `expires_in`.
    pub default_expires_in: Duration,
    /// Longest lifetime a key may ask for.
    pub max_expires_in: Duration,
    /// Most live keys one user may hold.
    pub max_per_user: usize,
    /// How often key use (`last_used_at`) is written to the store.
    pub last_used_flush: Duration,
}

/// `[rate_limits]`.
#[derive(Debug, Clone)]
pub struct RateLimitsConfig {
    /// Whether throttling is on.
    pub enabled: bool,
    /// Peers (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// IPv6 clients are limited per network of this many bits (one subscriber holds a /64).
    pub ipv6_prefix: u8,
    /// Most (limit, client) pairs remembered; the least recently seen is forgotten first.
    pub max_tracked_clients: usize,
    /// Login attempts per client address.
    pub login: Vec<Rate>,
    /// Registrations per client address.
    pub register: Vec<Rate>,
    /// Refused refresh tokens per client address (a valid one is never limited).
    pub refresh: Vec<Rate>,
    /// Password and code guesses per client address, counted as they start.
    pub failures: Vec<Rate>,
    /// Writes one account may cause: 2FA setup, API-key create and revoke, session revoke.
    pub account_writes: Vec<Rate>,
    /// Mails with a link one account may be sent, per kind (verification, reset).
    pub account_mail: Vec<Rate>,
    /// Password-reset requests per client.
    pub forgot_password: Vec<Rate>,
}

/// At most `count` events per `per`, refilled continuously (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Bucket size: events allowed in a burst.
    pub count: u32,
    /// The window the count refills over.
    pub per: Duration,
}

impl Rate {
    /// Parse `"10/1m"`: a positive count, a slash, a positive duration.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let err = || format!("{s:?} must look like \"10/1m\": a count, a slash and a duration");
        let (n, d) = s.split_once('/').ok_or_else(err)?;
        let count: u32 = n.parse().map_err(|_| err())?;
        let per = parse_duration(d).map_err(|_| err())?;
        if count == 0 || count > 1_000_000 || per.is_zero() {
            return Err(err());
        }
        Ok(Rate { count, per })
    }
}

/// `[cors]`.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser; empty turns CORS off.
    pub allowed_origins: Vec<String>,
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) accepted; beyond it 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a client has to send a complete request body.
    pub body_read_timeout: Duration,
    /// Time an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections one client network may hold open; trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// Requests served on one connection before it is closed (the client reconnects).
    pub max_requests_per_connection: u64,
    /// Age after which a connection is closed once its current request is answered.
    pub max_connection_age: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Longest a request may take once its head has arrived; beyond it 503.
    pub request_timeout: Duration,
}

/// `[store]`: where accounts, sessions and keys live.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The backend.
    pub backend: StoreBackend,
    /// The PostgreSQL URL (`postgres://user[:password]@host[:port]/db[?sslmode=require]`), as
    /// given inline; may hold a password, so never printed whole.
    pub url: Option<String>,
    /// A file holding the URL (a systemd credential), read at start.
    pub url_file: Option<PathBuf>,
    /// Connections each instance keeps to PostgreSQL at most.
    pub pool_size: usize,
    /// PEM certificates of a private CA the database's TLS certificate is checked against too
    /// (beside the web's roots), for `sslmode=require`.
    pub ca_file: Option<PathBuf>,
}

/// The store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// One redb file in `data_dir` (the default).
    Redb,
    /// A PostgreSQL database, which several instances may share.
    Postgres,
}

/// `[audit]`: the security log.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Entries older than this are pruned (behind an anchor that keeps the chain verifiable);
    /// zero keeps them forever.
    pub retention: Duration,
}

/// `[cache]`: entries per in-memory cache; 0 turns one off.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Access tokens whose signature was checked (about 400 bytes each).
    pub tokens: usize,
    /// Sessions read with their user for bearer checks (about 1.5 KiB each).
    pub sessions: usize,
    /// API keys read with their user for key checks (about 1.5 KiB each).
    pub keys: usize,
}

/// Everything wrong with a config file, one line per problem, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One human-readable problem per entry.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// === impl Config ===

impl Default for Config {
    fn default() -> Self {
        match Config::from_toml("") {
            Ok(c) => c,
            Err(e) => unreachable!("the built-in defaults are valid: {e}"),
        }
    }
}

impl Config {
    /// Name of the database file inside `data_dir`.
    pub const DB_FILE: &'static str = "cloudheed-auth.redb";

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("cannot read {}: {e}", path.display())],
        })?;
        Config::from_toml(&text)
    }

    /// Parse and validate config text. The empty string gives the defaults.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            problems: vec![format!("not valid TOML: {}", e.message())],
        })?;
        let mut p = Problems::default();
        let mut root = Section::new("", table, &mut p);
        let listen = root.parse_str("listen", "127.0.0.1:8080", |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| "must be an address like \"127.0.0.1:8080\"".to_string())
        });
        let data_dir = PathBuf::from(root.string("data_dir", "./data"));
        let issuer = root.string("issuer", "Cloudheed");
        let log_format = root.parse_str("log_format", "text", |s| match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be \"text\" or \"json\"".to_string()),
        });
        let public_url = root.parse_str("public_url", &format!("http://{listen}"), |s| {
            if is_origin(s) {
                Ok(s.to_string())
            } else {
                Err("must be http(s)://host[:port], without a path or trailing slash".to_string())
            }
        });
        let mut s = root.section("accounts");
        let accounts = AccountsConfig {
            default_plan: s.string("default_plan", "free"),
            require_verified_email: s.bool("require_verified_email", false),
        };
        s.finish();
        let mut s = root.section("tokens");
        let tokens = TokensConfig {
            issuer: s.string("issuer", "cloudheed-auth"),
            access_ttl: s.positive_duration("access_ttl", "15m"),
            refresh_ttl: s.positive_duration("refresh_ttl", "30d"),
            refresh_reuse_grace: s.duration("refresh_reuse_grace", "0s"),
            max_sessions_per_user: s.int("max_sessions_per_user", 100, 1, 10_000),
        };
        s.finish();
        let mut s = root.section("passwords");
        let passwords = PasswordsConfig {
            min_length: s.int("min_length", 8, 8, 128),
            scrypt_log_n: s.int("scrypt_log_n", 17, 10, 20),
            scrypt_r: s.int("scrypt_r", 8, 1, 32),
            scrypt_p: s.int("scrypt_p", 1, 1, 16),
            max_concurrent_hashes: match s.int("max_concurrent_hashes", 0, 0, 1024) {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            queue_timeout: s.positive_duration("queue_timeout", "5s"),
        };
        s.finish();
        let mut s = root.section("api_keys");
        let api_keys = ApiKeysConfig {
            prefix: s.parse_str("prefix", "ch_live_", |v| {
                let ok = (3..=16).contains(&v.len())
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    Err("must be 3 to 16 characters of A-Z, a-z, 0-9 or _".to_string())
                } else if v.starts_with("ey") {
                    // Every JWT starts with "eyJ": such a prefix would send tokens down the key path.
                    Err("must not start with \"ey\", as access tokens do".to_string())
                } else {
                    Ok(v.to_string())
                }
            }),
            scopes: s.strings("scopes", &["databases:read", "databases:write"]),
            default_expires_in: s.positive_duration("default_expires_in", "365d"),
            max_expires_in: s.positive_duration("max_expires_in", "3650d"),
            max_per_user: s.int("max_per_user", 100, 1, 100_000),
            last_used_flush: s.positive_duration("last_used_flush", "5s"),
        };
        if api_keys.scopes.is_empty() {
            s.problem("scopes", "must name at least one scope");
        }
        for (i, scope) in api_keys.scopes.iter().enumerate() {
            if !is_scope_token(scope) {
                s.problem("scopes", &format!("{scope:?} is not a scope: use 1 to 64 visible ASCII characters without spaces, quotes or backslashes"));
            }
            if api_keys.scopes[..i].contains(scope) {
                s.problem("scopes", &format!("{scope:?} is listed twice"));
            }
        }
        if api_keys.max_expires_in > MAX_KEY_LIFETIME {
            s.problem("max_expires_in", "must be at most 36500d (100 years)");
        }
        if api_keys.default_expires_in > api_keys.max_expires_in {
            s.problem(
                "default_expires_in",
                "must not be longer than max_expires_in",
            );
        }
        s.finish();
        let mut s = root.section("rate_limits");
        let rate_limits = RateLimitsConfig {
            enabled: s.bool("enabled", true),
            trusted_proxies: s
                .strings("trusted_proxies", &[])
                .iter()
                .filter_map(|v| match Cidr::parse(v) {
                    Ok(block) => Some(block),
                    Err(msg) => {
                        s.problem("trusted_proxies", &msg);
                        None
                    }
                })
                .collect(),
            ipv6_prefix: s.int("ipv6_prefix", 64, 32, 128),
            max_tracked_clients: s.int("max_tracked_clients", 100_000, 1_000, 10_000_000),
            login: s.rates("login", &["10/1m", "100/1h"]),
            register: s.rates("register", &["5/1m", "30/1h"]),
            refresh: s.rates("refresh", &["30/1m", "600/1h"]),
            failures: s.rates("failures", &["20/1m", "100/1h"]),
            account_writes: s.rates("account_writes", &["20/1m", "200/1h"]),
            account_mail: s.rates("account_mail", &["1/1m", "10/1d"]),
            forgot_password: s.rates("forgot_password", &["5/1m", "30/1h"]),
        };
        s.finish();
        let mut s = root.section("cors");
        let cors = CorsConfig {
            allowed_origins: s.strings("allowed_origins", &[]),
        };
        for origin in &cors.allowed_origins {
            if !is_origin(origin) {
                s.problem(
                    "allowed_origins",
                    &format!("{origin:?} is not an origin like \"https://app.example.com\" (no \"*\", path or trailing slash)"),
                );
            }
        }
        s.finish();
        let mut s = root.section("limits");
        let limits = LimitsConfig {
            max_body_bytes: s.int("max_body_bytes", 65_536, 1024, 16 * 1024 * 1024),
            // hyper's read buffer cannot be smaller than 8 KiB.
            max_header_bytes: s.int("max_header_bytes", 16_384, 8192, 1024 * 1024),
            header_read_timeout: s.positive_duration("header_read_timeout", "10s"),
            body_read_timeout: s.positive_duration("body_read_timeout", "10s"),
            idle_timeout: s.positive_duration("idle_timeout", "60s"),
            max_connections: s.int("max_connections", 1024, 1, 1_000_000),
            max_connections_per_address: s.int("max_connections_per_address", 64, 1, 1_000_000),
            max_requests_per_connection: s.int("max_requests_per_connection", 1000, 1, 1 << 40),
            max_connection_age: s.positive_duration("max_connection_age", "10m"),
            shutdown_grace: s.positive_duration("shutdown_grace", "10s"),
            request_timeout: s.positive_duration("request_timeout", "30s"),
        };
        s.finish();
        let mut s = root.section("email");
        let email = read_email(&mut s);
        s.finish();
        let mut s = root.section("cache");
        let cache = CacheConfig {
            tokens: s.int("tokens", 10_000, 0, 10_000_000),
            sessions: s.int("sessions", 10_000, 0, 10_000_000),
            keys: s.int("keys", 10_000, 0, 10_000_000),
        };
        s.finish();
        let mut s = root.section("audit");
        let audit = AuditConfig {
            retention: s.parse_str("retention", "365d", |v| {
                if v.trim() == "0" {
                    return Ok(Duration::ZERO);
                }
                parse_duration(v).map_err(|e| e.to_string())
            }),
        };
        s.finish();
        let store = store_section(&mut root.section("store"));
        root.finish();
        if !p.list.is_empty() {
            return Err(ConfigError { problems: p.list });
        }
        Ok(Config {
            listen,
            data_dir,
            issuer,
            log_format,
            public_url,
            email,
            accounts,
            tokens,
            passwords,
            api_keys,
            rate_limits,
            cors,
            limits,
            cache,
            audit,
            store,
            effective: p.effective,
        })
    }

    /// How long a retired signing key keeps verifying: the access-token lifetime and a minute.
    pub fn key_keep_for(&self) -> i64 {
        crate::clock::secs(self.tokens.access_ttl) + 60
    }

    /// Path of the redb file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(Self::DB_FILE)
    }

    /// Every effective setting, one `key = value` line each with values as written (durations
    /// as "15m", not seconds), then what follows from them; nothing secret. For `check-config`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for line in &self.effective {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!(
            "# database file: {}\n# password hashes at once: {}\n",
            self.db_path().display(),
            self.passwords.max_concurrent_hashes
        ));
        out
    }
}

/// `[email]`, with the checks that need more than one key.
fn read_email(s: &mut Section<'_>) -> EmailConfig {
    let transport = s.parse_str("transport", "file", |v| match v {
        "smtp" => Ok(MailTransport::Smtp),
        "file" => Ok(MailTransport::File),
        "none" => Ok(MailTransport::None),
        _ => Err("must be \"smtp\", \"file\" or \"none\"".to_string()),
    });
    // A malformed URL is reported as such, not again as a missing one.
    let smtp_url_written = s
        .table
        .get("smtp_url")
        .is_some_and(|v| v.as_str() != Some(""));
    let smtp_url = s.parse_str("smtp_url", "", |v| {
        if v.is_empty() {
            Ok(None)
        } else {
            SmtpUrl::parse(v).map(Some)
        }
    });
    let optional = |v: String| Some(v).filter(|v| !v.is_empty());
    let smtp_username = optional(s.string("smtp_username", ""));
    let smtp_password_file = optional(s.string("smtp_password_file", "")).map(PathBuf::from);
    let from = s.parse_str("from", "cloudheed-auth <noreply@localhost>", |v| {
        v.parse::<lettre::message::Mailbox>()
            .map(|_| v.to_string())
            .map_err(|_| "must be an address, or a name and <address>".to_string())
    });
    let email = EmailConfig {
        transport,
        smtp_url,
        smtp_username,
        smtp_password_file,
        from,
        verify_on_register: s.bool("verify_on_register", true),
        verification_ttl: s.positive_duration("verification_ttl", "24h"),
        reset_ttl: s.positive_duration("reset_ttl", "30m"),
        change_ttl: s.positive_duration("change_ttl", "1h"),
        max_attempts: s.int("max_attempts", 8, 1, 100),
    };
    if email.transport == MailTransport::Smtp && !smtp_url_written {
        s.problem("smtp_url", "is required when transport = \"smtp\"");
    }
    if email.smtp_username.is_some() != email.smtp_password_file.is_some() {
        s.problem(
            "smtp_password_file",
            "and smtp_username must be set together (or neither)",
        );
    }
    email
}

/// `scheme://host[:port]`, exactly as browsers send `Origin`; never a wildcard.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn store_section(s: &mut Section<'_>) -> StoreConfig {
    let backend = s.parse_str("backend", "redb", |v| match v {
        "redb" => Ok(StoreBackend::Redb),
        "postgres" => Ok(StoreBackend::Postgres),
        _ => Err("must be \"redb\" or \"postgres\"".into()),
    });
    let url = s.url_with_password("url");
    let url_file = Some(s.string("url_file", ""))
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    let pool_size = s.int("pool_size", 16, 1, 1000);
    let ca_file = Some(s.string("ca_file", ""))
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    match (backend, &url, &url_file) {
        (StoreBackend::Postgres, None, None) => {
            s.problem("url", "backend = \"postgres\" needs url or url_file")
        }
        (StoreBackend::Postgres, Some(_), Some(_)) => {
            s.problem("url_file", "give url or url_file, not both")
        }
        (StoreBackend::Redb, Some(_), _) | (StoreBackend::Redb, _, Some(_)) => {
            s.problem("backend", "url and url_file are for backend = \"postgres\"")
        }
        _ => {}
    }
    s.finish_ref();
    StoreConfig {
        backend,
        url,
        url_file,
        pool_size,
        ca_file,
    }
}

/// `scheme://user:password@host…` with the password as `***`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The longest an API key may live; keeps every expiry a printable RFC 3339 date.
const MAX_KEY_LIFETIME: Duration = Duration::from_secs(36_500 * 86_400);

/// RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E, so scopes survive query strings and
/// the space-separated `X-Auth-Scopes` header.
fn is_scope_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

// === impl Section ===

/// What reading a file found: its problems, and every effective setting as `key = value` with
/// values as written (or as defaulted), for `check-config`.
#[derive(Default)]
struct Problems {
    list: Vec<String>,
    effective: Vec<String>,
}

/// One TOML table being read: each typed getter takes its key out, and `finish` reports whatever
/// is left as unknown, so typos are refused rather than silently ignored.
struct Section<'p> {
    prefix: String,
    table: toml::Table,
    problems: &'p mut Problems,
}

impl<'p> Section<'p> {
    fn new(prefix: &str, table: toml::Table, problems: &'p mut Problems) -> Self {
        Self {
            prefix: prefix.to_string(),
            table,
            problems,
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    fn problem(&mut self, k: &str, msg: &str) {
        let key = self.key(k);
        self.problems.list.push(format!("{key}: {msg}"));
    }

    fn section(&mut self, name: &str) -> Section<'_> {
        let table = match self.table.remove(name) {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                self.problem(name, "must be a table ([section])");
                toml::Table::new()
            }
        };
        let prefix = format!("{}{name}.", self.prefix);
        Section::new(&prefix, table, self.problems)
    }

    fn finish(self) {
        for k in self.table.keys() {
            self.problems
                .list
                .push(format!("{}{k}: unknown key", self.prefix));
        }
    }

    fn string(&mut self, k: &str, default: &str) -> String {
        let v = match self.table.remove(k) {
            None => default.to_string(),
            Some(toml::Value::String(s)) => s,
            Some(_) => {
                self.problem(k, "must be a string");
                default.to_string()
            }
        };
        self.effective(k, toml::Value::String(v.clone()));
        v
    }

    /// An optional URL that may carry a password: `check-config` shows it with the password
    /// replaced by `***`.
    fn url_with_password(&mut self, k: &str) -> Option<String> {
        let v = match self.table.remove(k) {
            None => return None,
            Some(toml::Value::String(s)) if !s.is_empty() => s,
            Some(_) => {
                self.problem(k, "must be a non-empty string");
                return None;
            }
        };
        self.effective(k, toml::Value::String(redact_password(&v)));
        Some(v)
    }

    /// `finish` for a section borrowed rather than owned.
    fn finish_ref(&mut self) {
        let keys: Vec<String> = self.table.keys().cloned().collect();
        for k in keys {
            self.problems
                .list
                .push(format!("{}{k}: unknown key", self.prefix));
        }
        self.table.clear();
    }

    /// Note the value a key took, in TOML syntax, so `check-config` shows it as written.
    fn effective(&mut self, k: &str, v: toml::Value) {
        let key = self.key(k);
        self.problems.effective.push(format!("{key} = {v}"));
    }

    fn parse_str<T>(&mut self, k: &str, default: &str, f: impl Fn(&str) -> Result<T, String>) -> T {
        let s = self.string(k, default);
        match f(&s) {
            Ok(v) => v,
            Err(msg) => {
                self.problem(k, &format!("{s:?} {msg}"));
                match f(default) {
                    Ok(v) => v,
                    Err(e) => unreachable!("default for {k} is valid: {e}"),
                }
            }
        }
    }

    fn duration(&mut self, k: &str, default: &str) -> Duration {
        self.parse_str(k, default, |s| parse_duration(s).map_err(|e| e.to_string()))
    }

    fn positive_duration(&mut self, k: &str, default: &str) -> Duration {
        self.parse_str(k, default, |s| match parse_duration(s) {
            Ok(d) if d.is_zero() => Err("must be greater than zero".to_string()),
            Ok(d) => Ok(d),
            Err(e) => Err(e.to_string()),
        })
    }

    fn int<T: TryFrom<i64> + TryInto<i64> + Copy>(
        &mut self,
        k: &str,
        default: T,
        min: i64,
        max: i64,
    ) -> T {
        let v = self.int_value(k, default, min, max);
        let shown = v.try_into().unwrap_or_default();
        self.effective(k, toml::Value::Integer(shown));
        v
    }

    fn int_value<T: TryFrom<i64> + Copy>(&mut self, k: &str, default: T, min: i64, max: i64) -> T {
        match self.table.remove(k) {
            None => default,
            Some(toml::Value::Integer(n)) if (min..=max).contains(&n) => {
                T::try_from(n).unwrap_or(default)
            }
            Some(toml::Value::Integer(n)) => {
                self.problem(k, &format!("{n} must be between {min} and {max}"));
                default
            }
            Some(_) => {
                self.problem(k, "must be an integer");
                default
            }
        }
    }

    fn rates(&mut self, k: &str, default: &[&str]) -> Vec<Rate> {
        let mut out = Vec::new();
        for v in self.strings(k, default) {
            match Rate::parse(&v) {
                Ok(r) => out.push(r),
                Err(msg) => self.problem(k, &msg),
            }
        }
        out
    }

    fn bool(&mut self, k: &str, default: bool) -> bool {
        let v = match self.table.remove(k) {
            None => default,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                self.problem(k, "must be true or false");
                default
            }
        };
        self.effective(k, toml::Value::Boolean(v));
        v
    }

    fn strings(&mut self, k: &str, default: &[&str]) -> Vec<String> {
        let v = self.strings_value(k, default);
        let list = v.iter().cloned().map(toml::Value::String).collect();
        self.effective(k, toml::Value::Array(list));
        v
    }

    fn strings_value(&mut self, k: &str, default: &[&str]) -> Vec<String> {
        let fallback = || default.iter().map(|s| s.to_string()).collect();
        match self.table.remove(k) {
            None => fallback(),
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => out.push(s),
                        _ => {
                            self.problem(k, "must be a list of strings");
                            return fallback();
                        }
                    }
                }
                out
            }
            Some(_) => {
                self.problem(k, "must be a list of strings");
                fallback()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_listed_twice_is_refused() {
        let err = Config::from_toml("[api_keys]\nscopes = [\"a:read\", \"a:read\"]\n")
            .expect_err("duplicate");
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn the_store_section_picks_a_backend_and_never_shows_a_password() {
        let c = Config::from_toml("").expect("defaults");
        assert_eq!(c.store.backend, StoreBackend::Redb);
        let c = Config::from_toml(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://app:s3cret@db:5432/auth?sslmode=require\"\npool_size = 4\n",
        )
        .expect("postgres");
        assert_eq!(c.store.backend, StoreBackend::Postgres);
        assert_eq!(c.store.pool_size, 4);
        let summary = c.summary();
        assert!(!summary.contains("s3cret"), "{summary}");
        assert!(
            summary.contains("store.url = \"postgres://app:***@db:5432/auth?sslmode=require\""),
            "{summary}"
        );
        for bad in [
            "[store]\nbackend = \"postgres\"\n",
            "[store]\nbackend = \"mysql\"\n",
            "[store]\nurl = \"postgres://x@y/z\"\n",
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://x@y/z\"\nurl_file = \"/f\"\n",
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://x@y/z\"\npool = 3\n",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
        assert_eq!(redact_password("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_password("postgres://u:p@h"), "postgres://u:***@h");
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::from_toml("").expect("defaults are valid");
        assert_eq!(c.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.issuer, "Cloudheed");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.accounts.default_plan, "free");
        assert_eq!(c.tokens.issuer, "cloudheed-auth");
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(c.tokens.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(c.passwords.min_length, 8);
        assert_eq!(
            (
                c.passwords.scrypt_log_n,
                c.passwords.scrypt_r,
                c.passwords.scrypt_p
            ),
            (17, 8, 1)
        );
        assert!(c.passwords.max_concurrent_hashes >= 1);
        assert_eq!(c.api_keys.prefix, "ch_live_");
        assert_eq!(c.api_keys.max_per_user, 100);
        assert!(c.rate_limits.enabled);
        assert_eq!(c.limits.max_body_bytes, 65_536);
        assert_eq!(c.limits.max_header_bytes, 16_384);
        assert_eq!(c.limits.max_connections, 1024);
    }

    #[test]
    fn the_shipped_example_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../config/cloudheed-auth.toml");
        let c = Config::from_toml(text).expect("example config is valid");
        assert_eq!(c.summary(), Config::default().summary());
    }

    #[test]
    fn the_summary_shows_every_setting_as_written() {
        let c = Config::from_toml(
            "[tokens]\naccess_ttl = \"900s\"\n[rate_limits]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        )
        .expect("valid");
        let summary = c.summary();
        assert!(
            summary.contains("tokens.access_ttl = \"900s\"\n"),
            "{summary}"
        );
        assert!(
            summary.contains("tokens.refresh_ttl = \"30d\"\n"),
            "defaults as the example writes them"
        );
        assert!(summary.contains("rate_limits.trusted_proxies = [\"10.0.0.0/8\"]\n"));
        assert!(summary.contains("limits.max_connections_per_address = 64\n"));
        // Every key of the example file appears, so a new key cannot be left out.
        let example: toml::Table = include_str!("../config/cloudheed-auth.toml")
            .parse()
            .expect("toml");
        for (k, v) in &example {
            let keys: Vec<String> = match v {
                toml::Value::Table(t) => t.keys().map(|sub| format!("{k}.{sub}")).collect(),
                _ => vec![k.clone()],
            };
            for key in keys {
                assert!(
                    summary.contains(&format!("\n{key} = "))
                        || summary.starts_with(&format!("{key} = ")),
                    "{key} missing"
                );
            }
        }
    }

    #[test]
    fn reads_every_section() {
        let c = Config::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/x"
            log_format = "json"
            [tokens]
            access_ttl = "90s"
            refresh_reuse_grace = "10s"
            [passwords]
            scrypt_log_n = 10
            max_concurrent_hashes = 3
            [rate_limits]
            trusted_proxies = ["10.0.0.1", "::1"]
            "#,
        )
        .expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(90));
        assert_eq!(c.tokens.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.passwords.scrypt_log_n, 10);
        assert_eq!(c.passwords.max_concurrent_hashes, 3);
        assert_eq!(c.rate_limits.trusted_proxies.len(), 2);
    }

    #[test]
    fn reports_every_problem_at_once_naming_each_key() {
        let err = Config::from_toml(
            r#"
            listen = "nowhere"
            colour = "blue"
            [tokens]
            access_ttl = "15 minutes"
            refresh_ttl = "0s"
            [passwords]
            scrypt_log_n = 25
            min_length = "eight"
            [limits]
            max_conections = 5
            [nonsense]
            "#,
        )
        .expect_err("invalid");
        let all = err.problems.join("\n");
        for key in [
            "listen:",
            "colour: unknown key",
            "tokens.access_ttl:",
            "tokens.refresh_ttl: \"0s\" must be greater than zero",
            "passwords.scrypt_log_n: 25 must be between 10 and 20",
            "passwords.min_length: must be an integer",
            "limits.max_conections: unknown key",
            "nonsense: unknown key",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(err.problems.len(), 8, "{all}");
    }

    #[test]
    fn api_key_settings_that_would_break_requests_are_refused() {
        let err = Config::from_toml(
            "[api_keys]\nprefix = \"eyJ_\"\nscopes = [\"a b\", \"\", \"ok:read\"]\nmax_expires_in = \"40000d\"\n",
        )
        .expect_err("invalid");
        let all = err.problems.join("\n");
        assert!(all.contains("api_keys.prefix"), "{all}");
        assert!(all.contains("\"a b\" is not a scope"), "{all}");
        assert!(all.contains("\"\" is not a scope"), "{all}");
        assert!(all.contains("api_keys.max_expires_in"), "{all}");
        assert!(!all.contains("ok:read"), "{all}");
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        let ok = Config::from_toml(
            "[cors]\nallowed_origins = [\"https://app.example.com\", \"http://localhost:3000\"]\n",
        );
        assert!(ok.is_ok());
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "app.example.com",
            "ftp://x",
        ] {
            let text = format!("[cors]\nallowed_origins = [{bad:?}]\n");
            assert!(Config::from_toml(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_are_count_slash_duration() {
        assert_eq!(
            Rate::parse("10/1m"),
            Ok(Rate {
                count: 10,
                per: Duration::from_secs(60)
            })
        );
        for bad in ["10", "0/1m", "10/0s", "-1/1m", "10/1x", "ten/1m", "10/1m/2"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let err =
            Config::from_toml("[rate_limits]\nlogin = [\"5/1m\", \"oops\"]\n").expect_err("bad");
        assert!(err.problems[0].starts_with("rate_limits.login:"), "{err}");
    }

    #[test]
    fn mail_settings_default_to_files_and_a_url_from_listen() {
        let c = Config::from_toml("listen = \"0.0.0.0:9000\"\n").expect("valid");
        assert_eq!(c.public_url, "http://0.0.0.0:9000");
        assert_eq!(c.email.transport, MailTransport::File);
        assert_eq!(c.email.smtp_url, None);
        assert_eq!(c.email.from, "cloudheed-auth <noreply@localhost>");
        assert!(c.email.verify_on_register);
        assert_eq!(c.email.verification_ttl, Duration::from_secs(86_400));
        assert_eq!(c.email.reset_ttl, Duration::from_secs(1800));
        assert_eq!(c.email.change_ttl, Duration::from_secs(3600));
        assert_eq!(c.email.max_attempts, 8);
        let c = Config::from_toml(
            "public_url = \"https://auth.example.com\"\n[email]\ntransport = \"smtp\"\nsmtp_url = \"smtps://mail.example.com\"\nsmtp_username = \"me\"\nsmtp_password_file = \"/run/credentials/pw\"\n",
        )
        .expect("valid");
        assert_eq!(c.public_url, "https://auth.example.com");
        assert_eq!(
            c.email.smtp_url,
            Some(SmtpUrl {
                implicit_tls: true,
                host: "mail.example.com".into(),
                port: 465
            })
        );
        assert!(c
            .summary()
            .contains("email.smtp_password_file = \"/run/credentials/pw\"\n"));
    }

    #[test]
    fn smtp_urls_are_scheme_host_and_port() {
        let parse = |s: &str| SmtpUrl::parse(s).map(|u| (u.implicit_tls, u.host, u.port));
        assert_eq!(
            parse("smtp://127.0.0.1:2525"),
            Ok((false, "127.0.0.1".into(), 2525))
        );
        assert_eq!(
            parse("smtp://mail.example.com"),
            Ok((false, "mail.example.com".into(), 587))
        );
        assert_eq!(parse("smtps://[::1]:465"), Ok((true, "::1".into(), 465)));
        for bad in [
            "mail.example.com:25",
            "http://mail.example.com",
            "smtp://",
            "smtp://user:pw@host:25",
            "smtp://host:25/path",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://[::1",
        ] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(SmtpUrl::parse("smtp://localhost:25")
            .expect("ok")
            .is_loopback());
        assert!(SmtpUrl::parse("smtp://[::1]:25").expect("ok").is_loopback());
        assert!(!SmtpUrl::parse("smtp://10.0.0.1:25")
            .expect("ok")
            .is_loopback());
    }

    #[test]
    fn bad_mail_settings_are_refused_naming_the_key() {
        let err = Config::from_toml(
            r#"
            public_url = "https://auth.example.com/"
            [email]
            transport = "carrier-pigeon"
            from = "not an address"
            max_attempts = 0
            reset_ttl = "0s"
            smtp_username = "me"
            "#,
        )
        .expect_err("invalid");
        let all = err.problems.join("\n");
        for key in [
            "public_url: \"https://auth.example.com/\" must be http(s)://host[:port]",
            "email.transport:",
            "email.from:",
            "email.max_attempts: 0 must be between 1 and 100",
            "email.reset_ttl:",
            "email.smtp_password_file:",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        let err = Config::from_toml("[email]\ntransport = \"smtp\"\n").expect_err("no url");
        assert_eq!(
            err.problems,
            ["email.smtp_url: is required when transport = \"smtp\""]
        );
        let err = Config::from_toml("[email]\nsmtp_url = \"smtp://x/y\"\n").expect_err("bad url");
        assert!(err.problems[0].starts_with("email.smtp_url:"), "{err}");
        for bad in ["example.com", "https://a.example.com/path", "ftp://x"] {
            let text = format!("public_url = {bad:?}\n");
            assert!(Config::from_toml(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_bad_toml_with_a_message() {
        let err = Config::from_toml("listen = ").expect_err("invalid");
        assert!(err.problems[0].starts_with("not valid TOML"));
    }
}
