//! The PostgreSQL backend: the same use-case operations as the redb store, over a pool of
//! connections, for deployments that run several instances on one database.
//!
//! Rows keep the records `records.rs` defines (CBOR, `record` columns) beside the columns that
//! index them, so both backends decode one format and apply the same domain rules. Every write
//! transaction first takes one advisory lock per schema (`pg_advisory_xact_lock`): writes are
//! serialized as redb serializes them, across every instance, so a use case reads, decides and
//! writes without another instance in between (two refreshes of one token, a login racing a
//! disable, the audit chain's next link). Reads take no lock. Migrations run at start under a
//! session advisory lock, so instances starting together migrate once.

mod ops;
mod rows;

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::StoreError;

/// The schema this build reads and writes on PostgreSQL (its own numbering; redb's is in
/// `schema.rs`).
pub const PG_SCHEMA_VERSION: i64 = 3;

/// Each migration, in order: migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id text PRIMARY KEY,
    email_key text NOT NULL UNIQUE,
    record bytea NOT NULL
);
CREATE TABLE sessions (
    id text PRIMARY KEY,
    user_id text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at, id);
CREATE TABLE refresh_tokens (
    hash bytea PRIMARY KEY,
    session_id text NOT NULL
);
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE api_keys (
    hash bytea PRIMARY KEY,
    id text NOT NULL UNIQUE,
    user_id text NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX api_keys_by_user ON api_keys (user_id);
CREATE TABLE outbox (
    id text PRIMARY KEY,
    next_attempt_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE TABLE mail_tokens (
    hash bytea PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE latest_mail_token (
    key text PRIMARY KEY,
    hash bytea NOT NULL
);
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    user_id text,
    record bytea NOT NULL
);
CREATE INDEX audit_by_user ON audit (user_id, seq);
CREATE TABLE audit_meta (
    name text PRIMARY KEY,
    record bytea NOT NULL
);
"#,
    r#"
CREATE TABLE refresh_grace (
    hash bytea PRIMARY KEY,
    sealed bytea NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX refresh_grace_by_end ON refresh_grace (expires_at);
"#,
    r#"
CREATE TABLE shared_limits (
    key text PRIMARY KEY,
    state bytea,
    expires_at bigint NOT NULL
);
CREATE INDEX shared_limits_by_end ON shared_limits (expires_at);
"#,
];

/// The advisory-lock class of this server's locks; the second key is the schema's hash, so
/// databases (or schemas) of unrelated deployments never wait on each other.
const LOCK_CLASS: i32 = 0x4348; // "CH"
const MIGRATION_CLASS: i32 = 0x4349;

/// A pool of connections to one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The bearer-check reads, kept briefly: other instances' changes show within `CACHE_AGE`,
    /// this one's at once.
    cache: Arc<super::read_cache::ReadCache>,
}

/// How long a cached session or key read is used at most: a logout, revoke or disable on another
/// instance holds here within it.
const CACHE_AGE: std::time::Duration = std::time::Duration::from_millis(500);

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl PgStore {
    /// Connect to `url` with at most `pool_size` connections (TLS through rustls when the URL's
    /// `sslmode` asks for it, with the web's root certificates), and bring the schema up to
    /// date: refused when the database was migrated by a newer cloudheed-auth.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        caches: (usize, usize),
        ca_file: Option<&std::path::Path>,
    ) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Setup(format!("store.url: {e}")))?;
        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(file) = ca_file {
            use rustls_pki_types::pem::PemObject;
            let bad = |e: &dyn std::fmt::Display| {
                StoreError::Setup(format!("store.ca_file {}: {e}", file.display()))
            };
            let certs =
                rustls_pki_types::CertificateDer::pem_file_iter(file).map_err(|e| bad(&e))?;
            let mut added = 0;
            for cert in certs {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad(&"no certificate in it"));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Setup(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Setup(format!("store pool: {e}")))?;
        let store = PgStore {
            pool,
            cache: Arc::new(super::read_cache::ReadCache::shared(
                caches.0, caches.1, CACHE_AGE,
            )),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext(current_schema()))",
                &[&MIGRATION_CLASS],
            )
            .await?;
        let result = async {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value bigint NOT NULL)",
                )
                .await?;
            let found: Option<i64> = client
                .query_opt("SELECT value FROM meta WHERE name = 'schema_version'", &[])
                .await?
                .map(|r| r.get(0));
            let found = found.unwrap_or(0);
            if found > PG_SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found: found as u64,
                    supported: PG_SCHEMA_VERSION as u64,
                });
            }
            for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                let tx = client.transaction().await?;
                tx.batch_execute(step).await?;
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', $1)
                     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    &[&(i as i64 + 1)],
                )
                .await?;
                tx.commit().await?;
                tracing::info!(version = i + 1, "migrated the PostgreSQL schema");
            }
            Ok(())
        }
        .await;
        client
            .execute(
                "SELECT pg_advisory_unlock($1, hashtext(current_schema()))",
                &[&MIGRATION_CLASS],
            )
            .await?;
        result
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Sessions and API keys held by the read-through caches.
    pub fn cached(&self) -> (usize, usize) {
        self.cache.held()
    }

    /// After a commit: reads of these users cached before it go stale here at once.
    fn touched(&self, users: &[&str]) {
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        self.cache.invalidate(&users);
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.pool.get().await?)
    }
}

/// Begin a write transaction holding the schema's write lock until it ends.
async fn write_tx(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&LOCK_CLASS],
    )
    .await?;
    Ok(tx)
}
