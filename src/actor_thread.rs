//! One actix system on a thread of its own, one Arbiter (thread) per actor: how the shard
//! actors ([`crate::shard`]) and the notifier actors ([`crate::notify`]) both run, apart
//! from the tokio runtime that serves HTTP.

use std::thread::JoinHandle;

use actix::{Actor, Addr, Arbiter, ArbiterHandle};

/// The running system: the actors' addresses in start order, the system (to stop it) and
/// its thread (to join once stopped).
pub struct ActorThread<A: Actor> {
    pub addrs: Vec<Addr<A>>,
    pub system: actix::System,
    pub thread: JoinHandle<()>,
}

/// Starts an actix system on a thread named `name` with `count` Arbiters, and in each the
/// actor `start(index, arbiter)` starts; returns once every address is known. Stopping the
/// system stops and joins the Arbiters before the thread ends.
///
/// # Panics
/// If the thread cannot be spawned or the system does not start (start-up only).
pub fn spawn<A, F>(name: &str, count: usize, start: F) -> ActorThread<A>
where
    A: Actor,
    F: Fn(usize, &ArbiterHandle) -> Addr<A> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let system = actix::System::new();
            let arbiters: Vec<Arbiter> = (0..count).map(|_| Arbiter::new()).collect();
            let addrs: Vec<Addr<A>> = arbiters
                .iter()
                .enumerate()
                .map(|(index, arbiter)| start(index, &arbiter.handle()))
                .collect();
            let _ = tx.send((addrs, actix::System::current()));
            let _ = system.run();
            for arbiter in arbiters {
                arbiter.stop();
                let _ = arbiter.join();
            }
        })
        .expect("spawn actor system thread");
    let (addrs, system) = rx.recv().expect("actor system started");
    ActorThread {
        addrs,
        system,
        thread,
    }
}
