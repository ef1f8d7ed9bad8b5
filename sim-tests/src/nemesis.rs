//! The nemesis: injects the run's fault kinds at random times from its own random stream
//! and heals each one after a random duration. At the end of the workload it heals
//! everything, so that the run can check that the broker converges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use franz_core::{Disk, SimDiskFaults};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::node::BrokerNode;
use crate::swarm::SimConfig;
use crate::trace::Trace;

/// Maximum clock jump in either direction. Far below the default retention of seven days,
/// so that a jump never makes retention delete what the checker expects to read.
const MAX_CLOCK_JUMP_MS: i64 = 10 * 60 * 1000;
/// Latency of the network while a slow-network fault is on.
const SLOW_LATENCY: std::ops::Range<Duration> = Duration::from_millis(20)..Duration::from_millis(400);
/// Most free space left when a disk-full fault starts: a few small batches' worth.
const MAX_DISK_FULL_HEADROOM: u64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Crash,
    Pause,
    Partition,
    SlowNetwork,
    ReadErrors,
    FsyncFailure,
    DiskFull,
    BitFlips,
    ClockJump,
    ClientCrash,
}

impl Fault {
    /// Returns the fault's name in the run summary.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::SlowNetwork => "slow network",
            Fault::ReadErrors => "read errors",
            Fault::FsyncFailure => "fsync failure",
            Fault::DiskFull => "disk full",
            Fault::BitFlips => "bit flips",
            Fault::ClockJump => "clock jumps",
            Fault::ClientCrash => "client crash",
        }
    }
}

pub struct Nemesis {
    rng: ChaCha8Rng,
    config: std::sync::Arc<SimConfig>,
    handle: Handle,
    broker: std::sync::Arc<BrokerNode>,
    /// Client nodes and their names, whose links to the broker a partition may cut and
    /// which a client crash kills.
    clients: Vec<(NodeId, String)>,
    trace: Trace,
    /// Disk fault rates outside of any fault: the run's I/O delay and nothing else.
    calm_disk: SimDiskFaults,
}

impl Nemesis {
    pub fn new(
        rng: ChaCha8Rng,
        config: std::sync::Arc<SimConfig>,
        broker: std::sync::Arc<BrokerNode>,
        clients: Vec<(NodeId, String)>,
        trace: Trace,
    ) -> Nemesis {
        let calm_disk = SimDiskFaults {
            max_io_delay: config.max_io_delay,
            ..SimDiskFaults::default()
        };
        Nemesis {
            rng,
            config,
            handle: Handle::current(),
            broker,
            clients,
            trace,
            calm_disk,
        }
    }

    fn enabled(&self) -> Vec<Fault> {
        let faults = &self.config.faults;
        let mut enabled = Vec::new();
        let kinds = [
            (faults.crash, Fault::Crash),
            (faults.pause, Fault::Pause),
            (faults.partition, Fault::Partition),
            (faults.slow_network, Fault::SlowNetwork),
            (faults.read_errors.is_some(), Fault::ReadErrors),
            (faults.fsync_failure, Fault::FsyncFailure),
            (faults.disk_full, Fault::DiskFull),
            (faults.bit_flips, Fault::BitFlips),
            (faults.clock_jumps, Fault::ClockJump),
            (faults.client_crash && !self.clients.is_empty(), Fault::ClientCrash),
        ];
        for (on, fault) in kinds {
            if on {
                enabled.push(fault);
            }
        }
        enabled
    }

    /// Injects faults one after another for `duration`, then heals everything.
    pub async fn run(&mut self, duration: Duration) {
        let enabled = self.enabled();
        let start = crate::clock::now();
        if !enabled.is_empty() {
            loop {
                let mean = self.config.mean_fault_interval.as_millis() as u64;
                let wait = Duration::from_millis(self.rng.random_range(0..=2 * mean));
                if crate::clock::now().duration_since(start) + wait >= duration {
                    break;
                }
                madsim::time::sleep(wait).await;
                let fault = *enabled.choose(&mut self.rng).expect("some fault is enabled");
                let drawn = Duration::from_millis(
                    self.rng
                        .random_range(1..=self.config.max_fault_duration.as_millis() as u64),
                );
                // A fault ends by the end of the workload, so healing starts on time.
                let left = duration.saturating_sub(crate::clock::now().duration_since(start));
                self.inject(fault, drawn.min(left)).await;
            }
        }
        let left = duration.saturating_sub(crate::clock::now().duration_since(start));
        madsim::time::sleep(left).await;
    }

    async fn inject(&mut self, fault: Fault, length: Duration) {
        self.trace.count_fault(fault.name());
        match fault {
            Fault::Crash => {
                self.trace.note("nemesis: crash broker-1");
                self.broker.crash(&self.handle);
                madsim::time::sleep(length).await;
                self.trace.note("nemesis: restart broker-1");
                self.broker.restart(&self.handle);
            }
            Fault::Pause => {
                self.trace.note("nemesis: pause broker-1");
                self.handle.pause(self.broker.node.id());
                madsim::time::sleep(length).await;
                self.trace.note("nemesis: resume broker-1");
                self.handle.resume(self.broker.node.id());
            }
            Fault::Partition => self.partition(length).await,
            Fault::SlowNetwork => {
                self.trace.note(format!("nemesis: network latency {SLOW_LATENCY:?}"));
                let normal = self.config.network_latency.clone();
                NetSim::current().update_config(|net| net.send_latency = SLOW_LATENCY);
                madsim::time::sleep(length).await;
                self.trace.note("nemesis: network latency back to normal");
                NetSim::current().update_config(|net| net.send_latency = normal);
            }
            Fault::ReadErrors => {
                let probability = self.config.faults.read_errors.unwrap_or(0.01);
                self.trace
                    .note(format!("nemesis: disk reads fail with probability {probability}"));
                self.broker.disk.set_faults(SimDiskFaults {
                    read_error_probability: probability,
                    ..self.calm_disk.clone()
                });
                madsim::time::sleep(length).await;
                self.trace.note("nemesis: disk reads healed");
                self.broker.disk.set_faults(self.calm_disk.clone());
            }
            Fault::FsyncFailure => {
                // A failed fsync takes the log offline until the broker restarts, as a
                // service manager would restart a broker that stopped.
                self.trace.note("nemesis: the next fsync fails");
                self.broker.disk.fail_next_fsync();
                madsim::time::sleep(length).await;
                self.restart_broker("after the failed fsync");
            }
            Fault::DiskFull => {
                let capacity = self.broker.disk.used_bytes() + self.rng.random_range(0..=MAX_DISK_FULL_HEADROOM);
                self.trace.note(format!("nemesis: disk full at {capacity} bytes"));
                self.broker.disk.set_faults(SimDiskFaults {
                    capacity_bytes: Some(capacity),
                    ..self.calm_disk.clone()
                });
                madsim::time::sleep(length).await;
                self.trace.note("nemesis: disk space freed");
                self.broker.disk.set_faults(self.calm_disk.clone());
            }
            Fault::BitFlips => self.flip_bits(length).await,
            Fault::ClockJump => {
                let jump = self.rng.random_range(-MAX_CLOCK_JUMP_MS..=MAX_CLOCK_JUMP_MS);
                self.trace.note(format!("nemesis: broker clock jumps by {jump} ms"));
                self.broker.clock.jump(jump);
            }
            Fault::ClientCrash => {
                let (client, name) = self.clients.choose(&mut self.rng).cloned().expect("clients exist");
                self.trace.note(format!("nemesis: crash {name}"));
                self.handle.kill(client);
                madsim::time::sleep(length).await;
                self.trace.note(format!("nemesis: restart {name}"));
                self.handle.restart(client);
            }
        }
    }

    /// Cuts the links between the broker and all clients or one of them, in one or both
    /// directions, then restores them.
    async fn partition(&mut self, length: Duration) {
        let net = NetSim::current();
        let broker = self.broker.node.id();
        if self.rng.random_bool(0.5) || self.clients.is_empty() {
            self.trace.note("nemesis: isolate broker-1");
            net.clog_node(broker);
            madsim::time::sleep(length).await;
            self.trace.note("nemesis: reconnect broker-1");
            net.unclog_node(broker);
            return;
        }
        let (client, name) = self.clients.choose(&mut self.rng).cloned().expect("clients exist");
        let both = self.rng.random_bool(0.5);
        let direction = if both {
            "both ways"
        } else {
            "from the client to the broker"
        };
        self.trace
            .note(format!("nemesis: cut {name} off broker-1, {direction}"));
        net.clog_link(client, broker);
        if both {
            net.clog_link(broker, client);
        }
        madsim::time::sleep(length).await;
        self.trace.note(format!("nemesis: reconnect {name}"));
        net.unclog_link(client, broker);
        net.unclog_link(broker, client);
    }

    /// Crashes the broker, flips a few bits of its checkpoint and newest index files as
    /// they rest on disk, and restarts it.
    async fn flip_bits(&mut self, length: Duration) {
        self.trace.note("nemesis: crash broker-1 to flip bits at rest");
        self.broker.crash(&self.handle);
        let candidates = self.recovery_checked_files().await;
        let flips = self.rng.random_range(1..=3);
        for _ in 0..flips {
            let Some(path) = candidates.choose(&mut self.rng) else {
                break;
            };
            let Ok(contents) = self.broker.disk.contents(path) else {
                continue;
            };
            if contents.is_empty() {
                continue;
            }
            let position = self.rng.random_range(0..contents.len() as u64);
            let bit = self.rng.random_range(0..8u8);
            self.trace.note(format!(
                "nemesis: flip bit {bit} of byte {position} of {}",
                path.display()
            ));
            self.broker
                .disk
                .flip_bit(path, position, bit)
                .expect("the position is inside the file");
        }
        madsim::time::sleep(length).await;
        self.trace.note("nemesis: restart broker-1");
        self.broker.restart(&self.handle);
    }

    /// Returns the files that recovery checks or rebuilds after a crash: every partition's
    /// checkpoint and the index files of its newest segment.
    async fn recovery_checked_files(&self) -> Vec<PathBuf> {
        let disk = &self.broker.disk;
        let mut files = Vec::new();
        let Ok(partitions) = disk.list_dir(Path::new("/data")).await else {
            return files;
        };
        for partition in partitions {
            let Ok(entries) = disk.list_dir(&partition).await else {
                continue;
            };
            let is = |entry: &PathBuf, extension: &str| entry.extension().is_some_and(|found| found == extension);
            let newest_base = entries
                .iter()
                .filter(|entry| is(entry, "log"))
                .filter_map(|entry| entry.file_stem())
                .max()
                .map(|stem| stem.to_os_string());
            for entry in entries {
                let newest = newest_base.as_deref() == entry.file_stem();
                let index = is(&entry, "index") || is(&entry, "timeindex");
                if (index && newest) || entry.file_name().is_some_and(|name| name == "partition.checkpoint") {
                    files.push(entry);
                }
            }
        }
        files
    }

    fn restart_broker(&self, reason: &str) {
        self.trace.note(format!("nemesis: restart broker-1 {reason}"));
        self.broker.crash(&self.handle);
        self.broker.restart(&self.handle);
    }

    /// Removes every fault: reconnects the network, resumes the node, clears disk faults,
    /// resets the clock, and restarts the broker when a fault may have left a log offline.
    pub async fn heal(&self) {
        self.trace.note("nemesis: heal everything");
        let net = NetSim::current();
        let broker = self.broker.node.id();
        net.unclog_node(broker);
        for (client, _) in &self.clients {
            net.unclog_link(*client, broker);
            net.unclog_link(broker, *client);
        }
        let normal = self.config.network_latency.clone();
        net.update_config(|config| config.send_latency = normal);
        self.handle.resume(broker);
        self.broker.disk.set_faults(self.calm_disk.clone());
        self.broker.clock.reset();
        // A full disk that stops a segment roll takes that log offline, as Kafka takes a
        // log folder offline, and only a restart brings it back.
        if self.config.faults.fsync_failure || self.config.faults.disk_full {
            self.restart_broker("to bring offline logs back");
        }
    }
}
