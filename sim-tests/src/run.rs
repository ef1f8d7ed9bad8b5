//! One run of the simulation: everything that happens for one seed.
//!
//! 1. Draw the configuration from the seed and build madsim's runtime with it.
//! 2. Start a broker node and create the workload's topic.
//! 3. Run producers, consumers, group consumers, the nemesis and the invariant checks for
//!    the workload time.
//! 4. Heal every fault, write once more to every partition, and read everything back.
//! 5. Check the history; the run passes when the checker and the invariants found nothing.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use franz_checker::Report;
use franz_core::{SimDisk, SimDiskFaults};
use franz_server::ServerConfig;
use madsim::runtime::{Handle, Runtime};
use rand::Rng;

use crate::invariants::Invariants;
use crate::nemesis::Nemesis;
use crate::node::BrokerNode;
use crate::rng;
use crate::swarm::SimConfig;
use crate::trace::Trace;
use crate::workload::Workload;

/// Simulated time a run may take after its workload before it counts as hung.
const HEALING_TIME_LIMIT: Duration = Duration::from_secs(600);

/// The result of one run.
pub struct Outcome {
    pub seed: u64,
    pub config: SimConfig,
    /// The checker's report; `None` when the run panicked before the check.
    pub report: Option<Report>,
    pub violations: Vec<String>,
    /// The panic message, when the run panicked (a failed assertion in the harness, a
    /// panic inside the broker, or the time limit).
    pub panic: Option<String>,
    /// Hash of the trace; the same seed must give the same hash.
    pub trace_hash: u64,
    pub trace: Vec<String>,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.panic.is_none() && self.violations.is_empty() && self.report.as_ref().is_some_and(Report::is_valid)
    }

    /// Returns the kinds of failure found, for matching a planted bug: anomaly class
    /// names, "invariant" and "panic".
    pub fn failure_kinds(&self) -> Vec<String> {
        let mut kinds = Vec::new();
        if let Some(report) = &self.report {
            for anomaly in &report.anomalies {
                kinds.push(anomaly.class().name().to_string());
            }
        }
        if !self.violations.is_empty() {
            kinds.push("invariant".to_string());
        }
        if self.panic.is_some() {
            kinds.push("panic".to_string());
        }
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// Runs the simulation for `seed` on the current thread. `echo` prints the trace as it is
/// written. Every run must get a thread of its own: madsim refuses to nest runtimes, and
/// the standard library's hash maps draw their keys once per thread.
pub fn run_seed(seed: u64, echo: bool) -> Outcome {
    let config = SimConfig::draw(seed);
    let mut madsim_config = madsim::Config::default();
    madsim_config.net.send_latency = config.network_latency.clone();
    let mut runtime = Runtime::with_seed_and_config(seed, madsim_config);
    runtime.set_time_limit(config.workload_time + HEALING_TIME_LIMIT);

    let shared = Arc::new(config.clone());
    let (sender, receiver) = std::sync::mpsc::channel();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async move {
            let trace = Trace::new(echo);
            // Send the trace out first, so that a panic later still leaves it readable.
            let _ = sender.send(trace.clone());
            simulate(shared, trace).await
        })
    }));
    let trace = receiver.try_recv().ok();
    let (trace_lines, trace_hash, faults) = trace.map_or((Vec::new(), 0, BTreeMap::new()), |trace| {
        (trace.lines(), trace.hash(), trace.faults())
    });
    match result {
        Ok((report, violations, simulated)) => Outcome {
            seed,
            config,
            report: Some(report),
            violations,
            panic: None,
            trace_hash,
            trace: trace_lines,
            simulated,
            faults,
        },
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(ToString::to_string))
                .unwrap_or_else(|| "a panic without a message".to_string());
            Outcome {
                seed,
                config,
                report: None,
                violations: Vec::new(),
                panic: Some(message),
                trace_hash,
                trace: trace_lines,
                simulated: Duration::ZERO,
                faults,
            }
        }
    }
}

/// Returns the settings of the workload's topic.
fn topic_configs(config: &SimConfig) -> BTreeMap<String, String> {
    let mut configs = BTreeMap::new();
    configs.insert("segment.bytes".to_string(), config.segment_bytes.to_string());
    if config.flush_every_append {
        configs.insert("flush.messages".to_string(), "1".to_string());
    }
    configs
}

async fn simulate(config: Arc<SimConfig>, trace: Trace) -> (Report, Vec<String>, Duration) {
    let handle = Handle::current();
    let start = crate::clock::now();
    for line in config.to_string().lines() {
        trace.note(line);
    }

    let disk = SimDisk::with_faults(
        rng::stream(config.seed, "disk").random::<u64>(),
        SimDiskFaults {
            max_io_delay: config.max_io_delay,
            ..SimDiskFaults::default()
        },
    );
    let mut server_config = ServerConfig::default();
    // The simulated disk keeps files in memory, and an active segment's indexes are as
    // large as segment.index.bytes (10 MiB by default).
    server_config
        .topic_defaults
        .insert("segment.index.bytes".to_string(), "4096".to_string());
    server_config.group_min_session_timeout_ms = crate::swarm::MIN_SESSION_TIMEOUT_MS as i32;
    server_config.group_initial_rebalance_delay_ms = config.initial_rebalance_delay.as_millis() as i64;
    let broker = Arc::new(BrokerNode::start(&handle, 1, server_config, disk, trace.clone()));
    let invariants = Invariants::new(broker.broker.clone(), trace.clone(), config.flush_every_append);
    let workload = Workload::new(
        broker.address.clone(),
        config.clone(),
        trace.clone(),
        invariants.clone(),
    );

    let setup = handle.create_node().name("setup").ip([10, 0, 1, 1].into()).build();
    let topic_workload = workload.clone();
    let topic_configs = topic_configs(&config);
    setup
        .spawn(async move { topic_workload.create_topic(topic_configs).await })
        .await
        .expect("the topic creation task");
    trace.note("topic created");

    let checker = tokio::spawn(invariants.clone().run());
    let mut client_nodes = Vec::new();
    let kinds = [
        (ClientKind::Producer, config.producers),
        (ClientKind::Consumer, config.consumers),
        (ClientKind::GroupConsumer, config.group_consumers),
    ];
    for (kind, count) in kinds {
        for slot in 0..count {
            let node = start_client(&handle, &workload, kind, slot);
            client_nodes.push((node.id(), kind.name(slot)));
        }
    }

    let client_count = client_nodes.len();
    let mut nemesis = Nemesis::new(
        rng::stream(config.seed, "nemesis"),
        config.clone(),
        broker.clone(),
        client_nodes,
        trace.clone(),
    );
    nemesis.run(config.workload_time).await;
    workload.stop();
    nemesis.heal().await;
    trace.note("workload stopped; every fault healed");
    while workload.finished_clients() < client_count {
        madsim::time::sleep(Duration::from_millis(10)).await;
    }

    let final_node = handle.create_node().name("final").ip([10, 0, 4, 1].into()).build();
    let final_workload = workload.clone();
    final_node
        .spawn(async move {
            final_workload.write_after_healing().await;
            final_workload.read_everything().await;
        })
        .await
        .expect("the final read task");
    invariants.check_once().await;
    checker.abort();

    let report = franz_checker::check(&trace.history());
    let summary = report.to_string();
    trace.note(format!("check: {}", summary.lines().next().unwrap_or_default()));
    (
        report,
        invariants.violations(),
        crate::clock::now().duration_since(start),
    )
}

/// The kinds of client node, each running one loop of [`Workload`].
#[derive(Clone, Copy)]
enum ClientKind {
    Producer,
    Consumer,
    GroupConsumer,
}

impl ClientKind {
    /// Returns the name of the client in `slot`, which names its node and its random stream.
    fn name(self, slot: usize) -> String {
        match self {
            ClientKind::Producer => format!("producer-{slot}"),
            ClientKind::Consumer => format!("consumer-{slot}"),
            ClientKind::GroupConsumer => format!("group-consumer-{slot}"),
        }
    }

    fn ip(self, slot: usize) -> std::net::IpAddr {
        let subnet = match self {
            ClientKind::Producer => 2,
            ClientKind::Consumer => 3,
            ClientKind::GroupConsumer => 5,
        };
        [10, 0, subnet, slot as u8 + 1].into()
    }
}

/// Creates the node of one client and starts its loop. A restart after a client crash
/// runs the loop again, as a new process with a random stream of its own.
fn start_client(handle: &Handle, workload: &Workload, kind: ClientKind, slot: usize) -> madsim::runtime::NodeHandle {
    let name = kind.name(slot);
    let workload = workload.clone();
    let starts = Arc::new(AtomicU64::new(0));
    let node_name = name.clone();
    handle
        .create_node()
        .name(node_name)
        .ip(kind.ip(slot))
        .init(move || {
            let workload = workload.clone();
            let name = name.clone();
            let restarts = starts.fetch_add(1, Ordering::SeqCst);
            // The first start draws from the stream named after the client alone, and each
            // restart from a stream of its own.
            let stream_name = if restarts == 0 {
                name.clone()
            } else {
                format!("{name} restart {restarts}")
            };
            let stream = rng::stream(workload.config.seed, &stream_name);
            async move {
                match kind {
                    ClientKind::Producer => workload.clone().run_producer(name.clone(), stream).await,
                    ClientKind::Consumer => workload.clone().run_consumer(name.clone(), stream).await,
                    ClientKind::GroupConsumer => workload.clone().run_group_consumer(name.clone(), stream).await,
                }
                workload.client_finished(&name);
            }
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a seed on a thread of its own, as the runner does.
    #[allow(clippy::disallowed_methods)] // A test driver, outside any simulation.
    fn run(seed: u64) -> Outcome {
        std::thread::spawn(move || run_seed(seed, false))
            .join()
            .expect("run_seed catches the run's panics")
    }

    #[test]
    fn same_seed_gives_same_trace() {
        let first = run(7);
        let second = run(7);
        assert!(first.trace.len() > 10, "the run wrote a trace");
        assert_eq!(first.trace_hash, second.trace_hash);
        assert_eq!(first.trace, second.trace);
    }

    #[test]
    fn different_seeds_give_different_traces() {
        assert_ne!(run(7).trace_hash, run(8).trace_hash);
    }

    #[test]
    fn run_writes_and_reads_back() {
        let outcome = run(3);
        assert!(outcome.passed(), "seed 3 failed: {:?}", outcome.failure_kinds());
        let report = outcome.report.expect("the run reached the check");
        assert!(report.acknowledged_sends > 0, "the workload wrote nothing");
        assert!(report.values_read >= report.acknowledged_sends);
    }
}
