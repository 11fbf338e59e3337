//! The binary: parse the command line, load the config, run the chosen subcommand, and map
//! failures to exit codes (2 for a bad config, 1 for anything else). The only code that reads
//! the environment or exits the process.

use std::process::ExitCode;

use clap::Parser;
use cloudheed_auth::cli::{Cli, Command, KeysAction, UserAction};
use cloudheed_auth::service::admin::AdminCommand;
use cloudheed_auth::{App, Config, StartupError};

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
    let cmd = match cli.command {
        Command::User { action } => match action {
            UserAction::List => AdminCommand::UserList,
            UserAction::Show { email } => AdminCommand::UserShow { email },
            UserAction::Disable { email } => AdminCommand::UserDisable { email },
            UserAction::Enable { email } => AdminCommand::UserEnable { email },
            UserAction::SetPlan { email, plan } => AdminCommand::UserSetPlan { email, plan },
            UserAction::Reset2fa { email } => AdminCommand::UserReset2fa { email },
            UserAction::VerifyEmail { email } => AdminCommand::UserVerifyEmail { email },
        },
        Command::Keys { action } => match action {
            KeysAction::List => AdminCommand::KeysList,
            KeysAction::Rotate => AdminCommand::KeysRotate,
        },
        Command::Backup { out } => {
            return match cloudheed_auth::admin::backup(&config, &out) {
                Ok(v) if json => {
                    println!("{v}");
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    print!("{}", cloudheed_auth::admin::render(&v));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        Command::Restore { input, force } => {
            return match cloudheed_auth::admin::restore(&config, &input, force) {
                Ok(()) => {
                    println!(
                        "restored {} into {}",
                        input.display(),
                        config.data_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        Command::CheckConfig => {
            print!("configuration is valid\n{}", config.summary());
            return ExitCode::SUCCESS;
        }
        Command::Serve { listen, data_dir } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            cloudheed_auth::telemetry::init(config.log_format, &filter);
            return match serve(config, cli.config.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One line, through the log (stderr), in the configured format.
                    tracing::error!("cannot start: {e}");
                    ExitCode::from(match e {
                        StartupError::Config(_) => 2,
                        _ => 1,
                    })
                }
            };
        }
    };
    match cloudheed_auth::admin::run(&config, cmd) {
        Ok(v) if json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", cloudheed_auth::admin::render(&v));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A one-line reason on stderr and exit code 1.
fn fail(reason: &str) -> ExitCode {
    eprintln!("cloudheed-auth: {reason}");
    ExitCode::from(1)
}

fn serve(config: Config, file: Option<&std::path::Path>) -> Result<(), StartupError> {
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
