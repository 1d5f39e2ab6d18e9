//! Pacing: keeps each channel under its documented rate limits, per channel and per
//! target, by reserving a send time before each request (GCRA, the "generic cell rate
//! algorithm": a limit of `max` per `per` allows a burst of `max`, then one every
//! `per / max`). A reservation never fails; it says how long to wait.
//!
//! The numbers live in each channel's file with their sources; the notifier actor owns one
//! [`Pacer`] per channel and reserves on its own thread, so no lock is needed.
//!
//! Times are the notifier's clock readings as a [`Duration`] since the Unix epoch: the
//! clock reads whole milliseconds, the intervals keep their full precision.

use std::collections::HashMap;
use std::time::Duration;

/// Targets remembered per channel before idle ones are forgotten (bounded memory).
pub const TARGETS_TRACKED_MAX: usize = 10_000;

/// At most `max` sends per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub per: Duration,
}

impl Limit {
    pub const fn per_second(max: u32) -> Limit {
        Limit {
            max,
            per: Duration::from_secs(1),
        }
    }

    /// Time between sends once the burst is spent.
    fn interval(self) -> Duration {
        self.per / self.max.max(1)
    }

    /// How far ahead of the steady rate a burst may run.
    fn tolerance(self) -> Duration {
        self.per.saturating_sub(self.interval())
    }
}

/// The limits of one channel: over all its sends, and per target (chat, webhook URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub channel: Vec<Limit>,
    pub target: Vec<Limit>,
    /// Extra per-target limits for Telegram group chats (negative chat ids).
    pub group_target: Vec<Limit>,
}

/// GCRA state of one limit: the theoretical arrival time of the next send.
#[derive(Debug, Clone, Copy)]
struct Cell {
    limit: Limit,
    tat: Duration,
}

impl Cell {
    fn earliest(&self, now: Duration) -> Duration {
        now.max(self.tat.saturating_sub(self.limit.tolerance()))
    }

    fn take(&mut self, at: Duration) {
        self.tat = self.tat.max(at) + self.limit.interval();
    }
}

/// Reserves send times for one channel.
#[derive(Debug)]
pub struct Pacer {
    enabled: bool,
    limits: Limits,
    channel: Vec<Cell>,
    targets: HashMap<String, Vec<Cell>>,
}

impl Pacer {
    /// A pacer for `limits`; `enabled = false` reserves "now" every time (benchmarks).
    pub fn new(limits: Limits, enabled: bool) -> Pacer {
        let channel = cells(&limits.channel, Duration::ZERO);
        Pacer {
            enabled,
            limits,
            channel,
            targets: HashMap::new(),
        }
    }

    /// The earliest time at or after `now` (since the Unix epoch) when a send to `target`
    /// keeps every limit, and takes that slot.
    pub fn reserve(&mut self, target: &str, now: Duration) -> Duration {
        if !self.enabled {
            return now;
        }
        if self.targets.len() >= TARGETS_TRACKED_MAX {
            // Targets whose slots are all in the past carry no state worth keeping.
            self.targets
                .retain(|_, cells| cells.iter().any(|c| c.tat > now));
        }
        let limits = &self.limits;
        let target_cells = self.targets.entry(target.to_owned()).or_insert_with(|| {
            let mut list = limits.target.clone();
            if target.starts_with('-') {
                list.extend(limits.group_target.iter().copied());
            }
            cells(&list, now)
        });
        let channel_at = self
            .channel
            .iter()
            .map(|c| c.earliest(now))
            .max()
            .unwrap_or(now);
        let at = target_cells
            .iter()
            .map(|c| c.earliest(channel_at))
            .max()
            .unwrap_or(channel_at);
        // The channel-wide budget is charged at the channel's own slot, not at the later
        // time a busy target imposes, so one chat's queue never holds the other chats.
        for cell in &mut self.channel {
            cell.take(channel_at);
        }
        for cell in target_cells.iter_mut() {
            cell.take(at);
        }
        at
    }
}

fn cells(limits: &[Limit], now: Duration) -> Vec<Cell> {
    limits
        .iter()
        .map(|&limit| Cell { limit, tat: now })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock reading to start from.
    const START: Duration = Duration::from_secs(1_763_721_120);

    fn offsets(pacer: &mut Pacer, target: &str, n: usize, start: Duration) -> Vec<u128> {
        (0..n)
            .map(|_| (pacer.reserve(target, start) - start).as_millis())
            .collect()
    }

    #[test]
    fn one_per_second_per_target_spaces_sends() {
        let limits = Limits {
            channel: vec![Limit::per_second(30)],
            target: vec![Limit::per_second(1)],
            group_target: vec![],
        };
        let mut pacer = Pacer::new(limits, true);
        let start = START;
        assert_eq!(offsets(&mut pacer, "42", 3, start), vec![0, 1000, 2000]);
        // Another chat is not held behind the first one's per-chat limit.
        assert!(pacer.reserve("43", start) - start < Duration::from_millis(100));
    }

    #[test]
    fn bursts_up_to_the_limit_then_the_steady_rate() {
        let limits = Limits {
            channel: vec![],
            target: vec![Limit {
                max: 5,
                per: Duration::from_secs(2),
            }],
            group_target: vec![],
        };
        let mut pacer = Pacer::new(limits, true);
        let start = START;
        assert_eq!(
            offsets(&mut pacer, "", 7, start),
            vec![0, 0, 0, 0, 0, 400, 800]
        );
    }

    #[test]
    fn group_chats_get_their_extra_limit_and_disabled_pacing_never_waits() {
        let limits = Limits {
            channel: vec![],
            target: vec![],
            group_target: vec![Limit {
                max: 20,
                per: Duration::from_secs(60),
            }],
        };
        let mut pacer = Pacer::new(limits.clone(), true);
        let start = START;
        let group = offsets(&mut pacer, "-100", 21, start);
        assert_eq!(group[19], 0);
        assert_eq!(group[20], 3000);
        assert_eq!(offsets(&mut pacer, "100", 21, start)[20], 0);
        let mut off = Pacer::new(limits, false);
        assert_eq!(offsets(&mut off, "-100", 50, start)[49], 0);
    }
}
