//! Quiet failure (issue 13): while the store refuses writes, every refused request would
//! otherwise log its own error lines (1,865 a second were seen on a full disk). A
//! [`Throttle`] lets one line per distinct cause through per window and counts the
//! repeats it held back; the next line that gets through carries that count
//! (`suppressed`). One process-wide throttle, [`STORE_FAILURES`], is shared by everything
//! that reports a store failure (the committer, the shard jobs, request handlers), keyed by
//! the error's text, so a cause is logged once per window, not once per layer.
//!
//! The window is read on `Instant`, not on a [`crate::clock::Clock`]: the throttles are
//! process-wide statics shared by callers that hold no clock (the committer thread, the
//! store's error paths), and the window only rates log lines; it is no schedule a test
//! would advance. Tests pass the time in through [`Throttle::admit_at`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One error line per distinct cause per this window.
pub const LOG_REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// Distinct causes remembered; past it the oldest is forgotten (and would log again).
pub const CAUSES_MAX: usize = 64;

/// Store failures, by cause.
pub static STORE_FAILURES: Throttle = Throttle::new(LOG_REPEAT_WINDOW);

/// Decides which repeated log lines are written.
pub struct Throttle {
    window: Duration,
    causes: Mutex<Vec<Cause>>,
}

struct Cause {
    text: String,
    logged_at: Instant,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(window: Duration) -> Throttle {
        Throttle {
            window,
            causes: Mutex::new(Vec::new()),
        }
    }

    /// Whether a line for `cause` may be written now: `Some(n)` with the repeats held back
    /// since the last line for it, `None` when this one is held back (and counted).
    pub fn admit(&self, cause: &str) -> Option<u64> {
        self.admit_at(cause, Instant::now())
    }

    /// [`Throttle::admit`] at `now`.
    pub fn admit_at(&self, cause: &str, now: Instant) -> Option<u64> {
        let mut causes = match self.causes.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(known) = causes.iter_mut().find(|c| c.text == cause) {
            if now.saturating_duration_since(known.logged_at) < self.window {
                known.suppressed += 1;
                return None;
            }
            known.logged_at = now;
            return Some(std::mem::take(&mut known.suppressed));
        }
        if causes.len() >= CAUSES_MAX {
            causes.remove(0);
        }
        causes.push(Cause {
            text: cause.to_owned(),
            logged_at: now,
            suppressed: 0,
        });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_window_with_the_count_of_repeats() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_millis(s);
        assert_eq!(throttle.admit_at("disk full", at(0)), Some(0));
        for i in 1..=1864 {
            assert_eq!(throttle.admit_at("disk full", at(i)), None);
        }
        // Another cause is not held back by the first.
        assert_eq!(throttle.admit_at("store closed", at(2000)), Some(0));
        assert_eq!(throttle.admit_at("disk full", at(9_999)), None);
        assert_eq!(throttle.admit_at("disk full", at(10_000)), Some(1865));
        assert_eq!(throttle.admit_at("disk full", at(10_001)), None);
        assert_eq!(throttle.admit_at("disk full", at(25_000)), Some(1));
    }

    #[test]
    fn causes_are_bounded() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..CAUSES_MAX + 10 {
            assert_eq!(throttle.admit_at(&format!("cause {i}"), now), Some(0));
        }
        assert!(throttle.causes.lock().unwrap().len() <= CAUSES_MAX);
    }
}
