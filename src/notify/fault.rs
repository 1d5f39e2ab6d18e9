//! Fault injection for tests: makes a channel's notifier panic on its next sends, to show
//! that a panic restarts the actor and loses nothing. Compiled only for tests (unit tests,
//! and integration tests through the `fault-injection` feature their dev-dependency turns
//! on): a release build has neither this module nor the check in the notifier.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::domain::delivery::Channel;

static PANICS: [AtomicU32; Channel::COUNT] = [const { AtomicU32::new(0) }; Channel::COUNT];

/// Makes the next `count` sends on `channel` panic (process-wide: use from one test binary
/// that runs one such test).
#[doc(hidden)]
pub fn inject_panics(channel: Channel, count: u32) {
    PANICS[channel.index()].store(count, Ordering::SeqCst);
}

/// Panics if a panic was injected for `channel`.
pub(crate) fn maybe_panic(channel: Channel) {
    let counter = &PANICS[channel.index()];
    let taken = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if taken.is_ok() {
        panic!("injected notifier panic ({})", channel.as_str());
    }
}
