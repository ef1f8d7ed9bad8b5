//! A broker node of the simulation: the real franz-server started through
//! [`franz_server::start`] on a madsim node, over a [`SimDisk`] that outlives the node's
//! crashes, with a clock the nemesis can move.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use franz_core::SimDisk;
use franz_server::broker::Broker;
use franz_server::ServerConfig;
use madsim::runtime::{Handle, NodeHandle};

use crate::clock::SimClock;
use crate::trace::Trace;

/// Port of the Kafka listener on every broker node.
pub const KAFKA_PORT: u16 = 9092;
/// How often a node whose start failed tries again, as a service manager would restart it.
const START_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Starts a node tries before the run fails: a broker that cannot start after its faults
/// were healed has not converged.
const MAX_START_ATTEMPTS: u32 = 100;

/// The broker state of the running node, for the read-only invariant checks. Empty while
/// the node is down.
pub type BrokerSlot = Arc<Mutex<Option<Arc<Broker<SimDisk>>>>>;

pub struct BrokerNode {
    pub node: NodeHandle,
    /// `ip:port` of the Kafka listener.
    pub address: String,
    /// The node's disk; it survives kills and loses only what was not synced.
    pub disk: SimDisk,
    pub clock: Arc<SimClock>,
    pub broker: BrokerSlot,
}

impl BrokerNode {
    /// Creates node `id` (1 for the first broker) and starts franz-server on it with
    /// `config`, whose listener and data folder this sets.
    pub fn start(handle: &Handle, id: u8, mut config: ServerConfig, disk: SimDisk, trace: Trace) -> BrokerNode {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, id));
        let address = format!("{ip}:{KAFKA_PORT}");
        config.listener = address.clone();
        config.grpc_listener = format!("{ip}:9093");
        config.data_dir = "/data".into();
        config.node_id = i32::from(id);

        let clock = Arc::new(SimClock::new());
        let broker: BrokerSlot = Arc::default();
        let init_disk = disk.clone();
        let init_clock = clock.clone();
        let init_broker = broker.clone();
        let node = handle
            .create_node()
            .name(format!("broker-{id}"))
            .ip(ip)
            .init(move || {
                let config = config.clone();
                let disk = init_disk.clone();
                let clock = init_clock.clone();
                let slot = init_broker.clone();
                let trace = trace.clone();
                async move { run_broker(id, config, disk, clock, slot, trace).await }
            })
            .build();
        BrokerNode {
            node,
            address,
            disk,
            clock,
            broker,
        }
    }

    /// Returns the broker state while the node is up.
    pub fn broker(&self) -> Option<Arc<Broker<SimDisk>>> {
        self.broker.lock().expect("broker slot").clone()
    }

    /// Kills the node at once, as a power loss would: its disk keeps only what was synced.
    pub fn crash(&self, handle: &Handle) {
        handle.kill(self.node.id());
        self.broker.lock().expect("broker slot").take();
        self.disk.crash();
    }

    pub fn restart(&self, handle: &Handle) {
        handle.restart(self.node.id());
    }
}

/// The node's main task: starts the server, retrying as a service manager would, and
/// serves until the node is killed.
async fn run_broker(id: u8, config: ServerConfig, disk: SimDisk, clock: Arc<SimClock>, slot: BrokerSlot, trace: Trace) {
    for attempt in 1..=MAX_START_ATTEMPTS {
        match franz_server::start(config.clone(), disk.clone(), clock.clone()).await {
            Ok(node) => {
                trace.note(format!("broker-{id} started"));
                *slot.lock().expect("broker slot") = Some(node.broker.clone());
                std::future::pending::<()>().await;
                drop(node);
                return;
            }
            Err(error) => {
                trace.note(format!("broker-{id} failed to start (attempt {attempt}): {error}"));
                madsim::time::sleep(START_RETRY_INTERVAL).await;
            }
        }
    }
    panic!("broker-{id} failed to start {MAX_START_ATTEMPTS} times in a row");
}
