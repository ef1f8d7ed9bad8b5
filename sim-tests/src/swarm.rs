//! The configuration of one run, drawn from its seed (swarm testing): which fault kinds are
//! on and how often they strike, the workload's size and shape, and client and broker
//! settings within their valid ranges. Different seeds explore different mixes, so a bug
//! that one fault kind hides behind another still shows up in some runs.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use franz_net::client::assignment::{COOPERATIVE_STICKY, RANGE};
use rand::Rng;

use crate::rng;

/// `group.min.session.timeout.ms` of the simulated broker: below Kafka's 6 s default, so
/// that members that are cut off leave the group within a short workload.
pub const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;

/// The fault kinds a run may inject. Only faults that the drawn broker settings promise to
/// survive are turned on: a crash loses unsynced writes, so every kind that ends in a
/// restart requires `flush_every_append`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultMix {
    /// Kill the broker node and restart it; the simulated disk drops unsynced writes and
    /// may tear the last one.
    pub crash: bool,
    /// Stop scheduling the broker node's tasks for a while, then resume them.
    pub pause: bool,
    /// Cut the network between the broker and one client or all of them, then heal it.
    pub partition: bool,
    /// Raise the network's latency for a while.
    pub slow_network: bool,
    /// Probability that a disk read fails with EIO while the fault is on.
    pub read_errors: Option<f64>,
    /// Make one fsync fail. The log then goes offline and the node is restarted.
    pub fsync_failure: bool,
    /// Let the disk fill up (ENOSPC) for a while. Appends fail and succeed again once space
    /// is freed; a log that went offline comes back at the restart of the final healing.
    pub disk_full: bool,
    /// Flip bits at rest, at a crash, in files that recovery checks or rebuilds: the
    /// partition checkpoints and the indexes of each partition's newest segment.
    pub bit_flips: bool,
    /// Move the broker's wall clock forwards or backwards by up to ten minutes.
    pub clock_jumps: bool,
    /// Kill a client node and restart it: its operation in flight never completes, and
    /// it starts again as a new process.
    pub client_crash: bool,
}

impl FaultMix {
    /// Returns whether any fault kind is on.
    pub fn any(&self) -> bool {
        *self != FaultMix::default()
    }

    /// Returns whether some fault kind ends in a restart of the broker.
    pub fn restarts(&self) -> bool {
        self.crash || self.fsync_failure || self.disk_full || self.bit_flips
    }
}

/// Everything a run decides up front.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Partitions of the workload's topic.
    pub partitions: i32,
    /// Producer processes, each on its own client node.
    pub producers: usize,
    /// Consumer processes that read assigned partitions, each on its own client node.
    pub consumers: usize,
    /// Consumers in one consumer group, each on its own client node. They subscribe to the
    /// topic and commit after every poll that read something.
    pub group_consumers: usize,
    /// The group's assignor: `range` or `cooperative-sticky`.
    pub assignor: &'static str,
    /// The group members' session timeout; heartbeats go every third of it.
    pub session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms` of the broker.
    pub initial_rebalance_delay: Duration,
    /// Sends in one producer operation; they are sent together and awaited together.
    pub max_sends_per_operation: usize,
    /// Maximum pause between two operations of a client.
    pub max_think_time: Duration,
    /// How long clients run before the faults are healed.
    pub workload_time: Duration,
    pub linger: Duration,
    pub batch_size: usize,
    /// The clients' maximum wait for one response.
    pub request_timeout: Duration,
    /// How long one poll waits for records.
    pub poll_timeout: Duration,
    /// `flush.messages=1` on the topic: every append is synced before it is acknowledged.
    pub flush_every_append: bool,
    /// `segment.bytes` of the topic, small so that runs roll segments.
    pub segment_bytes: u32,
    /// One-way latency of every network message.
    pub network_latency: Range<Duration>,
    /// Upper bound of the random delay of each disk operation.
    pub max_io_delay: Duration,
    pub faults: FaultMix,
    /// Mean time between two faults.
    pub mean_fault_interval: Duration,
    /// Maximum time a fault lasts before it is healed.
    pub max_fault_duration: Duration,
}

fn millis(rng: &mut impl Rng, range: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_millis(rng.random_range(range))
}

impl SimConfig {
    /// Draws the configuration of the run with `seed`.
    pub fn draw(seed: u64) -> SimConfig {
        let mut rng = rng::stream(seed, "swarm");

        // Each fault kind is on in a fifth to a half of the runs, so that many mixes are explored.
        let mut faults = FaultMix {
            crash: rng.random_bool(0.5),
            pause: rng.random_bool(0.3),
            partition: rng.random_bool(0.4),
            slow_network: rng.random_bool(0.3),
            read_errors: rng.random_bool(0.2).then(|| rng.random_range(0.001..0.05)),
            fsync_failure: rng.random_bool(0.2),
            disk_full: rng.random_bool(0.2),
            bit_flips: rng.random_bool(0.2),
            clock_jumps: rng.random_bool(0.3),
            // Drawn at the end of this function, after the group settings.
            client_crash: false,
        };
        // One run in ten has no faults at all, as a baseline.
        let baseline = rng.random_bool(0.1);
        if baseline {
            faults = FaultMix::default();
        }
        let flush_every_append = faults.restarts() || rng.random_bool(0.5);

        let latency_floor = rng.random_range(0..=2_000u64);
        let latency_ceiling = latency_floor + rng.random_range(1..=20_000u64);
        let mut config = SimConfig {
            seed,
            partitions: rng.random_range(1..=4),
            producers: rng.random_range(1..=4),
            consumers: rng.random_range(1..=3),
            max_sends_per_operation: rng.random_range(1..=6),
            max_think_time: millis(&mut rng, 1..=50),
            workload_time: millis(&mut rng, 2_000..=15_000),
            linger: millis(&mut rng, 0..=20),
            batch_size: rng.random_range(64..=16_384),
            request_timeout: millis(&mut rng, 300..=5_000),
            poll_timeout: millis(&mut rng, 10..=500),
            flush_every_append,
            segment_bytes: rng.random_range(1_024..=65_536),
            network_latency: Duration::from_micros(latency_floor)..Duration::from_micros(latency_ceiling),
            max_io_delay: Duration::from_micros(rng.random_range(0..=2_000)),
            faults,
            mean_fault_interval: millis(&mut rng, 100..=2_000),
            max_fault_duration: millis(&mut rng, 50..=3_000),
            group_consumers: 0,
            assignor: RANGE,
            session_timeout: Duration::ZERO,
            initial_rebalance_delay: Duration::ZERO,
        };
        // Drawn after everything above, so that these draws leave the earlier ones
        // unchanged. A third of the runs have no group.
        config.group_consumers = if rng.random_bool(1.0 / 3.0) {
            0
        } else {
            rng.random_range(1..=3)
        };
        config.assignor = if rng.random_bool(0.5) {
            RANGE
        } else {
            COOPERATIVE_STICKY
        };
        config.session_timeout = millis(&mut rng, MIN_SESSION_TIMEOUT_MS..=6_000);
        config.initial_rebalance_delay = millis(&mut rng, 0..=1_000);
        config.faults.client_crash = !baseline && rng.random_bool(0.3);
        config
    }
}

impl fmt::Display for FaultMix {
    /// Writes the fault kinds that are on, separated by commas, or "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read_errors = self
            .read_errors
            .map(|probability| format!("read errors ({probability:.3})"));
        let kinds = [
            (self.crash, "crash".to_string()),
            (self.pause, "pause".to_string()),
            (self.partition, "partition".to_string()),
            (self.slow_network, "slow network".to_string()),
            (read_errors.is_some(), read_errors.unwrap_or_default()),
            (self.fsync_failure, "fsync failure".to_string()),
            (self.disk_full, "disk full".to_string()),
            (self.bit_flips, "bit flips".to_string()),
            (self.clock_jumps, "clock jumps".to_string()),
            (self.client_crash, "client crash".to_string()),
        ];
        let on: Vec<String> = kinds.into_iter().filter(|(on, _)| *on).map(|(_, name)| name).collect();
        if on.is_empty() {
            return write!(f, "none");
        }
        write!(f, "{}", on.join(", "))
    }
}

impl fmt::Display for SimConfig {
    /// Writes the configuration on a few lines, as the first lines of a run's trace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} partitions, {} producers, {} consumers, {} sends per operation, workload {:?}",
            self.seed,
            self.partitions,
            self.producers,
            self.consumers,
            self.max_sends_per_operation,
            self.workload_time
        )?;
        if self.group_consumers > 0 {
            writeln!(
                f,
                "group: {} consumers, {} assignor, session timeout {:?}, initial rebalance delay {:?}",
                self.group_consumers, self.assignor, self.session_timeout, self.initial_rebalance_delay
            )?;
        }
        writeln!(
            f,
            "clients: linger {:?}, batch size {}, request timeout {:?}, poll timeout {:?}, think time up to {:?}",
            self.linger, self.batch_size, self.request_timeout, self.poll_timeout, self.max_think_time
        )?;
        writeln!(
            f,
            "broker: flush every append {}, segment bytes {}; network latency {:?}; disk delay up to {:?}",
            self.flush_every_append, self.segment_bytes, self.network_latency, self.max_io_delay
        )?;
        if !self.faults.any() {
            return write!(f, "faults: none");
        }
        write!(
            f,
            "faults: {}; one every {:?} on average, lasting up to {:?}",
            self.faults, self.mean_fault_interval, self.max_fault_duration
        )
    }
}
