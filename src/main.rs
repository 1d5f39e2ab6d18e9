//! The `paykeep` command: `serve` runs the service (on the embedded `config.toml` unless
//! `--config` names another file); `store check` verifies a store directory as `serve`'s
//! recovery would, without serving; `sandbox` runs the Stripe-compatible test provider
//! (`paykeep::provider::sandbox`).
//!
//! Exit codes: 0 success; 1 failure to start (a port in use, a store in use, an I/O error);
//! 2 an invalid configuration; 3 a store recovery cannot vouch for (DESIGN §6: damage, a
//! store of another schema), with a message naming each file, offset and what was expected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use paykeep::config::{Config, Overrides};
use paykeep::logging::{LogFormat, LogSink};
use paykeep::provider::sandbox::events::{WebhookMode, WebhookTarget};
use paykeep::provider::sandbox::SandboxConfig;
use paykeep::store::{Durability, OpenOptions, StoreError};

/// Exit code of a store that recovery cannot vouch for (DESIGN §6).
const EXIT_STORE_DAMAGED: u8 = 3;
/// Exit code of an invalid configuration.
const EXIT_CONFIG: u8 = 2;

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
        /// Start even on a store that recovery cannot vouch for: keep every whole log record
        /// and sled's data if it opens, log what is dropped at error level, move the unused
        /// files to `<data dir>/damaged-<unix ms>/`, and write a critical
        /// `system.store_recovered_with_loss` event.
        #[arg(long)]
        accept_data_loss: bool,
    },
    /// Inspect the store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run the Stripe-compatible sandbox provider with a durable ledger.
    Sandbox(SandboxArgs),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Verify a store directory as `serve` would at start-up, without serving or changing
    /// it: exit 0 if sound, 3 with every finding otherwise.
    Check {
        /// A config file layered over the embedded defaults (for store.data_dir).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Store directory (overrides store.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
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

/// Logs to stderr ([`paykeep::logging`]).
fn init_logging(format: LogFormat) {
    paykeep::logging::init(format, LogSink::Stderr);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            bind,
            data_dir,
            log_format,
            accept_data_loss,
        } => {
            init_logging(log_format);
            let overrides = Overrides { bind, data_dir };
            let config = match Config::load(config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("paykeep: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            paykeep::redact::set_service_log_secrets(config.secrets());
            let store_options = OpenOptions {
                accept_data_loss,
                ..OpenOptions::new(Durability::FlushAndSync)
            };
            serve(config, store_options)
        }
        Command::Store(StoreCommand::Check { config, data_dir }) => {
            init_logging(LogFormat::Text);
            let overrides = Overrides {
                bind: None,
                data_dir,
            };
            match Config::load(config.as_deref(), &overrides) {
                Ok(c) => store_check(&c.store.data_dir),
                Err(e) => {
                    eprintln!("paykeep: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
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
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match paykeep::provider::sandbox::start(
            config,
            std::sync::Arc::new(paykeep::clock::SystemClock),
            shutdown_signal(),
        ) {
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

/// The multi-thread tokio runtime each server runs on; a failure is reported here.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("paykeep: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `paykeep store check`: prints a summary (sound) or every finding (exit 3).
fn store_check(dir: &std::path::Path) -> ExitCode {
    match paykeep::store::check(dir) {
        Ok(report) if report.findings.is_empty() => {
            println!(
                "paykeep: store {} is sound: {} log segment(s), {} record(s) to apply, through LSN {}",
                dir.display(),
                report.segments,
                report.records,
                report.end_lsn
            );
            if let Some((segment, offset)) = report.torn_tail {
                println!(
                    "paykeep: a torn tail at {} offset {offset} (a record never acknowledged) will be ignored",
                    segment.display()
                );
            }
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!(
                "paykeep: store {} cannot be vouched for; `paykeep serve` refuses it:",
                dir.display()
            );
            for finding in &report.findings {
                println!("  - {finding}");
            }
            ExitCode::from(EXIT_STORE_DAMAGED)
        }
        Err(e) => {
            eprintln!("paykeep: {e}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// 3 for a store recovery cannot vouch for, 1 for anything else.
fn exit_code_of(error: &StoreError) -> u8 {
    if error.is_damage() || matches!(error, StoreError::NotAStore { .. }) {
        EXIT_STORE_DAMAGED
    } else {
        1
    }
}

fn serve(config: Config, store_options: OpenOptions) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match paykeep::app::start_with(config, store_options, shutdown_signal()).await {
            Ok(running) => {
                // Tests and scripts read the bound address from this line.
                println!("paykeep listening on http://{}", running.addr);
                running.wait().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paykeep: {e}");
                match &e {
                    paykeep::app::StartError::Store(store) => ExitCode::from(exit_code_of(store)),
                    _ => ExitCode::FAILURE,
                }
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
