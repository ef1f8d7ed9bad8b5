//! The producer: records are batched per partition for up to `linger` or `batch_size`
//! bytes, sent to each partition's leader, and retried on retriable errors. With
//! idempotence (the default) every batch carries the producer id and a sequence number,
//! so a retry after a lost response is stored once.
//!
//! One background task sends. Each partition has at most one batch in flight, which
//! keeps sequence numbers in order without the broker's five-batch window.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franz_core::batch::Compression;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Mutex, Notify};
use tracing::{debug, warn};

use super::cluster::Cluster;
use super::error::{check, ClientError, Result};
use super::records::{encode_batch, ProducerFields, ProducerRecord};
use crate::partitioner::partition_for_key;

/// Producer settings, with the Java client's defaults where it has one.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0, 1 or -1 (all in-sync replicas).
    pub acks: i16,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// A batch is sent once its records reach this many bytes.
    pub batch_size: usize,
    pub compression: Compression,
    /// Gives batches a producer id and sequence numbers so that retries are stored once.
    /// Needs acks=-1.
    pub idempotence: bool,
    /// Attempts per batch before its records fail.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            idempotence: true,
            retries: 20,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// The partition and offset of a stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0, where the broker returns nothing.
    pub offset: i64,
}

type DeliverySender = oneshot::Sender<Result<Delivery>>;

/// A pending result of [`Producer::send`].
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<Delivery>>,
}

impl DeliveryFuture {
    /// Waits until the record is stored or has failed.
    pub async fn wait(self) -> Result<Delivery> {
        self.receiver.await.unwrap_or_else(|_| {
            Err(ClientError::InvalidArgument(
                "the producer was closed before the record was sent".to_string(),
            ))
        })
    }
}

struct PendingBatch {
    records: Vec<ProducerRecord>,
    senders: Vec<DeliverySender>,
    bytes: usize,
    /// When the first record was added; the batch is ready `linger` later.
    created: tokio::time::Instant,
}

#[derive(Default)]
struct Queues {
    /// Batches per (topic, partition), oldest first.
    batches: BTreeMap<(String, i32), VecDeque<PendingBatch>>,
    /// The partition that records without a key and without a partition go to, per topic,
    /// until its batch is sent (Kafka's sticky partitioner).
    sticky: BTreeMap<String, i32>,
    /// Next sequence number per partition, for idempotence.
    sequences: BTreeMap<(String, i32), i32>,
    flush_requested: bool,
    closed: bool,
}

struct Inner {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    producer: Option<(i64, i16)>,
    queues: Mutex<Queues>,
    wake: Notify,
    flushed: Notify,
}

pub struct Producer {
    inner: Arc<Inner>,
    sender: tokio::task::JoinHandle<()>,
}

/// Estimated bytes of a record inside a batch, for `batch_size`.
fn record_size(record: &ProducerRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Bytes::len) + 2)
        .sum();
    record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len) + headers + 10
}

impl Producer {
    /// Creates a producer; with idempotence it first gets a producer id from a broker.
    pub async fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Producer> {
        if !matches!(config.acks, -1..=1) {
            return Err(ClientError::InvalidArgument(format!(
                "acks {} is not 0, 1 or -1 (all)",
                config.acks
            )));
        }
        if config.idempotence && config.acks != -1 {
            return Err(ClientError::InvalidArgument(
                "idempotence needs acks=-1 (all); turn idempotence off for acks 0 or 1".to_string(),
            ));
        }
        let producer = if config.idempotence {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            let (response, _) = cluster.send_any(request, 0, 4).await?;
            check(|| "getting a producer id".to_string(), response.error_code, None)?;
            Some((response.producer_id.0, response.producer_epoch))
        } else {
            None
        };
        let inner = Arc::new(Inner {
            cluster,
            config,
            producer,
            queues: Mutex::new(Queues::default()),
            wake: Notify::new(),
            flushed: Notify::new(),
        });
        let sender = tokio::spawn(run_sender(inner.clone()));
        Ok(Producer { inner, sender })
    }

    /// Queues a record for `topic`. The partition is `partition` when given, else
    /// murmur2 of the key, else the topic's sticky partition. Returns once the record is
    /// queued; the future completes when it is stored.
    pub async fn send(&self, topic: &str, partition: Option<i32>, record: ProducerRecord) -> Result<DeliveryFuture> {
        let count = self.inner.cluster.partition_count(topic, true).await? as i32;
        if count == 0 {
            return Err(ClientError::UnknownTopic(topic.to_string()));
        }
        let mut queues = self.inner.queues.lock().await;
        if queues.closed {
            return Err(ClientError::InvalidArgument("the producer is closed".to_string()));
        }
        let partition = match (partition, &record.key) {
            (Some(partition), _) if !(0..count).contains(&partition) => {
                return Err(ClientError::InvalidArgument(format!(
                    "topic {topic:?} has no partition {partition}; it has {count}"
                )))
            }
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => *queues
                .sticky
                .entry(topic.to_string())
                .or_insert_with(|| (madsim::rand::random::<u32>() % count as u32) as i32),
        };

        let (sender, receiver) = oneshot::channel();
        let size = record_size(&record);
        let batch_size = self.inner.config.batch_size;
        let batches = queues.batches.entry((topic.to_string(), partition)).or_default();
        let needs_new = batches.back().is_none_or(|batch| batch.bytes + size > batch_size);
        // Starting a batch behind another means the earlier one is full: send it now.
        let earlier_full = needs_new && !batches.is_empty();
        if needs_new {
            batches.push_back(PendingBatch {
                records: Vec::new(),
                senders: Vec::new(),
                bytes: 0,
                created: now(),
            });
        }
        let batch = batches.back_mut().expect("a batch was just ensured");
        batch.records.push(record);
        batch.senders.push(sender);
        batch.bytes += size;
        let full = batch.bytes >= batch_size || earlier_full;
        drop(queues);
        // A new batch wakes the sender too, so that its linger timer starts now: with a
        // linger of zero it is sent at once instead of at the sender's next idle check.
        if full || needs_new {
            self.inner.wake.notify_one();
        }
        Ok(DeliveryFuture { receiver })
    }

    /// Sends every queued record now and waits until all are stored or failed.
    pub async fn flush(&self) {
        loop {
            let flushed = self.inner.flushed.notified();
            tokio::pin!(flushed);
            flushed.as_mut().enable();
            {
                let mut queues = self.inner.queues.lock().await;
                if queues.batches.values().all(VecDeque::is_empty) {
                    return;
                }
                queues.flush_requested = true;
            }
            self.inner.wake.notify_one();
            flushed.await;
        }
    }

    /// Flushes and stops the sender task.
    pub async fn close(self) {
        self.flush().await;
        self.inner.queues.lock().await.closed = true;
        self.inner.wake.notify_one();
        let _ = self.sender.await;
    }
}

/// One batch taken off a queue to send.
struct Outgoing {
    topic: String,
    partition: i32,
    batch: PendingBatch,
    base_sequence: i32,
}

async fn run_sender(inner: Arc<Inner>) {
    loop {
        let (ready, wait, closed) = take_ready(&inner).await;
        if ready.is_empty() {
            if closed {
                return;
            }
            inner.flushed.notify_waiters();
            tokio::select! {
                biased;
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        send_all(&inner, ready).await;
    }
}

/// Takes the batches that are full, lingered long enough, or flushed. Returns them, how
/// long until the next batch is ready, and whether the producer is closed.
async fn take_ready(inner: &Inner) -> (Vec<Outgoing>, Duration, bool) {
    let mut queues = inner.queues.lock().await;
    let now = now();
    let linger = inner.config.linger;
    let flush = std::mem::take(&mut queues.flush_requested) || queues.closed;
    let mut ready = Vec::new();
    let mut wait = linger.max(Duration::from_millis(1));
    let keys: Vec<(String, i32)> = queues.batches.keys().cloned().collect();
    for key in keys {
        let batches = queues.batches.get_mut(&key).expect("key taken from the map");
        let Some(first) = batches.front() else {
            continue;
        };
        let age = now.saturating_duration_since(first.created);
        let is_ready = flush || first.bytes >= inner.config.batch_size || batches.len() > 1 || age >= linger;
        if !is_ready {
            wait = wait.min(linger - age);
            continue;
        }
        let batch = batches.pop_front().expect("front exists");
        let count = batch.records.len() as i32;
        let sequence = queues.sequences.entry(key.clone()).or_insert(0);
        let base_sequence = *sequence;
        *sequence = sequence.wrapping_add(count) & i32::MAX;
        // A new batch for this topic may go to another partition (KIP-480).
        if queues.sticky.get(&key.0) == Some(&key.1) {
            queues.sticky.remove(&key.0);
        }
        ready.push(Outgoing {
            topic: key.0,
            partition: key.1,
            batch,
            base_sequence,
        });
    }
    (ready, wait, queues.closed)
}

/// Sends batches, one request per leader, retrying the failed ones.
// TODO: one request at a time per producer caps throughput at a batch per round trip;
// pipeline up to max.in.flight.requests.per.connection requests, keeping the order.
async fn send_all(inner: &Inner, mut pending: Vec<Outgoing>) {
    for attempt in 0..=inner.config.retries {
        if pending.is_empty() {
            return;
        }
        if attempt > 0 {
            tokio::time::sleep(inner.config.retry_backoff).await;
        }
        let mut by_leader: BTreeMap<String, Vec<Outgoing>> = BTreeMap::new();
        let mut failed = Vec::new();
        for outgoing in pending {
            match inner.cluster.leader(&outgoing.topic, outgoing.partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(outgoing),
                Err(error) => failed.push((outgoing, error)),
            }
        }
        let mut retry = Vec::new();
        for (outgoing, error) in failed {
            settle_failure(inner, outgoing, error, attempt, &mut retry);
        }
        for (leader, batches) in by_leader {
            send_to_leader(inner, &leader, batches, attempt, &mut retry).await;
        }
        pending = retry;
    }
}

fn settle_failure(inner: &Inner, outgoing: Outgoing, error: ClientError, attempt: u32, retry: &mut Vec<Outgoing>) {
    if error.is_retriable() && attempt < inner.config.retries {
        debug!(topic = %outgoing.topic, partition = outgoing.partition, attempt, %error, "retrying a batch");
        inner.cluster.invalidate(&outgoing.topic);
        retry.push(outgoing);
        return;
    }
    warn!(topic = %outgoing.topic, partition = outgoing.partition, %error, "a batch failed");
    let message = error.to_string();
    for sender in outgoing.batch.senders {
        let _ = sender.send(Err(ClientError::InvalidArgument(message.clone())));
    }
}

async fn send_to_leader(inner: &Inner, leader: &str, batches: Vec<Outgoing>, attempt: u32, retry: &mut Vec<Outgoing>) {
    let now_ms = now_ms();
    let mut by_topic: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    for outgoing in &batches {
        let fields = match inner.producer {
            Some((producer_id, producer_epoch)) => ProducerFields {
                producer_id,
                producer_epoch,
                base_sequence: outgoing.base_sequence,
            },
            None => ProducerFields::NONE,
        };
        let records = encode_batch(&outgoing.batch.records, inner.config.compression, fields, now_ms);
        by_topic.entry(outgoing.topic.clone()).or_default().push(
            PartitionProduceData::default()
                .with_index(outgoing.partition)
                .with_records(Some(records)),
        );
    }
    let request = ProduceRequest::default()
        .with_acks(inner.config.acks)
        .with_timeout_ms(30_000)
        .with_topic_data(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partition_data(partitions)
                })
                .collect(),
        );

    if inner.config.acks == 0 {
        // No response comes back; a version this client and the broker share is enough.
        let sent = inner.cluster.send_without_response(leader, request, 3, 9).await;
        for outgoing in batches {
            match &sent {
                Ok(()) => deliver(outgoing, |_| -1),
                Err(error) => settle_failure(inner, outgoing, clone_error(error), inner.config.retries, retry),
            }
        }
        return;
    }

    let response = inner.cluster.send_to(leader, request, 3, 9).await;
    let response = match response {
        Ok((response, _)) => response,
        Err(error) => {
            for outgoing in batches {
                settle_failure(inner, outgoing, clone_error(&error), attempt, retry);
            }
            return;
        }
    };
    let mut results: BTreeMap<(String, i32), (i16, i64, Option<String>)> = BTreeMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            results.insert(
                (topic.name.0.as_str().to_string(), partition.index),
                (
                    partition.error_code,
                    partition.base_offset,
                    partition.error_message.map(|message| message.as_str().to_string()),
                ),
            );
        }
    }
    for outgoing in batches {
        let key = (outgoing.topic.clone(), outgoing.partition);
        match results.remove(&key) {
            Some((0, base_offset, _)) => deliver(outgoing, |index| base_offset + index as i64),
            Some((code, _, message)) => {
                let error = ClientError::broker(
                    format!("producing to {}-{}", outgoing.topic, outgoing.partition),
                    code,
                    message,
                );
                if code == ResponseError::NotLeaderOrFollower.code() {
                    inner.cluster.invalidate(&outgoing.topic);
                }
                settle_failure(inner, outgoing, error, attempt, retry);
            }
            None => {
                let error = ClientError::Protocol {
                    address: leader.to_string(),
                    api: "Produce",
                    message: format!("no result for {}-{}", outgoing.topic, outgoing.partition),
                };
                settle_failure(inner, outgoing, error, attempt, retry);
            }
        }
    }
}

fn deliver(outgoing: Outgoing, offset_of: impl Fn(usize) -> i64) {
    for (index, sender) in outgoing.batch.senders.into_iter().enumerate() {
        let _ = sender.send(Ok(Delivery {
            topic: outgoing.topic.clone(),
            partition: outgoing.partition,
            offset: offset_of(index),
        }));
    }
}

/// Copies an error for each batch it failed; the client's errors are not `Clone`
/// because they carry IO errors.
fn clone_error(error: &ClientError) -> ClientError {
    match error {
        ClientError::Broker {
            operation,
            error,
            code,
            message,
        } => ClientError::Broker {
            operation: operation.clone(),
            error: *error,
            code: *code,
            message: message.clone(),
        },
        ClientError::Timeout { operation, timeout_ms } => ClientError::Timeout {
            operation: operation.clone(),
            timeout_ms: *timeout_ms,
        },
        ClientError::Connect { address, source } => ClientError::Connect {
            address: address.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        ClientError::Io { address, source } => ClientError::Io {
            address: address.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => ClientError::InvalidArgument(other.to_string()),
    }
}

/// Returns the monotonic time for linger. Under madsim, `tokio::time::Instant` is std's
/// type, and madsim simulates the clock behind it, so the lint's ban does not apply.
#[allow(clippy::disallowed_methods)]
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Returns wall-clock milliseconds for record timestamps; madsim simulates this clock
/// too.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> i64 {
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
