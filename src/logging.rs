//! How paykeep logs: one `tracing` subscriber per process, filtered by `RUST_LOG` (default
//! `info`), each line formatted as text or JSON and written whole, redacted of every
//! configured secret ([`crate::redact`]), to a [`LogSink`]. The binary logs to stderr; the
//! load bench installs the same subscriber over a file, so its figures include the access
//! log line every request costs the binary.

use std::fs::File;
use std::sync::Arc;

use crate::redact::RedactingWriter;

/// The line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `tracing_subscriber`'s human-readable lines.
    Text,
    /// One JSON object per line: the event's fields at the top level beside `timestamp`,
    /// `level`, `target`, and the request's span (`span.request_id`).
    Json,
}

/// Where log lines go.
#[derive(Debug, Clone)]
pub enum LogSink {
    /// The process's stderr; colours only when it is a terminal (a file or a pipe gets
    /// plain text).
    Stderr,
    /// A file, plain text.
    File(Arc<File>),
}

/// Installs the process's subscriber.
///
/// # Panics
/// When a global subscriber is already installed.
pub fn init(format: LogFormat, sink: LogSink) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = matches!(sink, LogSink::Stderr) && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(RedactingWriter::new(sink));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
