//! The clients of a run: producers and consumers built on franz-net's client library, each
//! on its own madsim node, recording every operation in the trace's history.
//!
//! A producer operation sends a few unique values to random partitions and waits for all
//! of them. A consumer operation is one poll. A producer whose operation ended with an
//! unknown outcome continues as a new process with a new producer id, because its sequence
//! numbers may no longer match the broker's. Group consumers subscribe to the topic in one
//! consumer group and commit after every poll that read something. A member that gets a
//! new assignment continues as a new process, because its positions now come from the
//! group's commits. After the faults are healed, a fresh producer writes one value to every
//! partition (the run must converge) and a fresh consumer reads every partition from the
//! start to its end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use franz_checker::{Action, EventKind, Process, Record, Value};
use franz_net::client::admin::Admin;
use franz_net::client::consumer::{Consumer, ConsumerConfig, Message, OffsetReset};
use franz_net::client::producer::{Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::{ClientConfig, Cluster};
use kafka_protocol::error::ResponseError;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::invariants::{Commit, Invariants};
use crate::swarm::SimConfig;
use crate::trace::Trace;

/// The workload's topic.
pub const TOPIC: &str = "events";
/// The consumer group of the group consumers.
pub const GROUP: &str = "sim-group";
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
    /// Clients whose loop returned after the stop.
    finished: Arc<Mutex<BTreeSet<String>>>,
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
            finished: Arc::default(),
        }
    }

    /// Asks every client to finish its current operation and return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Notes that the loop of the client called `name` returned.
    pub fn client_finished(&self, name: &str) {
        self.finished.lock().expect("finished clients").insert(name.to_string());
    }

    /// Returns how many clients have finished their loop.
    pub fn finished_clients(&self) -> usize {
        self.finished.lock().expect("finished clients").len()
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

    fn group_consumer_config(&self) -> ConsumerConfig {
        ConsumerConfig {
            group_id: Some(GROUP.to_string()),
            offset_reset: OffsetReset::Earliest,
            auto_commit: false,
            session_timeout: self.config.session_timeout,
            // Members rejoin at their next poll, well within a session timeout. The group
            // should not wait longer for a member that the nemesis cut off.
            rebalance_timeout: self.config.session_timeout,
            heartbeat_interval: self.config.session_timeout / 3,
            assignors: vec![self.config.assignor.to_string()],
            ..ConsumerConfig::default()
        }
    }

    /// Runs the group member called `name` until the workload stops: polls what the group
    /// assigns it and commits after every poll that read something.
    pub async fn run_group_consumer(self, name: String, mut rng: ChaCha8Rng) {
        while !self.stopped() {
            let Some(cluster) = self.connect().await else {
                return;
            };
            let mut consumer = Consumer::new(cluster, self.group_consumer_config());
            consumer
                .subscribe(&[TOPIC.to_string()])
                .expect("the group consumer's config names a group");
            let mut member = Member {
                name: name.clone(),
                process: self.trace.new_process(&name),
                resuming: BTreeMap::new(),
            };
            let mut failures = 0;
            while !self.stopped() && failures < 3 {
                match self.group_poll(&mut member, &mut consumer).await {
                    Ok(()) => failures = 0,
                    Err(()) => failures += 1,
                }
                think(&mut rng, self.config.max_think_time).await;
            }
            if let Err(error) = consumer.close().await {
                self.trace
                    .note(format!("p{} leaving the group failed: {error}", member.process));
            }
        }
    }

    /// Polls once as an operation of a group member, checks where the member resumed the
    /// partitions of a new assignment, and commits what it read.
    async fn group_poll(&self, member: &mut Member, consumer: &mut Consumer) -> Result<(), ()> {
        let trace = &self.trace;
        let membership = membership_of(consumer);
        // Every commit acknowledged before this poll must be visible to a join inside it.
        let floor = self.invariants.acknowledged_commits();
        let before = known_positions(consumer);

        trace.record(
            member.process,
            EventKind::Invoke,
            vec![Action::Poll { records: Vec::new() }],
        );
        let polled = consumer.poll(self.config.poll_timeout).await;
        let records = match &polled {
            Ok(messages) => to_records(messages),
            Err(_) => Vec::new(),
        };
        self.invariants.after_poll(&records).await;

        if membership_of(consumer) != membership {
            // What a poll reads after a rebalance starts from the group's commits, which
            // may lie behind what this process read. Its records stay out of the history,
            // and the member continues as a new process.
            let kind = if polled.is_ok() {
                EventKind::Info
            } else {
                EventKind::Fail
            };
            trace.record(member.process, kind, vec![Action::Poll { records: Vec::new() }]);
            let (member_id, generation) = consumer.membership().unwrap_or_default();
            trace.note(format!(
                "p{} joined the group as {member_id} in generation {generation} with partitions {:?}",
                member.process,
                partitions(consumer)
            ));
            member.process = trace.new_process(&member.name);
            member.resuming = partitions(consumer)
                .into_iter()
                .map(|partition| (partition, before.get(&partition).copied()))
                .collect();
        } else {
            let kind = if polled.is_ok() { EventKind::Ok } else { EventKind::Fail };
            trace.record(
                member.process,
                kind,
                vec![Action::Poll {
                    records: records.clone(),
                }],
            );
        }
        self.check_resumed(member, consumer, &records, &floor);

        match polled {
            Ok(messages) => {
                if !messages.is_empty() {
                    self.commit(member.process, consumer).await;
                }
                Ok(())
            }
            Err(error) => {
                trace.note(format!("p{} poll failed: {error}", member.process));
                Err(())
            }
        }
    }

    /// Checks each partition of the member's new assignment once its position is known:
    /// the first offset it read there, or its position when it read nothing yet.
    fn check_resumed(
        &self,
        member: &mut Member,
        consumer: &Consumer,
        records: &[Record],
        floor: &BTreeMap<i32, Commit>,
    ) {
        let mut checked = Vec::new();
        for (partition, own_position) in &member.resuming {
            let Some(position) = consumer.position(TOPIC, *partition) else {
                continue;
            };
            let resumed = records
                .iter()
                .filter(|record| record.key == *partition)
                .map(|record| record.offset)
                .min()
                .unwrap_or(position);
            self.invariants
                .check_resume(member.process, *partition, resumed, floor.get(partition), *own_position);
            checked.push(*partition);
        }
        for partition in checked {
            member.resuming.remove(&partition);
        }
    }

    /// Commits the member's positions and notes the outcome.
    async fn commit(&self, process: Process, consumer: &mut Consumer) {
        let offsets = known_positions(consumer);
        let membership = membership_of(consumer);
        let listed: Vec<String> = offsets
            .iter()
            .map(|(partition, offset)| format!("{partition}@{offset}"))
            .collect();
        self.invariants.commit_started(&offsets);
        match consumer.commit().await {
            Ok(()) => {
                self.invariants.commit_acknowledged(&offsets, &membership);
                self.trace.note(format!("p{process} committed {}", listed.join(" ")));
            }
            Err(error) => {
                // The coordinator checks membership before it writes, so its rejections
                // stored nothing. A commit that timed out may still arrive, though, and
                // one whose write failed may survive a crash.
                let rejected = error.kafka_error().is_some_and(|code| {
                    code != ResponseError::CoordinatorNotAvailable && code != ResponseError::NotCoordinator
                });
                if !rejected {
                    self.invariants.commit_unknown(&offsets, &membership);
                }
                self.trace
                    .note(format!("p{process} commit of {} failed: {error}", listed.join(" ")));
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
                let records = to_records(&messages);
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

/// A group consumer's state between polls.
struct Member {
    name: String,
    process: Process,
    /// Partitions of a new assignment whose resume point is not checked yet, with the
    /// member's own position from before the rebalance when it owned them already.
    resuming: BTreeMap<i32, Option<i64>>,
}

/// Returns the workload topic's partitions assigned to `consumer`.
fn partitions(consumer: &Consumer) -> Vec<i32> {
    consumer
        .assignment()
        .into_iter()
        .filter(|(topic, _)| topic == TOPIC)
        .map(|(_, partition)| partition)
        .collect()
}

/// Returns the member id and generation of the consumer's last join.
fn membership_of(consumer: &Consumer) -> Option<(String, i32)> {
    consumer
        .membership()
        .map(|(member_id, generation)| (member_id.to_string(), generation))
}

/// Returns the positions of `consumer` that are known, by partition.
fn known_positions(consumer: &Consumer) -> BTreeMap<i32, i64> {
    partitions(consumer)
        .into_iter()
        .filter_map(|partition| consumer.position(TOPIC, partition).map(|offset| (partition, offset)))
        .collect()
}

fn to_records(messages: &[Message]) -> Vec<Record> {
    messages
        .iter()
        .map(|message| Record {
            key: message.partition,
            offset: message.record.offset,
            value: decode_value(message.record.value.as_ref()),
        })
        .collect()
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
