//! Wall-clock time as madsim simulates it, plus an offset the nemesis moves to simulate
//! clock jumps. The broker reads time only through this clock.

use std::sync::atomic::{AtomicI64, Ordering};

use franz_core::Clock;

/// madsim's simulated wall clock, shifted by `offset_ms`.
#[derive(Debug, Default)]
pub struct SimClock {
    /// Milliseconds added to the simulated time: the sum of every jump so far.
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn new() -> SimClock {
        SimClock::default()
    }

    /// Moves the clock by `by_ms` milliseconds, backwards when negative.
    pub fn jump(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    /// Undoes every jump.
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let now = madsim::time::TimeHandle::current().now_time();
        let simulated = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        simulated + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// Returns madsim's simulated monotonic time. madsim's `Instant` is std's type, which the
/// lint bans outside the simulation, so the runtime's time handle is asked directly.
pub fn now() -> std::time::Instant {
    madsim::time::TimeHandle::current().now_instant()
}
