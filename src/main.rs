//! The `paykeep` command: `serve` runs the service (on the embedded `config.toml` unless
//! `--config` names another file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use paykeep::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "paykeep",
    version,
    about = "Durable, idempotent payments over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the merchant API.
    Serve {
        /// A config file layered over the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (overrides server.bind).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Store directory (overrides store.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            bind,
            data_dir,
            log_format,
        } => {
            init_logging(log_format);
            let overrides = Overrides { bind, data_dir };
            let config = match Config::load(config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("paykeep: {e}");
                    return ExitCode::from(2);
                }
            };
            serve(config)
        }
    }
}

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paykeep: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match paykeep::app::start(config, shutdown_signal()).await {
            Ok(running) => {
                // Tests and scripts read the bound address from this line.
                println!("paykeep listening on http://{}", running.addr);
                tracing::info!(addr = %running.addr, "listening");
                running.wait().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paykeep: {e}");
                ExitCode::FAILURE
            }
        }
    })
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
    {
        let _ = ctrl_c.await;
    }
}
