//! Deterministic simulation tests of Franz. The tests live in `tests/` and compile only
//! with `RUSTFLAGS="--cfg madsim"`; see the README for the commands.
//!
//! This library holds what they share: a clock that reads madsim's simulated time and a
//! minimal Kafka client that speaks raw requests over madsim's simulated network.

#[cfg(madsim)]
pub mod kafka;

#[cfg(madsim)]
pub use clock::SimClock;

#[cfg(madsim)]
mod clock {
    use franz_core::Clock;

    /// Wall-clock time as madsim simulates it, so that a seed replays the same timestamps.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct SimClock;

    impl Clock for SimClock {
        fn now_ms(&self) -> i64 {
            let now = madsim::time::TimeHandle::current().now_time();
            now.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64
        }
    }
}
