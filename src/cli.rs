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
}
