//! The `paykeep` command: `serve` runs the service (on the embedded `config.toml` unless
//! `--config` names another file); `sandbox` runs the Stripe-compatible test provider
//! (`paykeep::provider::sandbox`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use paykeep::config::{Config, Overrides};
use paykeep::provider::sandbox::events::{WebhookMode, WebhookTarget};
use paykeep::provider::sandbox::SandboxConfig;

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
    /// Run the Stripe-compatible sandbox provider with a durable ledger.
    Sandbox(SandboxArgs),
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:12111")]
    bind: SocketAddr,
    /// Ledger directory.
    #[arg(long, default_value = "data/sandbox")]
    data_dir: PathBuf,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// How late the first call of a `pm_sim_timeout` key answers, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    stall_ms: u64,
    /// The only API key accepted (default: any `sk_…` key).
    #[arg(long)]
    secret_key: Option<String>,
    /// Send signed Stripe events here.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Signing secret of the events.
    #[arg(long, default_value = "whsec_demo_secret")]
    webhook_secret: String,
    /// How events are sent.
    #[arg(long, value_enum, default_value_t = WebhookMode::Normal)]
    webhook_mode: WebhookMode,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
        Command::Sandbox(args) => {
            init_logging(args.log_format);
            sandbox(args)
        }
    }
}

fn sandbox(args: SandboxArgs) -> ExitCode {
    let config = SandboxConfig {
        bind: args.bind,
        data_dir: args.data_dir,
        latency: std::time::Duration::from_millis(args.latency_ms),
        stall: std::time::Duration::from_millis(args.stall_ms),
        secret_key: args.secret_key,
        webhook: args.webhook_url.map(|url| WebhookTarget {
            url,
            secret: args.webhook_secret,
            mode: args.webhook_mode,
        }),
    };
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
        match paykeep::provider::sandbox::start(config, shutdown_signal()) {
            Ok((addr, server)) => {
                // Tests and scripts read the bound address from this line.
                println!("paykeep sandbox listening on http://{addr}");
                let _ = server.await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paykeep: {e}");
                ExitCode::FAILURE
            }
        }
    })
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
