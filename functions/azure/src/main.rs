//! `tempest-azure`: Tempest as an Azure Functions custom handler. Packaged as `handler` at the
//! root of the app, beside `host.json` and one folder per function (`write-app` writes them).
//! The Functions host starts it with `FUNCTIONS_CUSTOMHANDLER_PORT`; configuration comes from
//! the `TEMPEST_*` app settings.

mod app;
mod handler;
mod invocation;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tempest-azure",
    version,
    about = "Tempest's Azure Functions custom handler"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (the default).
    Serve,
    /// Write host.json, local.settings.json and the function folders into DIR.
    WriteApp {
        /// The app folder.
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Freed memory stays for the next call instead of being faulted in again (BENCHMARKS.md).
    tempest_blocks::malloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::WriteApp { dir } => {
            app::write(&dir).with_context(|| format!("cannot write the app to {}", dir.display()))
        }
        Command::Serve => {
            let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
                .context("FUNCTIONS_CUSTOMHANDLER_PORT is not set: the Functions host sets it")?
                .parse()
                .context("FUNCTIONS_CUSTOMHANDLER_PORT is not a port number")?;
            let config = tempest_catalog::function_host_config()?;
            let router = handler::router(config).await?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
            tracing::info!(port, "custom handler listening");
            axum::serve(listener, router)
                .await
                .context("custom handler server failed")
        }
    }
}
