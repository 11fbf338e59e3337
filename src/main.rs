//! The binary: parse the command line, load the config, run the chosen subcommand, and map
//! failures to exit codes (2 for a bad config, 1 for anything else). The only code that reads
//! the environment or exits the process.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cloudheed_auth::admin::AdminCommand;
use cloudheed_auth::cli::{AuditAction, Cli, Command, KeysAction, UserAction};
use cloudheed_auth::{admin, App, AppState, Config, StartupError, StoreError};
use serde_json::Value;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            eprint!("cloudheed-auth: {e}");
            return ExitCode::from(2);
        }
    };
    let json = cli.json;
    match cli.command {
        Command::User { action } => print_answer(
            admin::run(&config, user_command(action), open_stopped),
            json,
        ),
        Command::Keys { action } => print_answer(
            admin::run(&config, keys_command(action), open_stopped),
            json,
        ),
        Command::Audit { action } => audit(&config, action, json),
        Command::Backup { out } => print_answer(admin::backup(&config, &out, open_stopped), json),
        Command::Export { out } => print_answer(admin::export(&config, &out, open_stopped), json),
        Command::Import { input } => print_answer(admin::import(&config, &input), json),
        Command::Restore { input, force } => {
            let restored = admin::restore(&config, &input, force).map(|()| {
                // The restored log's first new entry says so; the restore stands either way.
                let from = input.display().to_string();
                let cmd = AdminCommand::AuditRestored { from };
                if let Err(e) = admin::run(&config, cmd, open_stopped) {
                    eprintln!("cloudheed-auth: warning: the restore is not in the audit log: {e}");
                }
                let into = config.data_dir.display();
                Value::String(format!("restored {} into {into}", input.display()))
            });
            // Restore has always reported in words, `--json` or not.
            print_answer(restored, false)
        }
        Command::CheckConfig => {
            print!("configuration is valid\n{}", config.summary());
            ExitCode::SUCCESS
        }
        Command::Serve { listen, data_dir } => {
            config.listen = listen.unwrap_or(config.listen);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            serve(config, cli.config.as_deref())
        }
    }
}

fn user_command(action: UserAction) -> AdminCommand {
    match action {
        UserAction::List => AdminCommand::UserList,
        UserAction::Show { email } => AdminCommand::UserShow { email },
        UserAction::Disable { email } => AdminCommand::UserDisable { email },
        UserAction::Enable { email } => AdminCommand::UserEnable { email },
        UserAction::SetPlan { email, plan } => AdminCommand::UserSetPlan { email, plan },
        UserAction::Reset2fa { email } => AdminCommand::UserReset2fa { email },
        UserAction::VerifyEmail { email } => AdminCommand::UserVerifyEmail { email },
        UserAction::Delete { email } => AdminCommand::UserDelete { email },
        UserAction::ResetPassword { email } => AdminCommand::UserResetPassword { email },
    }
}

fn audit(config: &Config, action: AuditAction, json: bool) -> ExitCode {
    let cmd = match action {
        AuditAction::Export { jsonl } => {
            return print_answer(admin::export_audit(config, &jsonl, open_stopped), json)
        }
        AuditAction::List {
            user,
            kind,
            since,
            limit,
        } => {
            let since = match since.as_deref().map(since_time).transpose() {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            AdminCommand::AuditList {
                user,
                kind,
                since,
                limit,
            }
        }
        AuditAction::Verify { checkpoint } => {
            let checkpoint = match checkpoint.map(std::fs::read_to_string).transpose() {
                Ok(c) => c,
                Err(e) => return fail(&format!("cannot read the checkpoint: {e}")),
            };
            AdminCommand::AuditVerify { checkpoint }
        }
        // A checkpoint is kept as printed and read back by `verify`: always JSON.
        AuditAction::Checkpoint => {
            return print_answer(
                admin::run(config, AdminCommand::AuditCheckpoint, open_stopped),
                true,
            )
        }
        AuditAction::Prune => AdminCommand::AuditPrune,
    };
    print_answer(admin::run(config, cmd, open_stopped), json)
}

/// `--since`: an RFC 3339 time, or an age before now ("24h", "7d").
fn since_time(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => humantime::parse_duration(text)
            .ok()
            .and_then(|age| now.checked_sub(age))
            .ok_or_else(|| {
                format!("--since {text:?} is neither an RFC 3339 time nor an age like 24h")
            })?,
    };
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("--since {text:?} is before 1970"))?
        .as_secs();
    i64::try_from(secs).map_err(|_| format!("--since {text:?} is too far ahead"))
}

fn keys_command(action: KeysAction) -> AdminCommand {
    match action {
        KeysAction::List => AdminCommand::KeysList,
        KeysAction::Rotate => AdminCommand::KeysRotate,
    }
}

/// An admin command's outcome: the answer on stdout, as JSON with `--json` and for people
/// otherwise; a failure as [`fail`].
fn print_answer(outcome: Result<Value, String>, json: bool) -> ExitCode {
    match outcome {
        Ok(v) if json => println!("{v}"),
        Ok(v) => print!("{}", admin::render(&v)),
        Err(e) => return fail(&e),
    }
    ExitCode::SUCCESS
}

/// A one-line reason on stderr and exit code 1.
fn fail(reason: &str) -> ExitCode {
    eprintln!("cloudheed-auth: {reason}");
    ExitCode::from(1)
}

/// A stopped server's state, built as `serve` builds it, for admin commands run without one.
async fn open_stopped(config: Config) -> Result<Arc<AppState>, String> {
    match App::build(config).await {
        Ok(app) => Ok(app.state().clone()),
        // redb's lock: another process has the database, yet no server answered the socket.
        Err(StartupError::Store(StoreError::Backend(b)))
            if b.to_string().contains("already open") =>
        {
            Err("a server holds the database but its admin socket does not answer".into())
        }
        Err(other) => Err(other.to_string()),
    }
}

/// Run the server until a signal stops it; a failed start is one log line and exit code 2 for
/// a bad config, 1 otherwise.
fn serve(config: Config, file: Option<&std::path::Path>) -> ExitCode {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    cloudheed_auth::telemetry::init(config.log_format, &filter);
    match run_server(config, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, through the log (stderr), in the configured format.
            tracing::error!("cannot start: {e}");
            ExitCode::from(match e {
                StartupError::Config(_) => 2,
                _ => 1,
            })
        }
    }
}

fn run_server(config: Config, file: Option<&std::path::Path>) -> Result<(), StartupError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| StartupError::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listen = config.listen;
        let data_dir = config.data_dir.clone();
        let app = App::build(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| StartupError::Other(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(format!("listener address: {e}")))?;
        let signal = cloudheed_auth::shutdown::install()
            .map_err(|e| StartupError::Other(format!("cannot install signal handlers: {e}")))?;
        let notify_socket = std::env::var("NOTIFY_SOCKET").ok();
        let shutdown = async {
            signal.await;
            cloudheed_auth::notify::notify(notify_socket.as_deref(), "STOPPING=1");
        };
        tracing::info!(
            %addr,
            version = env!("CARGO_PKG_VERSION"),
            data_dir = %data_dir.display(),
            config = %file.map_or("(built-in defaults)".into(), |f| f.display().to_string()),
            "listening"
        );
        cloudheed_auth::notify::notify(notify_socket.as_deref(), "READY=1");
        app.serve(listener, shutdown).await;
        tracing::info!("stopped");
        Ok(())
    })
}
