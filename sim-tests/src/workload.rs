//! The clients of a run: producers and consumers built on franz-net's client library, each
//! on its own madsim node, recording every operation in the trace's history.
//!
//! A producer operation sends a few unique values to random partitions and waits for all
//! of them. A consumer operation is one poll. A producer whose operation ended with an
//! unknown outcome continues as a new process with a new producer id, because its sequence
//! numbers may no longer match the broker's. After the faults are healed, a fresh producer
//! writes one value to every partition (the run must converge) and a fresh consumer reads
//! every partition from the start to its end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franz_checker::{Action, EventKind, Process, Record, Value};
use franz_net::client::admin::Admin;
use franz_net::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use franz_net::client::producer::{Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::{ClientConfig, Cluster};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::invariants::Invariants;
use crate::swarm::SimConfig;
use crate::trace::Trace;

/// The workload's topic.
pub const TOPIC: &str = "events";
/// Pause before a client tries again after it could not connect.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// The state that clients share: the broker's address, the run's settings, the trace, the
/// next value to write and the stop flag.
#[derive(Clone)]
pub struct Workload {
    pub bootstrap: String,
    pub config: Arc<SimConfig>,
    pub trace: Trace,
    invariants: Invariants,
    next_value: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Workload {
    pub fn new(bootstrap: String, config: Arc<SimConfig>, trace: Trace, invariants: Invariants) -> Workload {
        Workload {
            bootstrap,
            config,
            trace,
            invariants,
            next_value: Arc::new(AtomicU64::new(1)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks every client to finish its current operation and return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn next_value(&self) -> Value {
        self.next_value.fetch_add(1, Ordering::SeqCst)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new([self.bootstrap.clone()]);
        config.request_timeout = self.config.request_timeout;
        config
    }

    fn producer_config(&self) -> ProducerConfig {
        ProducerConfig {
            linger: self.config.linger,
            batch_size: self.config.batch_size,
            // Few, quick retries: an operation should end within the workload's time even
            // when the broker is down, and an unknown outcome is a valid result.
            retries: 5,
            retry_backoff: Duration::from_millis(50),
            ..ProducerConfig::default()
        }
    }

    /// Connects until it works or the workload stops.
    async fn connect(&self) -> Option<Arc<Cluster>> {
        while !self.stopped() {
            match Cluster::connect(self.client_config()).await {
                Ok(cluster) => return Some(cluster),
                Err(_) => madsim::time::sleep(RECONNECT_BACKOFF).await,
            }
        }
        None
    }

    /// Creates the workload's topic, retrying until it succeeds.
    pub async fn create_topic(&self, configs: BTreeMap<String, String>) {
        loop {
            if let Some(cluster) = self.connect().await {
                let admin = Admin::new(cluster);
                match admin.create_topic(TOPIC, self.config.partitions, &configs).await {
                    Ok(()) => return,
                    Err(error) => self.trace.note(format!("creating the topic failed: {error}")),
                }
            }
            madsim::time::sleep(RECONNECT_BACKOFF).await;
        }
    }

    /// Runs the producer called `name` until the workload stops. `rng` is its own stream.
    pub async fn run_producer(self, name: String, mut rng: ChaCha8Rng) {
        'process: while !self.stopped() {
            let Some(cluster) = self.connect().await else {
                return;
            };
            let producer = match Producer::new(cluster, self.producer_config()).await {
                Ok(producer) => producer,
                Err(_) => {
                    madsim::time::sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            };
            let process = self.trace.new_process(&name);
            while !self.stopped() {
                let count = rng.random_range(1..=self.config.max_sends_per_operation);
                let sends: Vec<(i32, Value)> = (0..count)
                    .map(|_| (rng.random_range(0..self.config.partitions), self.next_value()))
                    .collect();
                let outcome = send_all(&self.trace, process, &producer, &sends).await;
                if outcome != EventKind::Ok {
                    // Every record of the operation has its result, so nothing is left to
                    // flush; the next process starts with a new producer id.
                    producer.close().await;
                    continue 'process;
                }
                think(&mut rng, self.config.max_think_time).await;
            }
            producer.close().await;
        }
    }

    /// Runs the consumer called `name` until the workload stops: polls every partition from
    /// the start.
    pub async fn run_consumer(self, name: String, mut rng: ChaCha8Rng) {
        while !self.stopped() {
            let Some(cluster) = self.connect().await else {
                return;
            };
            let mut consumer = new_consumer(cluster, self.config.partitions);
            let process = self.trace.new_process(&name);
            let mut failures = 0;
            while !self.stopped() && failures < 3 {
                match self.poll(process, &mut consumer, self.config.poll_timeout).await {
                    Ok(_) => failures = 0,
                    Err(()) => failures += 1,
                }
                think(&mut rng, self.config.max_think_time).await;
            }
        }
    }

    /// Writes one value to every partition with a fresh producer, retrying until each is
    /// acknowledged: after healing, the broker must accept writes again.
    pub async fn write_after_healing(&self) {
        let sends: Vec<(i32, Value)> = (0..self.config.partitions)
            .map(|partition| (partition, self.next_value()))
            .collect();
        for attempt in 1.. {
            if let Ok(cluster) = Cluster::connect(self.client_config()).await {
                if let Ok(producer) = Producer::new(cluster, self.producer_config()).await {
                    let process = self.trace.new_process("the final writer");
                    if send_all(&self.trace, process, &producer, &sends).await == EventKind::Ok {
                        producer.close().await;
                        return;
                    }
                }
            }
            assert!(
                attempt < 200,
                "seed {}: no write succeeded after healing",
                self.config.seed
            );
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads every partition from the start to its end offset as a fresh consumer.
    pub async fn read_everything(&self) {
        for attempt in 1.. {
            if self.try_read_everything().await {
                return;
            }
            assert!(
                attempt < 100,
                "seed {}: the final read did not finish",
                self.config.seed
            );
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_read_everything(&self) -> bool {
        let Ok(cluster) = Cluster::connect(self.client_config()).await else {
            return false;
        };
        let Ok(end_offsets) = Admin::new(cluster.clone()).list_offsets(TOPIC, -1).await else {
            return false;
        };
        let mut consumer = new_consumer(cluster, self.config.partitions);
        let process = self.trace.new_process("the final reader");
        for _ in 0..10_000 {
            let done = end_offsets.iter().all(|(partition, end)| {
                consumer
                    .position(TOPIC, *partition)
                    .is_some_and(|position| position >= *end)
            });
            if done {
                return true;
            }
            if self
                .poll(process, &mut consumer, Duration::from_millis(100))
                .await
                .is_err()
            {
                return false;
            }
        }
        false
    }

    /// Polls once as an operation of `process` and records it. A failed poll changes no
    /// position, so it is recorded as failed.
    async fn poll(&self, process: Process, consumer: &mut Consumer, timeout: Duration) -> Result<(), ()> {
        let trace = &self.trace;
        trace.record(process, EventKind::Invoke, vec![Action::Poll { records: Vec::new() }]);
        match consumer.poll(timeout).await {
            Ok(messages) => {
                let records: Vec<Record> = messages
                    .iter()
                    .map(|message| Record {
                        key: message.partition,
                        offset: message.record.offset,
                        value: decode_value(message.record.value.as_ref()),
                    })
                    .collect();
                self.invariants.after_poll(&records).await;
                trace.record(process, EventKind::Ok, vec![Action::Poll { records }]);
                Ok(())
            }
            Err(error) => {
                trace.record(process, EventKind::Fail, vec![Action::Poll { records: Vec::new() }]);
                trace.note(format!("p{process} poll failed: {error}"));
                Err(())
            }
        }
    }
}

fn new_consumer(cluster: Arc<Cluster>, partitions: i32) -> Consumer {
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        auto_commit: false,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(cluster, config);
    let assignment: Vec<(String, i32)> = (0..partitions)
        .map(|partition| (TOPIC.to_string(), partition))
        .collect();
    consumer.assign(&assignment);
    consumer
}

async fn think(rng: &mut ChaCha8Rng, max: Duration) {
    let nanos = rng.random_range(0..=max.as_nanos() as u64);
    madsim::time::sleep(Duration::from_nanos(nanos)).await;
}

/// Sends `sends` as one operation of `process` and records it. Returns the completion's
/// kind: `Ok` when every value was acknowledged, `Info` otherwise.
async fn send_all(trace: &Trace, process: Process, producer: &Producer, sends: &[(i32, Value)]) -> EventKind {
    let invocation = sends
        .iter()
        .map(|(key, value)| Action::Send {
            key: *key,
            value: *value,
            offset: None,
        })
        .collect();
    trace.record(process, EventKind::Invoke, invocation);

    let mut pending = Vec::new();
    for (key, value) in sends {
        let record = ProducerRecord {
            value: Some(Bytes::copy_from_slice(&value.to_be_bytes())),
            ..ProducerRecord::default()
        };
        pending.push(producer.send(TOPIC, Some(*key), record).await);
    }
    let mut completion = Vec::new();
    let mut all_acknowledged = true;
    for ((key, value), delivery) in sends.iter().zip(pending) {
        let offset = match delivery {
            Ok(future) => future.wait().await.ok().map(|delivery| delivery.offset),
            Err(_) => None,
        };
        all_acknowledged &= offset.is_some();
        completion.push(Action::Send {
            key: *key,
            value: *value,
            offset,
        });
    }
    let kind = if all_acknowledged {
        EventKind::Ok
    } else {
        EventKind::Info
    };
    trace.record(process, kind, completion);
    kind
}

/// Reads a value as the workload wrote it: eight big-endian bytes. Anything else becomes
/// `u64::MAX`, which no send writes, so the checker reports it as an unknown value.
fn decode_value(value: Option<&Bytes>) -> Value {
    value
        .and_then(|bytes| <[u8; 8]>::try_from(&bytes[..]).ok())
        .map_or(u64::MAX, u64::from_be_bytes)
}
