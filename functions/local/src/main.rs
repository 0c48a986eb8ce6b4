//! `tempest`: every Tempest function in one process (`tempest serve`), plus the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tempest_core::Config;

#[derive(Parser)]
#[command(
    name = "tempest",
    version,
    about = "Dapr building blocks and tracing as stateless functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every function in one process on the ports clients expect.
    Serve(ServeArgs),
    /// List the functions this build provides.
    Functions,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML config file (default: ./tempest.yaml when it exists).
    #[arg(long, env = "TEMPEST_CONFIG")]
    config: Option<PathBuf>,
    /// Folder of Dapr resource files (Component, Subscription, Configuration, Resiliency).
    #[arg(long = "resources-path")]
    resources_path: Option<PathBuf>,
    /// Declare an app: ID=URL (repeatable).
    #[arg(long = "app", value_name = "ID=URL")]
    apps: Vec<String>,
    /// Dapr HTTP API port.
    #[arg(long = "dapr-http-port")]
    dapr_http_port: Option<u16>,
    /// Address to listen on.
    #[arg(long = "bind")]
    bind: Option<String>,
    /// Data folder for the embedded stores.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Tempest's own app id.
    #[arg(long = "app-id")]
    app_id: Option<String>,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("tempest.yaml");
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None if default_file.exists() => Config::from_file(&default_file)?,
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(p) = &args.resources_path {
        config.resources_path = Some(p.clone());
    }
    for spec in &args.apps {
        let (id, url) = tempest_core::config::parse_app(spec)?;
        config.apps.insert(id, url);
    }
    if let Some(port) = args.dapr_http_port {
        config.dapr.http_port = port;
    }
    if let Some(bind) = &args.bind {
        config.dapr.bind = bind.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(id) = &args.app_id {
        config.app_id = id.clone();
    }
    Ok(config)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    let rt = Arc::new(tempest_components::build_runtime(&config).await?);
    let addr: SocketAddr = format!("{}:{}", config.dapr.bind, config.dapr.http_port)
        .parse()
        .with_context(|| {
            format!(
                "invalid listen address {}:{}",
                config.dapr.bind, config.dapr.http_port
            )
        })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (Dapr HTTP API)"))?;
    let components: Vec<String> = rt
        .state
        .iter()
        .map(|(n, c)| format!("{n} ({})", c.type_name))
        .chain(
            rt.pubsub
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.type_name)),
        )
        .chain(
            rt.secrets
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.type_name)),
        )
        .collect();
    tracing::info!(%addr, apps = ?rt.apps.keys().collect::<Vec<_>>(), components = ?components, "Dapr HTTP API listening");
    let _delivery = tempest_catalog::start_delivery(rt.clone());
    axum::serve(listener, tempest_catalog::dapr_http(rt))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("Dapr HTTP API server failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEMPEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Functions => {
            for f in tempest_catalog::CATALOG {
                println!(
                    "{:<10} {:<8} {}",
                    f.name,
                    format!("{:?}", f.trigger).to_lowercase(),
                    f.summary
                );
            }
            Ok(())
        }
    }
}
