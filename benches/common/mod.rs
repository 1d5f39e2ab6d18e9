//! Environment settings shared by the `load` and `store` benchmarks.

use std::path::PathBuf;
use std::time::Duration;

/// Measured seconds per scenario (load) or durability (store) unless
/// `PAYKEEP_BENCH_SECONDS` says otherwise.
pub const SECONDS_DEFAULT: u64 = 5;
/// Upper bound on those seconds, so a typo cannot run for hours.
pub const SECONDS_MAX: u64 = 600;
/// Repetitions unless `PAYKEEP_BENCH_RUNS` says otherwise; the median of three discards
/// one noisy run.
pub const RUNS_DEFAULT: u64 = 3;
/// Upper bound on repetitions.
pub const RUNS_MAX: u64 = 100;
/// Unmeasured lead-in of each measurement: connections open, sled's first pages and
/// segments are allocated, caches warm up.
pub const WARMUP: Duration = Duration::from_secs(1);

/// Upper bound of `PAYKEEP_BENCH_COMMIT_WINDOW_US`: paykeep's own limit on
/// `store.commit_window_us` (1 s).
const COMMIT_WINDOW_US_MAX: u64 = 1_000_000;

/// A whole number from `name` within `min..=max`, `None` when unset; panics on anything
/// else (start-up: a wrong setting should stop the benchmark, not be guessed at).
pub fn env_value(name: &str, min: u64, max: u64) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let value: u64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a whole number, got {text:?}"));
    assert!(
        (min..=max).contains(&value),
        "{name} must be {min}..={max}, got {value}"
    );
    Some(value)
}

/// `store.commit_window_us` for this run: `PAYKEEP_BENCH_COMMIT_WINDOW_US`, or `None` for
/// the embedded default (500 µs), so the window's cost can be measured.
pub fn commit_window_override_us() -> Option<u64> {
    env_value("PAYKEEP_BENCH_COMMIT_WINDOW_US", 0, COMMIT_WINDOW_US_MAX)
}

/// How the commit window of a run is described in the output.
pub fn describe_window(override_us: Option<u64>) -> String {
    override_us.map_or_else(
        || "the embedded commit window".to_owned(),
        |us| format!("commit window {us} µs"),
    )
}

/// Parent directory of the stores' tempdirs: `PAYKEEP_BENCH_DIR`, else cargo's target tmp
/// dir (on the build disk rather than a possible tmpfs, where `fdatasync` costs nothing).
pub fn bench_dir() -> PathBuf {
    std::env::var_os("PAYKEEP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}
