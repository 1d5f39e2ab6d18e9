//! Sharded actors: the router maps a payment key to one of `shards.partitions` fixed
//! virtual partitions (FNV-1a of `merchant \0 order_no`), and partitions onto the shard
//! actors (`partition % shards`). Each shard actor runs on its own actix Arbiter thread and
//! serializes its keys' jobs; no lock is held across requests.

pub mod actor;
pub mod claims;
pub mod job;
pub mod messages;
pub mod queue;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::{Actor, Addr};

use crate::actor_thread;
use crate::shard::actor::ShardActor;
use crate::shard::job::ShardDeps;
use crate::shard::messages::{Job, PaymentKey, Ping, Submit};

/// The running shard actors and the actix system thread that hosts them.
pub struct Shards {
    addrs: Vec<Addr<ShardActor>>,
    partitions: u32,
    system: actix::System,
    thread: Option<JoinHandle<()>>,
}

/// FNV-1a, 64-bit (stable across builds, unlike `DefaultHasher`).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The partition of a payment key.
pub fn partition_of(key: &PaymentKey, partitions: u32) -> u32 {
    let hash = fnv1a(&[key.merchant_id.as_bytes(), &[0], key.order_no.as_bytes()]);
    (hash % u64::from(partitions.max(1))) as u32
}

impl Shards {
    /// Starts `count` shard actors, each on its own Arbiter, in a new actix system thread.
    ///
    /// # Panics
    /// If the system thread cannot be spawned (start-up only).
    pub fn start(
        count: usize,
        partitions: u32,
        deps: Arc<ShardDeps>,
        in_flight_wait: Duration,
    ) -> Shards {
        let started = actor_thread::spawn("paykeep-actors", count, move |index, arbiter| {
            let deps = Arc::clone(&deps);
            ShardActor::start_in_arbiter(arbiter, move |ctx| {
                // Before the address is handed out: actix's default mailbox holds 16, and
                // `started` runs only once the arbiter polls the actor, so a burst right
                // after start-up would get 503s.
                ctx.set_mailbox_capacity(actor::MAILBOX_CAPACITY);
                ShardActor::new(index, deps, in_flight_wait)
            })
        });
        Shards {
            addrs: started.addrs,
            partitions,
            system: started.system,
            thread: Some(started.thread),
        }
    }

    /// Hands `job` to the shard owning `key`.
    ///
    /// # Errors
    /// Gives the job back when the shard's mailbox is full or the shard has stopped; the
    /// caller answers 503.
    pub fn submit(&self, key: PaymentKey, job: Job) -> Result<(), Job> {
        let shard = partition_of(&key, self.partitions) as usize % self.addrs.len();
        self.addrs[shard]
            .try_send(Submit { key, job })
            .map_err(|e| match e {
                actix::prelude::SendError::Full(m) | actix::prelude::SendError::Closed(m) => m.job,
            })
    }

    /// Asks every shard for its job count; `None` for a shard that did not answer in time.
    pub async fn ping_all(&self, timeout: Duration) -> Vec<Option<usize>> {
        let mut out = Vec::with_capacity(self.addrs.len());
        for addr in &self.addrs {
            let answer = tokio::time::timeout(timeout, addr.send(Ping)).await;
            out.push(answer.ok().and_then(Result::ok));
        }
        out
    }

    /// Stops every shard actor and waits for their threads.
    pub fn stop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        let key = |o: &str| PaymentKey {
            merchant_id: "m_demo".into(),
            order_no: o.into(),
        };
        assert_eq!(
            partition_of(&key("o-1"), 256),
            partition_of(&key("o-1"), 256)
        );
        let used: std::collections::HashSet<u32> = (0..2000)
            .map(|i| partition_of(&key(&format!("o-{i}")), 256))
            .collect();
        assert!(used.len() > 200, "FNV-1a spreads keys over partitions");
    }
}
