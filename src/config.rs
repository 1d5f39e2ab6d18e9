//! Configuration: the keys of DESIGN §4, loaded and validated before anything starts.
//!
//! Layers, lowest first: the embedded `config.toml` (the repository's own file, compiled in),
//! an optional `--config PATH` file, `PAYKEEP_…` environment variables (key path upper-cased,
//! segments joined by `__`, lists as JSON), then the command-line flags. Every section is
//! `deny_unknown_fields`, and [`Config::validate`] names the offending key on any bad value.

pub mod check;

pub use crate::notify::channels::section::NotificationsConfig;
pub use check::ConfigError;
pub(crate) use check::{invalid, is_http_url, positive, within};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub(crate) mod units;

/// The repository's `config.toml`, the embedded default.
pub const EMBEDDED_CONFIG_TOML: &str = include_str!("../config.toml");

/// Environment variable prefix for overrides (`PAYKEEP_PROVIDER__KIND=stripe`).
pub const ENV_PREFIX: &str = "PAYKEEP_";

/// Credentials shipped in the embedded config; refused on a non-loopback bind.
const DEMO_SECRETS: [&str; 4] = [
    "sk_test_demo",
    "sk_test_other",
    "admin_demo_token",
    "whsec_demo_secret",
];

/// Upper bound on `store.commit_batch_max`: a batch is one log record held in memory.
pub const COMMIT_BATCH_MAX_LIMIT: usize = 65_536;
/// Upper bound on `store.cache_capacity_mb` (16 GiB): beyond it, a typo rather than a cache.
pub const CACHE_CAPACITY_MB_MAX: u64 = 16 * 1024;
/// Upper bound on the `[retention]` periods (`_days` keys): ten years.
pub const RETENTION_MAX: Duration = Duration::from_secs(3650 * 86_400);
/// Upper bound on `shards.partitions`.
pub const PARTITIONS_MAX: u32 = 65_536;
/// Upper bound on `server.body_limit_bytes` (16 MiB).
pub const BODY_LIMIT_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Upper bound on `server.max_connections`: far beyond any descriptor limit (the cap is
/// lowered to what the file limit leaves anyway).
pub const MAX_CONNECTIONS_MAX: usize = 1_000_000;
/// Upper bound on the `[server]` timeouts (one hour): longer holds a connection forever.
pub const SERVER_TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Upper bound on `store.commit_window_us` (1 s): every write waits up to the window.
pub const COMMIT_WINDOW_MAX: Duration = Duration::from_secs(1);
/// Upper bound on `shards.count`.
pub const SHARDS_COUNT_MAX: usize = 1024;
/// Upper bound on `payments.refund_window_days` (ten years).
pub const REFUND_WINDOW_MAX: Duration = Duration::from_secs(3650 * 86_400);
/// Upper bound on `provider.timeout_ms` and `provider.latency_ms` (ten minutes).
pub const PROVIDER_WAIT_MAX: Duration = Duration::from_secs(600);
/// Upper bound on `provider.webhook_tolerance_s` (one day).
pub const WEBHOOK_TOLERANCE_S_MAX: u64 = 86_400;
/// Longest merchant id (it is part of every payment key and provider key).
pub const MERCHANT_ID_CHARS_MAX: usize = 64;
/// Shortest admin token or merchant API key: shorter is guessable.
pub const SECRET_CHARS_MIN: usize = 8;

// Every shard owns at least one partition.
const _: () = assert!(SHARDS_COUNT_MAX as u64 <= PARTITIONS_MAX as u64);
// A commit window is shorter than any request's timeout could be.
const _: () = assert!(COMMIT_WINDOW_MAX.as_nanos() <= SERVER_TIMEOUT_MAX.as_nanos());
// A notification request ends before the server's longest timeout.
const _: () = assert!(
    crate::notify::channels::section::NOTIFY_REQUEST_TIMEOUT_MAX.as_nanos()
        <= SERVER_TIMEOUT_MAX.as_nanos()
);

// A provider call (and the simulator's delay) ends before the server's longest timeout.
const _: () = assert!(PROVIDER_WAIT_MAX.as_nanos() <= SERVER_TIMEOUT_MAX.as_nanos());

/// A value the schema refused (a typed key such as a `NonZero*` given 0, a wrong type, an
/// unknown key) names its key like any invalid value, lower-cased as the file writes it (an
/// environment variable's path arrives upper-cased); anything else could not be read.
fn from_figment(error: figment::Error) -> ConfigError {
    if error.path.is_empty() {
        return ConfigError::Parse {
            message: error.to_string(),
        };
    }
    invalid(&error.path.join(".").to_lowercase(), error.kind.to_string())
}

/// The whole configuration file (DESIGN §4).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub shards: ShardsConfig,
    pub idempotency: IdempotencyConfig,
    pub retention: RetentionConfig,
    pub payments: PaymentsConfig,
    pub provider: ProviderConfig,
    pub reconciliation: ReconciliationConfig,
    pub admin: AdminConfig,
    pub merchants: Vec<MerchantConfig>,
    pub notifications: NotificationsConfig,
    pub webhooks: WebhooksConfig,
    /// `[alerts]`: thresholds and windows of the service's own system alerts.
    pub alerts: crate::alerts::config::AlertsConfig,
    /// `[relay]`: the outbox relay to NATS JetStream ([`crate::relay`]).
    pub relay: crate::relay::RelayConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Largest accepted request body; larger answers 413.
    pub body_limit_bytes: NonZeroU64,
    /// Connections served at once; beyond, new connections wait in the kernel backlog.
    /// Lowered at start-up to what the file limit allows beside the store's reserve
    /// (`http::server::connection_cap`).
    pub max_connections: NonZeroUsize,
    /// `header_read_timeout_ms`: a request's head must arrive within this, from the
    /// connection's first byte or from the first byte of a later request on it (slow-loris
    /// clients are closed).
    #[serde(rename = "header_read_timeout_ms", with = "units::millis")]
    pub header_read_timeout: Duration,
    /// `idle_timeout_ms`: a keep-alive connection idle this long between requests is closed.
    #[serde(rename = "idle_timeout_ms", with = "units::millis")]
    pub idle_timeout: Duration,
    /// `body_read_timeout_ms`: a declared body must arrive within this (408
    /// `request_timeout` otherwise).
    #[serde(rename = "body_read_timeout_ms", with = "units::millis")]
    pub body_read_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// `commit_window_us`: how long the committer gathers write sets after the first one
    /// before it commits.
    #[serde(rename = "commit_window_us", with = "units::micros")]
    pub commit_window: Duration,
    /// Most write sets in one group commit.
    pub commit_batch_max: NonZeroUsize,
    /// sled's page cache in MiB (sled's own default is 1 GiB, too much for a small
    /// container). It bounds the cache, not the process: sled's records of paged-out pages
    /// grow with the store whatever the cache (README, "Retention", has the figures).
    pub cache_capacity_mb: NonZeroU64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShardsConfig {
    /// Shard actors (one Arbiter thread each); 0 = one per available core.
    pub count: usize,
    /// Fixed virtual partitions; a payment key hashes to one, partitions map onto shards.
    pub partitions: NonZeroU32,
}

/// `[retention]`: how long aged records are kept before the retention sweep
/// (`store::retention`); payments, refunds, orders and reports are kept for good.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// `events_days`: how long outbox events and their finished deliveries are kept.
    #[serde(rename = "events_days", with = "units::days")]
    pub events: Duration,
    /// `webhook_event_ids_days`: how long provider webhook event ids are remembered for
    /// dedupe.
    #[serde(rename = "webhook_event_ids_days", with = "units::days")]
    pub webhook_event_ids: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// `retention_s`: how long entries of `Idempotency-Key` header keys are kept before
    /// the sweep.
    #[serde(rename = "retention_s", with = "units::seconds")]
    pub retention: Duration,
    /// `in_flight_wait_ms`: how long a request waits behind a running request of the same
    /// key before 409.
    #[serde(rename = "in_flight_wait_ms", with = "units::millis")]
    pub in_flight_wait: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// Accepted ISO 4217 codes, upper case.
    pub currencies: Vec<String>,
    /// Largest `amount`, in minor units.
    pub amount_minor_max: u64,
    /// `refund_window_days`: how long after the payment a refund is accepted.
    #[serde(rename = "refund_window_days", with = "units::days")]
    pub refund_window: Duration,
    /// Fee kept by the merchant on each refund, in minor units.
    pub refund_fee_minor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The in-process simulator (DESIGN §2 "Simulator payment methods").
    Simulator,
    /// A Stripe-compatible HTTP API at `provider.base_url`.
    Stripe,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: String,
    pub secret_key: String,
    /// `timeout_ms`: deadline of one provider call; past it the call counts as a transient
    /// failure.
    #[serde(rename = "timeout_ms", with = "units::millis")]
    pub timeout: Duration,
    /// `latency_ms`, simulator only: delay before each answer.
    #[serde(rename = "latency_ms", with = "units::millis")]
    pub latency: Duration,
    pub webhook_secret: String,
    /// `webhook_tolerance_s`: how old a provider webhook's signed timestamp may be.
    #[serde(rename = "webhook_tolerance_s", with = "units::seconds")]
    pub webhook_tolerance: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    /// `HH:MM` UTC of the daily run; empty = off.
    pub daily_at: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: String,
    pub api_key: String,
}

/// `[webhooks]`: merchant webhook endpoints (DESIGN §4).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Most endpoints per merchant; one more is 422 `webhook_endpoints_limit`.
    pub endpoints_max: NonZeroUsize,
    /// `rotation_overlap_s`: how long a rotated secret keeps signing beside the new one.
    #[serde(rename = "rotation_overlap_s", with = "units::seconds")]
    pub rotation_overlap: Duration,
    /// `disable_after_s`: an endpoint whose deliveries all failed this long is disabled.
    #[serde(rename = "disable_after_s", with = "units::seconds")]
    pub disable_after: Duration,
}

/// Largest `webhooks.endpoints_max`: below what one merchant's read takes
/// (`store::tables::webhook_endpoints::ENDPOINTS_READ_MAX`), and every merchant event
/// reads them all at commit time.
pub const WEBHOOK_ENDPOINTS_MAX: usize = 256;

/// Command-line overrides of `paykeep serve`, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// `server.body_read_timeout_ms`.
    pub fn body_read_timeout(&self) -> Duration {
        self.server.body_read_timeout
    }

    /// The service's own secrets (provider key and webhook secret, admin token, merchant
    /// keys), for [`crate::redact::Redactor`]; the notification secrets are the settings'
    /// (`notify::channels::secrets`), which change at run time.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out = vec![
            self.provider.secret_key.as_str(),
            self.provider.webhook_secret.as_str(),
            self.admin.token.as_str(),
        ];
        out.extend(self.merchants.iter().map(|m| m.api_key.as_str()));
        out
    }

    /// Loads the embedded defaults, then `path` (if any), then `PAYKEEP_…` variables, then
    /// `overrides`, and validates the result.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] when a layer does not fit the schema (unknown key, wrong type);
    /// [`ConfigError::Invalid`] naming the key when a value is out of range.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_with_env(path, overrides, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// The embedded defaults alone, validated (tests and benches build on this).
    ///
    /// # Errors
    /// Only if the embedded file itself were broken.
    pub fn embedded() -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Toml::string(EMBEDDED_CONFIG_TOML))
            .extract()
            .map_err(from_figment)?;
        config.validate()?;
        Ok(config)
    }

    fn load_with_env(
        path: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(EMBEDDED_CONFIG_TOML));
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Parse {
                    message: format!("config file {} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        let mut config: Config = figment.merge(env).extract().map_err(from_figment)?;
        if let Some(bind) = overrides.bind {
            config.server.bind = bind;
        }
        if let Some(dir) = &overrides.data_dir {
            config.store.data_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value's range; the error names the first offending key.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_core()?;
        self.validate_payments()?;
        self.validate_provider()?;
        self.validate_merchants()?;
        self.notifications.validate()?;
        self.webhooks.validate()?;
        self.alerts.validate()?;
        self.relay.validate()?;
        self.refuse_demo_secrets_off_loopback()
    }

    fn validate_core(&self) -> Result<(), ConfigError> {
        let (s, store) = (&self.server, &self.store);
        // The counts whose type already refuses 0, with their upper bounds.
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        for (key, value, max) in [
            (
                "server.body_limit_bytes",
                s.body_limit_bytes.get(),
                BODY_LIMIT_BYTES_MAX,
            ),
            (
                "server.max_connections",
                as_u64(s.max_connections.get()),
                as_u64(MAX_CONNECTIONS_MAX),
            ),
            (
                "store.commit_batch_max",
                as_u64(store.commit_batch_max.get()),
                as_u64(COMMIT_BATCH_MAX_LIMIT),
            ),
            (
                "store.cache_capacity_mb",
                store.cache_capacity_mb.get(),
                CACHE_CAPACITY_MB_MAX,
            ),
        ] {
            within(key, value, 1, max)?;
        }
        for (key, timeout) in [
            ("server.header_read_timeout_ms", s.header_read_timeout),
            ("server.idle_timeout_ms", s.idle_timeout),
            ("server.body_read_timeout_ms", s.body_read_timeout),
        ] {
            if timeout.is_zero() || timeout > SERVER_TIMEOUT_MAX {
                let max_ms = SERVER_TIMEOUT_MAX.as_millis();
                return Err(invalid(key, format!("must be 1..={max_ms} (one hour)")));
            }
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(invalid("store.data_dir", "must not be empty"));
        }
        if self.store.commit_window > COMMIT_WINDOW_MAX {
            let max_us = COMMIT_WINDOW_MAX.as_micros();
            return Err(invalid(
                "store.commit_window_us",
                format!("must be at most {max_us} (1 s)"),
            ));
        }
        within("shards.count", self.shards.count, 0, SHARDS_COUNT_MAX)?;
        let partitions = self.shards.partitions.get();
        within("shards.partitions", partitions, 1, PARTITIONS_MAX)?;
        if (partitions as usize) < self.shard_count() {
            return Err(invalid(
                "shards.partitions",
                "must be at least the number of shards",
            ));
        }
        let r = &self.retention;
        for (key, period) in [
            ("retention.events_days", &r.events),
            ("retention.webhook_event_ids_days", &r.webhook_event_ids),
        ] {
            let days_max = units::whole_days(&RETENTION_MAX);
            within(key, units::whole_days(period), 1, days_max)?;
        }
        positive("idempotency.retention_s", self.idempotency.retention)?;
        positive(
            "idempotency.in_flight_wait_ms",
            self.idempotency.in_flight_wait,
        )?;
        let daily = &self.reconciliation.daily_at;
        if !daily.is_empty() && parse_hh_mm(daily).is_none() {
            return Err(invalid(
                "reconciliation.daily_at",
                "must be HH:MM (UTC) or empty",
            ));
        }
        if self.admin.token.len() < SECRET_CHARS_MIN {
            return Err(invalid(
                "admin.token",
                format!("must be at least {SECRET_CHARS_MIN} characters"),
            ));
        }
        Ok(())
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let p = &self.payments;
        if p.currencies.is_empty() {
            return Err(invalid("payments.currencies", "must not be empty"));
        }
        let mut seen = HashSet::new();
        for code in &p.currencies {
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    "payments.currencies",
                    format!("`{code}` is not an upper-case ISO 4217 code"),
                ));
            }
            if !seen.insert(code) {
                return Err(invalid(
                    "payments.currencies",
                    format!("`{code}` is listed twice"),
                ));
            }
        }
        if p.amount_minor_max == 0 || p.amount_minor_max > i64::MAX as u64 {
            return Err(invalid(
                "payments.amount_minor_max",
                "must be 1..=9223372036854775807",
            ));
        }
        within(
            "payments.refund_window_days",
            units::whole_days(&p.refund_window),
            1,
            units::whole_days(&REFUND_WINDOW_MAX),
        )?;
        if p.refund_fee_minor >= p.amount_minor_max {
            return Err(invalid(
                "payments.refund_fee_minor",
                "must be below payments.amount_minor_max",
            ));
        }
        Ok(())
    }

    fn validate_provider(&self) -> Result<(), ConfigError> {
        let p = &self.provider;
        let max_ms = PROVIDER_WAIT_MAX.as_millis();
        if p.timeout.is_zero() || p.timeout > PROVIDER_WAIT_MAX {
            return Err(invalid(
                "provider.timeout_ms",
                format!("must be 1..={max_ms}"),
            ));
        }
        if p.latency > PROVIDER_WAIT_MAX {
            return Err(invalid(
                "provider.latency_ms",
                format!("must be 0..={max_ms}"),
            ));
        }
        if p.kind == ProviderKind::Stripe {
            if !is_http_url(&p.base_url) {
                return Err(invalid(
                    "provider.base_url",
                    "must be an http(s) URL when provider.kind = \"stripe\"",
                ));
            }
            if p.secret_key.is_empty() {
                return Err(invalid(
                    "provider.secret_key",
                    "must be set when provider.kind = \"stripe\"",
                ));
            }
        }
        if p.webhook_secret.is_empty() {
            return Err(invalid("provider.webhook_secret", "must not be empty"));
        }
        within(
            "provider.webhook_tolerance_s",
            p.webhook_tolerance.as_secs(),
            1,
            WEBHOOK_TOLERANCE_S_MAX,
        )
    }

    fn validate_merchants(&self) -> Result<(), ConfigError> {
        if self.merchants.is_empty() {
            return Err(invalid("merchants", "at least one merchant is required"));
        }
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for (i, m) in self.merchants.iter().enumerate() {
            let valid_id = !m.id.is_empty()
                && m.id.len() <= MERCHANT_ID_CHARS_MAX
                && m.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(invalid(
                    &format!("merchants[{i}].id"),
                    format!("must be 1-{MERCHANT_ID_CHARS_MAX} characters of [A-Za-z0-9_-]"),
                ));
            }
            if m.api_key.len() < SECRET_CHARS_MIN {
                return Err(invalid(
                    &format!("merchants[{i}].api_key"),
                    format!("must be at least {SECRET_CHARS_MIN} characters"),
                ));
            }
            if !ids.insert(&m.id) {
                return Err(invalid(&format!("merchants[{i}].id"), "duplicate id"));
            }
            if !keys.insert(&m.api_key) {
                return Err(invalid(
                    &format!("merchants[{i}].api_key"),
                    "shared with another merchant",
                ));
            }
        }
        Ok(())
    }

    fn refuse_demo_secrets_off_loopback(&self) -> Result<(), ConfigError> {
        if self.server.bind.ip().is_loopback() {
            return Ok(());
        }
        let is_demo = |s: &str| DEMO_SECRETS.contains(&s);
        if is_demo(&self.admin.token) {
            return Err(invalid(
                "admin.token",
                "the demo token is refused on a non-loopback bind",
            ));
        }
        if is_demo(&self.provider.webhook_secret) {
            return Err(invalid(
                "provider.webhook_secret",
                "the demo secret is refused on a non-loopback bind",
            ));
        }
        for (i, m) in self.merchants.iter().enumerate() {
            if is_demo(&m.api_key) {
                return Err(invalid(
                    &format!("merchants[{i}].api_key"),
                    "the demo key is refused on a non-loopback bind",
                ));
            }
        }
        Ok(())
    }

    /// Number of shard actors: `shards.count`, or one per available core when 0.
    pub fn shard_count(&self) -> usize {
        if self.shards.count > 0 {
            return self.shards.count;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }

    /// `store.commit_window_us`.
    pub fn commit_window(&self) -> Duration {
        self.store.commit_window
    }

    /// `provider.timeout_ms`.
    pub fn provider_timeout(&self) -> Duration {
        self.provider.timeout
    }

    /// `idempotency.in_flight_wait_ms`.
    pub fn in_flight_wait(&self) -> Duration {
        self.idempotency.in_flight_wait
    }

    /// The `[retention]` periods.
    pub fn retention(&self) -> crate::store::retention::Retention {
        crate::store::retention::Retention {
            events: self.retention.events,
            webhook_event_ids: self.retention.webhook_event_ids,
        }
    }
}

impl WebhooksConfig {
    /// Validates the `[webhooks]` section; keys are named from `webhooks.`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "webhooks.endpoints_max",
            self.endpoints_max.get(),
            1,
            WEBHOOK_ENDPOINTS_MAX,
        )?;
        positive("webhooks.disable_after_s", self.disable_after)
    }

    /// `rotation_overlap_s` in milliseconds (saturating).
    pub fn rotation_overlap_ms(&self) -> i64 {
        crate::clock::millis(self.rotation_overlap)
    }

    /// `disable_after_s` in milliseconds (saturating).
    pub fn disable_after_ms(&self) -> i64 {
        crate::clock::millis(self.disable_after)
    }
}

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hh_mm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure type
    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            result = Some(Config::load(None, &Overrides::default()));
            Ok(())
        });
        result.expect("jail ran")
    }

    #[test]
    fn embedded_config_is_valid_and_matches_design_defaults() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store.commit_window, Duration::from_micros(500));
        assert_eq!(c.store.commit_batch_max.get(), 1024);
        assert_eq!(c.store.cache_capacity_mb.get(), 128);
        assert_eq!(c.shards.partitions.get(), 256);
        assert_eq!(c.idempotency.retention, Duration::from_secs(86_400));
        assert_eq!(c.retention.events, Duration::from_secs(30 * 86_400));
        assert_eq!(
            c.retention.webhook_event_ids,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(c.provider.kind, ProviderKind::Simulator);
        let schedule_s: Vec<u64> = c
            .notifications
            .retry_schedule
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(schedule_s, vec![10, 30, 120, 600]);
        assert_eq!(c.merchants.len(), 2);
        assert_eq!(c.webhooks.endpoints_max.get(), 16);
        assert_eq!(c.webhooks.rotation_overlap, Duration::from_secs(86_400));
        assert_eq!(c.webhooks.disable_after, Duration::from_secs(432_000));
    }

    #[test]
    fn environment_overrides_nested_keys_and_lists() {
        let c = load_env(&[
            ("PAYKEEP_STORE__COMMIT_BATCH_MAX", "64"),
            ("PAYKEEP_PAYMENTS__CURRENCIES", "[\"USD\",\"EUR\"]"),
            ("PAYKEEP_NOTIFICATIONS__TELEGRAM__CHAT_IDS", "[1,2]"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.store.commit_batch_max.get(), 64);
        assert_eq!(c.payments.currencies, vec!["USD", "EUR"]);
        assert_eq!(c.notifications.telegram.chat_ids, vec!["1", "2"]);
    }

    #[test]
    fn invalid_value_names_the_key() {
        let err = load_env(&[("PAYKEEP_STORE__COMMIT_BATCH_MAX", "0")]).unwrap_err();
        assert!(err.to_string().contains("store.commit_batch_max"), "{err}");
        for absurd in ["0", "1000000"] {
            let err = load_env(&[("PAYKEEP_STORE__CACHE_CAPACITY_MB", absurd)]).unwrap_err();
            assert!(err.to_string().contains("store.cache_capacity_mb"), "{err}");
            let err = load_env(&[("PAYKEEP_RETENTION__EVENTS_DAYS", absurd)]).unwrap_err();
            assert!(err.to_string().contains("retention.events_days"), "{err}");
        }
        let err = load_env(&[("PAYKEEP_PAYMENTS__CURRENCIES", "[\"usd\"]")]).unwrap_err();
        assert!(err.to_string().contains("payments.currencies"), "{err}");
    }

    #[test]
    fn demo_keys_refused_off_loopback() {
        let err = load_env(&[("PAYKEEP_SERVER__BIND", "0.0.0.0:8080")]).unwrap_err();
        assert!(err.to_string().contains("admin.token"), "{err}");
    }

    #[test]
    fn chat_ids_accept_a_comma_or_newline_string() {
        let c = load_env(&[(
            "PAYKEEP_NOTIFICATIONS__TELEGRAM__CHAT_IDS",
            "-100123, 456\n789",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.notifications.telegram.chat_ids,
            vec!["-100123", "456", "789"]
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load_env(&[("PAYKEEP_STORE__COMMIT_WINDOW", "5")]).unwrap_err();
        assert!(err.to_string().contains("commit_window"), "{err}");
    }

    #[test]
    fn hh_mm_parses() {
        assert_eq!(parse_hh_mm("02:00"), Some(120));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("2:00"), None);
    }
}
