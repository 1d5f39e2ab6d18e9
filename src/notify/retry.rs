//! The retry policy (DESIGN §3 "Retry"): `retry_schedule_s` with the last step repeating,
//! ± `jitter_ratio` jitter, a 429's `retry_after` honoured, and `dead` once `max_attempts`
//! attempts were made or the next attempt would fall past `max_age_s`. One pure function
//! over a schedule; the caller passes the jitter sample so tests can pin it.

use std::time::Duration;

use crate::config::NotificationsConfig;

/// Longest `retry_after` we honour (a misbehaving API could ask for years).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(86_400);

/// The step after a failure when the schedule is empty (validation refuses an empty one).
pub const STEP_FALLBACK: Duration = Duration::from_secs(60);

/// The retry settings of `[notifications]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// `retry_schedule_s`: the wait after each failed attempt; the last one repeats.
    pub schedule: Vec<Duration>,
    /// Each wait is its step ± this share of it.
    pub jitter_ratio: f64,
    pub max_attempts: u32,
    /// `max_age_s`: no attempt falls later than this after the budget started.
    pub max_age: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &NotificationsConfig) -> RetryPolicy {
        RetryPolicy {
            schedule: config.retry_schedule.clone(),
            jitter_ratio: config.jitter_ratio,
            max_attempts: config.max_attempts,
            max_age: config.max_age,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Give up: the reason.
    Dead(String),
}

/// The step of the schedule after `attempts` failed attempts (1-based), ± jitter.
/// `jitter_sample` is uniform in `[-1, 1]`.
pub fn delay_after(policy: &RetryPolicy, attempts: u32, jitter_sample: f64) -> Duration {
    let last = policy.schedule.len().saturating_sub(1);
    let index = (attempts.max(1) as usize - 1).min(last);
    let base_s = policy
        .schedule
        .get(index)
        .copied()
        .unwrap_or(STEP_FALLBACK)
        .as_secs_f64();
    let factor = 1.0 + policy.jitter_ratio * jitter_sample.clamp(-1.0, 1.0);
    Duration::from_secs_f64((base_s * factor).max(0.0))
}

/// Decides the next step after the `attempts`-th failed attempt of a budget that started
/// at `budget_started_at_ms`. A `retry_after` from the API replaces the schedule's step.
pub fn next_after_failure(
    policy: &RetryPolicy,
    attempts: u32,
    budget_started_at_ms: i64,
    now_ms: i64,
    retry_after: Option<Duration>,
    jitter_sample: f64,
) -> Next {
    if attempts >= policy.max_attempts {
        return Next::Dead(format!("max_attempts ({}) reached", policy.max_attempts));
    }
    let delay = match retry_after {
        Some(after) => after.min(RETRY_AFTER_MAX),
        None => delay_after(policy, attempts, jitter_sample),
    };
    let delay_ms = crate::clock::millis(delay);
    let at_ms = now_ms.saturating_add(delay_ms);
    let max_age_ms = crate::clock::millis(policy.max_age);
    if at_ms.saturating_sub(budget_started_at_ms) > max_age_ms {
        let max_age_s = policy.max_age.as_secs();
        return Next::Dead(format!("max_age_s ({max_age_s}) exceeded"));
    }
    Next::RetryAt(at_ms)
}

/// A jitter sample uniform in `[-1, 1]` from the thread RNG.
pub fn jitter_sample() -> f64 {
    use rand::Rng;
    rand::thread_rng().gen_range(-1.0..=1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: [10, 30, 120, 600].map(Duration::from_secs).to_vec(),
            jitter_ratio: 0.2,
            max_attempts: 12,
            max_age: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn the_schedule_is_followed_and_its_last_step_repeats() {
        let p = policy();
        let steps: Vec<u64> = (1..=6).map(|a| delay_after(&p, a, 0.0).as_secs()).collect();
        assert_eq!(steps, vec![10, 30, 120, 600, 600, 600]);
        assert_eq!(delay_after(&p, 1, 1.0), Duration::from_secs(12));
        assert_eq!(delay_after(&p, 1, -1.0), Duration::from_secs(8));
    }

    #[test]
    fn max_attempts_and_max_age_make_it_dead() {
        let p = policy();
        assert_eq!(
            next_after_failure(&p, 3, 0, 1_000, None, 0.0),
            Next::RetryAt(121_000)
        );
        assert!(matches!(
            next_after_failure(&p, 12, 0, 1_000, None, 0.0),
            Next::Dead(_)
        ));
        let day_ms = 86_400_000;
        assert!(matches!(
            next_after_failure(&p, 4, 0, day_ms - 1_000, None, 0.0),
            Next::Dead(_)
        ));
    }

    #[test]
    fn retry_after_replaces_the_step() {
        let p = policy();
        assert_eq!(
            next_after_failure(&p, 1, 0, 0, Some(Duration::from_secs(3)), 1.0),
            Next::RetryAt(3_000)
        );
    }

    proptest! {
        #[test]
        fn jitter_stays_within_the_ratio(attempts in 1u32..20, sample in -1.0f64..=1.0) {
            let p = policy();
            let base = delay_after(&p, attempts, 0.0).as_secs_f64();
            let d = delay_after(&p, attempts, sample).as_secs_f64();
            prop_assert!(d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9);
        }
    }
}
