//! The one redaction function (DESIGN §3: "every configured secret removed in any
//! encoding"): a [`Redactor`] built from the configured secrets replaces each of them in a
//! text, in every form a server echoing it back is likely to use — raw, percent-encoded
//! (upper- or lower-case hex, with or without the unreserved marks encoded) and base64
//! (standard and URL-safe alphabets; the unpadded form also matches the padded one).
//!
//! A secret that is a URL (Slack, Discord and Feishu webhooks, the signed webhook) is a
//! secret as a whole, and so are its path (where those services keep the token) and every
//! path segment or query value long enough to be a token: an echo of the path alone must
//! not leak it.
//!
//! Used for stored attempt errors, the provider's error text before it is logged, the JSON
//! of admin answers, and every log line: [`RedactingWriter`] is the log writer, cleaning
//! each formatted line of the secrets set with [`set_service_log_secrets`] (the
//! configuration's, at start-up) and [`set_channel_log_secrets`] (the notification
//! settings', whenever they change). Owned by the HTTP/notify edge; the payment core never
//! sees it.

use std::io::Write;
use std::sync::RwLock;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::logging::LogSink;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Shortest secret that is redacted: shorter strings (an empty token, a placeholder) would
/// redact ordinary words.
pub const SECRET_CHARS_MIN: usize = 4;

/// Shortest URL path segment or query value taken as a token on its own (Slack's are 24,
/// Discord's 68, Feishu's a 36-character UUID).
pub const URL_TOKEN_CHARS_MIN: usize = 16;

/// RFC 3986 component encoding: everything but the unreserved `-._~` and alphanumerics.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Replaces every configured secret, in every form, by [`REDACTED`].
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first (so a longer form is replaced whole
    /// before a shorter one inside it could break it up).
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets` (empty and short ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles = Vec::new();
        for secret in secrets {
            for part in parts(secret) {
                forms(&part, &mut needles);
            }
        }
        needles.retain(|n| n.len() >= SECRET_CHARS_MIN);
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactor { needles }
    }

    /// `text` with every form of every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether `text` holds any form of any secret.
    pub fn leaks(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
    }
}

/// The secrets log lines are cleaned of. Process-wide because logging is: one paykeep
/// serves per process (several services in one test process share it, last set wins).
struct LogSecrets {
    service: Vec<String>,
    channels: Vec<String>,
    redactor: Redactor,
}

static LOG_SECRETS: RwLock<LogSecrets> = RwLock::new(LogSecrets {
    service: Vec::new(),
    channels: Vec::new(),
    redactor: Redactor {
        needles: Vec::new(),
    },
});

/// Sets the configuration's own secrets (provider key, webhook secret, admin token,
/// merchant keys) that no log line may carry.
pub fn set_service_log_secrets<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    update_log_secrets(|s| s.service = secrets.into_iter().map(str::to_owned).collect());
}

/// Sets the notification channels' secrets that no log line may carry (they change with
/// the settings at run time).
pub fn set_channel_log_secrets<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    update_log_secrets(|s| s.channels = secrets.into_iter().map(str::to_owned).collect());
}

fn update_log_secrets(change: impl FnOnce(&mut LogSecrets)) {
    let mut secrets = LOG_SECRETS.write().unwrap_or_else(|e| e.into_inner());
    change(&mut secrets);
    let all = secrets.service.iter().chain(&secrets.channels);
    secrets.redactor = Redactor::new(all.map(String::as_str));
}

/// `line` with every log secret replaced.
pub fn redact_log(line: &str) -> String {
    LOG_SECRETS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .redactor
        .redact(line)
}

/// The log writer: `tracing_subscriber` formats each event into a [`RedactedLine`], which
/// writes it to the sink, redacted, in one write when the event is done.
#[derive(Debug, Clone)]
pub struct RedactingWriter {
    sink: LogSink,
}

impl RedactingWriter {
    pub fn new(sink: LogSink) -> RedactingWriter {
        RedactingWriter { sink }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter {
    type Writer = RedactedLine<'a>;

    fn make_writer(&'a self) -> RedactedLine<'a> {
        RedactedLine {
            line: Vec::with_capacity(256),
            sink: &self.sink,
        }
    }
}

/// One formatted event on its way to the sink.
pub struct RedactedLine<'a> {
    line: Vec<u8>,
    sink: &'a LogSink,
}

impl Write for RedactedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine<'_> {
    fn drop(&mut self) {
        let line = redact_log(&String::from_utf8_lossy(&self.line));
        let _ = match self.sink {
            LogSink::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
            LogSink::File(file) => (&**file).write_all(line.as_bytes()),
        };
    }
}

/// The secret itself, and for a URL its path and the long parts of that path and query.
fn parts(secret: &str) -> Vec<String> {
    let secret = secret.trim();
    if secret.chars().count() < SECRET_CHARS_MIN {
        return Vec::new();
    }
    let mut out = vec![secret.to_owned()];
    if let Some((_, rest)) = secret.split_once("://") {
        if let Some(slash) = rest.find('/') {
            let path = &rest[slash..];
            out.push(path.to_owned());
            out.extend(
                path.split(['/', '?', '&', '=', '#'])
                    .filter(|p| p.chars().count() >= URL_TOKEN_CHARS_MIN)
                    .map(str::to_owned),
            );
        }
        // Credentials in the authority (`user:password@host`).
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            out.push(userinfo.to_owned());
        }
    }
    out
}

/// Pushes the raw, percent-encoded and base64 forms of `part`.
fn forms(part: &str, out: &mut Vec<String>) {
    out.push(part.to_owned());
    for set in [NON_ALPHANUMERIC, COMPONENT] {
        let encoded = utf8_percent_encode(part, set).to_string();
        if encoded != part {
            out.push(lower_hex(&encoded));
            out.push(encoded);
        }
    }
    // Form encoding writes a space as `+`.
    if part.contains(' ') {
        out.push(
            utf8_percent_encode(part, COMPONENT)
                .to_string()
                .replace("%20", "+"),
        );
    }
    out.push(STANDARD_NO_PAD.encode(part));
    out.push(URL_SAFE_NO_PAD.encode(part));
}

/// `%3A` → `%3a`: the other case of the hex digits some encoders write.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use tracing_subscriber::fmt::MakeWriter;

    const TOKEN: &str = "123456:AAH-bot_token~x/y+z";
    const DISCORD: &str =
        "https://discord.com/api/webhooks/1234567890/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";

    fn redactor() -> Redactor {
        Redactor::new([TOKEN, DISCORD, "", "abc"])
    }

    #[test]
    fn every_form_of_every_secret_is_removed() {
        let r = redactor();
        let echoes = [
            TOKEN.to_owned(),
            utf8_percent_encode(TOKEN, NON_ALPHANUMERIC).to_string(),
            lower_hex(&utf8_percent_encode(TOKEN, NON_ALPHANUMERIC).to_string()),
            utf8_percent_encode(TOKEN, COMPONENT).to_string(),
            STANDARD.encode(TOKEN),
            URL_SAFE.encode(TOKEN),
            DISCORD.to_owned(),
            "/api/webhooks/1234567890/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789".to_owned(),
            "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789".to_owned(),
            utf8_percent_encode(DISCORD, NON_ALPHANUMERIC).to_string(),
            STANDARD.encode(DISCORD),
        ];
        for echo in echoes {
            let text = format!("the server said: <{echo}>!");
            let clean = r.redact(&text);
            assert!(!r.leaks(&clean), "{echo} → {clean}");
            assert!(clean.contains(REDACTED), "{echo} → {clean}");
            assert!(clean.starts_with("the server said: <") && clean.ends_with(">!"));
        }
    }

    #[test]
    fn short_and_empty_secrets_redact_nothing() {
        let r = redactor();
        assert_eq!(
            r.redact("abc is fine, so is https"),
            "abc is fine, so is https"
        );
        assert_eq!(Redactor::default().redact("anything"), "anything");
    }

    #[test]
    fn url_credentials_are_secrets() {
        let r = Redactor::new(["https://user:pa55word@example.com/hook"]);
        assert_eq!(r.redact("user:pa55word"), REDACTED);
    }

    #[test]
    fn log_lines_lose_the_service_and_channel_secrets_in_every_form() {
        set_service_log_secrets(["sk_live_service_key"]);
        set_channel_log_secrets(["123456:channel-token"]);
        let line = format!(
            "a sk_live_service_key b {} c {}",
            STANDARD.encode("123456:channel-token"),
            "123456%3Achannel-token"
        );
        let clean = redact_log(&line);
        assert_eq!(clean.matches(REDACTED).count(), 3, "{clean}");
        assert!(!Redactor::new(["sk_live_service_key", "123456:channel-token"]).leaks(&clean));
        // A settings change replaces the channel secrets and keeps the service's.
        set_channel_log_secrets(["987654:other-token"]);
        assert_eq!(
            redact_log("sk_live_service_key 123456:channel-token 987654:other-token"),
            format!("{REDACTED} 123456:channel-token {REDACTED}")
        );
        // Through the log writer, a line reaches its sink whole and redacted.
        let file = tempfile::NamedTempFile::new().unwrap();
        let sink = LogSink::File(std::sync::Arc::new(file.reopen().unwrap()));
        let writer = RedactingWriter::new(sink);
        let mut line = writer.make_writer();
        line.write_all(b"key sk_live_service_key ").unwrap();
        line.write_all(b"in two writes\n").unwrap();
        drop(line);
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            format!("key {REDACTED} in two writes\n")
        );
    }
}
