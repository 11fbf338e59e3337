//! The command line, as clap derive types only.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// cloudheed-auth: a self-hosted authentication server in one binary.
#[derive(Debug, Parser)]
#[command(name = "cloudheed-auth", version, about, long_about = None)]
pub struct Cli {
    /// Config file (TOML). Without one, built-in defaults are used.
    #[arg(
        long,
        short,
        global = true,
        env = "CLOUDHEED_AUTH_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print admin answers as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Listen address; overrides `listen` in the config file.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Data directory; overrides `data_dir` in the config file.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Validate the config file, print the effective settings, and exit.
    CheckConfig,
    /// Manage accounts (on the running server, or on the database when it is stopped).
    User {
        /// What to do.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage signing keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The security audit log: list, export, verify, checkpoint, prune.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write a consistent snapshot of the database to OUT (a new file).
    Backup {
        /// Where to write the backup.
        out: PathBuf,
    },
    /// Write every record (accounts, sessions, keys, 2FA state, signing keys, audit log) as JSON
    /// lines to OUT (a new file), to move them to another backend or host.
    Export {
        /// Where to write the export.
        out: PathBuf,
    },
    /// Fill an empty data dir from an export; the server must be stopped.
    Import {
        /// The export to read.
        input: PathBuf,
    },
    /// Fill an empty data dir from a backup; the server must be stopped.
    Restore {
        /// The backup to restore.
        input: PathBuf,
        /// Replace the database of a non-empty data dir.
        #[arg(long)]
        force: bool,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Every account.
    List,
    /// One account.
    Show {
        /// Its email.
        email: String,
    },
    /// Refuse the account's logins, tokens and API keys; end its sessions.
    Disable {
        /// Its email.
        email: String,
    },
    /// Allow the account again.
    Enable {
        /// Its email.
        email: String,
    },
    /// Set the account's plan.
    SetPlan {
        /// Its email.
        email: String,
        /// The plan.
        plan: String,
    },
    /// Turn the account's two-factor authentication off.
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// Its email.
        email: String,
    },
    /// Mark the account's email as verified.
    VerifyEmail {
        /// Its email.
        email: String,
    },
    /// Print a one-time password-reset link for the account (for servers without mail).
    ResetPassword {
        /// Its email.
        email: String,
    },
    /// Delete the account with its sessions, API keys and two-factor state.
    Delete {
        /// Its email.
        email: String,
    },
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// The signing keys and which one signs.
    List,
    /// Sign new tokens with a new key; older keys keep verifying until their tokens expire.
    Rotate,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Entries, newest first.
    List {
        /// Only this account's (a deleted account's too).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// Only of this type (e.g. login_failed, api_key_created).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only since TIME: RFC 3339 ("2026-12-01T00:00:00Z") or an age ("24h", "7d").
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most N entries.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// Every entry, oldest first, one JSON object per line (for a SIEM).
    Export {
        /// The file to write (must not exist).
        #[arg(long, value_name = "OUT")]
        jsonl: PathBuf,
    },
    /// Check the hash chain (exit 1 naming the first broken entry); with a checkpoint, also that
    /// the log up to it was not rewritten.
    Verify {
        /// A checkpoint saved from `audit checkpoint`.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the log's head signed with the server's current Ed25519 key (JSON; keep it
    /// elsewhere).
    Checkpoint,
    /// Prune entries older than `audit.retention` now (the server also does so hourly).
    Prune,
}
