//! Per-key queues inside a shard: one job runs per payment key, the rest wait in order.
//! A key is present while it has a running job; its deque holds the jobs behind it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::shard::messages::{Job, PaymentKey};

/// Jobs (running + waiting) one shard holds at most; beyond it requests get 503.
pub const SHARD_JOBS_MAX: usize = 16_384;
/// Jobs waiting behind one key at most.
pub const KEY_WAITING_MAX: usize = 256;

/// What [`KeyQueues::enqueue`] decided.
#[derive(Debug)]
pub enum Enqueued {
    /// The key was idle: run this job now.
    Start(Job),
    /// The key is busy: the job waits.
    Waiting,
    /// Over a bound: the job is handed back to be refused.
    Full(Job),
}

#[derive(Debug, Default)]
pub struct KeyQueues {
    keys: HashMap<PaymentKey, VecDeque<Job>>,
    jobs: usize,
}

impl KeyQueues {
    pub fn enqueue(&mut self, key: PaymentKey, job: Job) -> Enqueued {
        if self.jobs >= SHARD_JOBS_MAX {
            return Enqueued::Full(job);
        }
        match self.keys.get_mut(&key) {
            None => {
                self.keys.insert(key, VecDeque::new());
                self.jobs += 1;
                Enqueued::Start(job)
            }
            Some(waiting) if waiting.len() >= KEY_WAITING_MAX => Enqueued::Full(job),
            Some(waiting) => {
                waiting.push_back(job);
                self.jobs += 1;
                Enqueued::Waiting
            }
        }
    }

    /// The running job of `key` finished: returns the next job to run, or frees the key.
    pub fn finish(&mut self, key: &PaymentKey) -> Option<Job> {
        self.jobs = self.jobs.saturating_sub(1);
        let waiting = self.keys.get_mut(key)?;
        match waiting.pop_front() {
            Some(next) => Some(next),
            None => {
                self.keys.remove(key);
                None
            }
        }
    }

    /// Removes and returns the waiting requests of `key` whose wait deadline has passed.
    pub fn take_expired(&mut self, key: &PaymentKey, now: Instant) -> Vec<Job> {
        let Some(waiting) = self.keys.get_mut(key) else {
            return Vec::new();
        };
        let (expired, kept): (VecDeque<Job>, VecDeque<Job>) = waiting
            .drain(..)
            .partition(|job| job.wait_deadline().is_some_and(|d| d <= now));
        *waiting = kept;
        self.jobs = self.jobs.saturating_sub(expired.len());
        expired.into()
    }

    /// Jobs held (running + waiting).
    pub fn len(&self) -> usize {
        self.jobs
    }

    pub fn is_empty(&self) -> bool {
        self.jobs == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(order: &str) -> PaymentKey {
        PaymentKey {
            merchant_id: "m".into(),
            order_no: order.into(),
        }
    }

    #[test]
    fn one_job_per_key_runs_and_the_rest_wait_in_order() {
        let mut q = KeyQueues::default();
        assert!(matches!(
            q.enqueue(key("a"), Job::Resume { retry: 1 }),
            Enqueued::Start(_)
        ));
        assert!(matches!(
            q.enqueue(key("a"), Job::Resume { retry: 2 }),
            Enqueued::Waiting
        ));
        assert!(matches!(
            q.enqueue(key("b"), Job::Resume { retry: 3 }),
            Enqueued::Start(_)
        ));
        assert!(matches!(
            q.enqueue(key("a"), Job::Resume { retry: 4 }),
            Enqueued::Waiting
        ));
        assert_eq!(q.len(), 4);
        assert!(matches!(
            q.finish(&key("a")),
            Some(Job::Resume { retry: 2 })
        ));
        assert!(matches!(
            q.finish(&key("a")),
            Some(Job::Resume { retry: 4 })
        ));
        assert!(q.finish(&key("a")).is_none());
        assert!(matches!(
            q.enqueue(key("a"), Job::Resume { retry: 5 }),
            Enqueued::Start(_)
        ));
        assert!(q.finish(&key("b")).is_none());
        assert!(q.finish(&key("a")).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn a_busy_key_is_bounded() {
        let mut q = KeyQueues::default();
        let _ = q.enqueue(key("a"), Job::Resume { retry: 0 });
        for _ in 0..KEY_WAITING_MAX {
            assert!(matches!(
                q.enqueue(key("a"), Job::Resume { retry: 0 }),
                Enqueued::Waiting
            ));
        }
        assert!(matches!(
            q.enqueue(key("a"), Job::Resume { retry: 0 }),
            Enqueued::Full(_)
        ));
    }
}
