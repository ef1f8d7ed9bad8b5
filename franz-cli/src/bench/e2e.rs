//! `franz bench e2e`: end-to-end latency, from a producer's send to a consumer's poll.
//!
//! One producer sends at a fixed rate. Each message's first 8 bytes carry the time its
//! latency counts from (see `wait_for_slot`), in nanoseconds since the start of the run.
//! One consumer, positioned at the end of every partition before the producer begins,
//! reads the messages and records the time since then. Producer and consumer run in this
//! one process, so they share one clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use franz_net::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use franz_net::client::producer::{Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::Cluster;
use serde_json::json;

use super::stats::{now, Stats};
use super::{ensure_topic, parse_acks, parse_duration, payload, wait_for_slot, TopicArgs};

/// How long the consumer keeps reading after the producer stops, for messages in flight.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// How long one poll waits for records.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug, Clone)]
pub struct EndToEndArgs {
    #[command(flatten)]
    topic: TopicArgs,
    /// Bytes in each message's value; at least 8, for the send time.
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// How long to send, for example 30s.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Acknowledgements the producer waits for: all, 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "1", "0"])]
    acks: String,
    /// Milliseconds a batch waits for more messages before it is sent.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
}

pub async fn run(cluster: Arc<Cluster>, args: EndToEndArgs) -> Result<(), String> {
    if args.message_size < 8 {
        return Err(format!(
            "--message-size {} is too small: the send time takes 8 bytes",
            args.message_size
        ));
    }
    if args.rate == 0 {
        return Err("--rate must be at least 1 message per second".to_string());
    }
    let partitions = ensure_topic(&cluster, &args.topic).await?;

    // The consumer starts at the end of every partition before anything is sent.
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Latest,
        auto_commit: false,
        ..ConsumerConfig::default()
    };
    let consumer_cluster = Cluster::connect(cluster.config().clone())
        .await
        .map_err(|error| format!("connecting the consumer failed: {error}"))?;
    let mut consumer = Consumer::new(consumer_cluster, config);
    let assignment: Vec<(String, i32)> = (0..partitions)
        .map(|partition| (args.topic.topic.clone(), partition))
        .collect();
    consumer.assign(&assignment);
    consumer
        .poll(Duration::ZERO)
        .await
        .map_err(|error| format!("positioning the consumer failed: {error}"))?;

    let stats = Stats::new();
    let sent = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let progress = stats.spawn_progress("e2e");
    let started = now();
    let producer = tokio::spawn(produce(
        cluster.clone(),
        args.clone(),
        partitions,
        started,
        sent.clone(),
    ));
    let reader = tokio::spawn(read(consumer, started, stats.clone(), sent.clone(), producing.clone()));

    let produced = producer
        .await
        .map_err(|error| format!("the producer task failed: {error}"));
    // Throughput counts over the sending time; the drain after it only collects latencies.
    let elapsed = started.elapsed();
    producing.store(false, Ordering::SeqCst);
    let read = reader
        .await
        .map_err(|error| format!("the consumer task failed: {error}"));
    progress.abort();
    produced??;
    read??;

    let summary = stats.summary(elapsed);
    summary.print(
        "e2e",
        Some(("end-to-end", "end_to_end_latency_ms")),
        json!({
            "topic": args.topic.topic,
            "partitions": partitions,
            "message_size": args.message_size,
            "rate": args.rate,
            "duration_seconds": args.duration.as_secs_f64(),
            "acks": args.acks,
            "linger_ms": args.linger_ms,
            "topic_configs": args.topic.configs,
        }),
    );
    let sent = sent.load(Ordering::SeqCst);
    if summary.messages < sent {
        return Err(format!("the consumer read {} of {sent} messages", summary.messages));
    }
    Ok(())
}

/// Sends at the fixed rate for the run's duration; each value starts with its due time.
async fn produce(
    cluster: Arc<Cluster>,
    args: EndToEndArgs,
    partitions: i32,
    started: tokio::time::Instant,
    sent: Arc<AtomicU64>,
) -> Result<(), String> {
    let acks = parse_acks(&args.acks);
    let config = ProducerConfig {
        acks,
        linger: Duration::from_millis(args.linger_ms),
        idempotence: acks == -1,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config)
        .await
        .map_err(|error| format!("starting the producer failed: {error}"))?;
    let filler = payload(args.message_size - 8);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);

    for sequence in 0u64.. {
        let slot = started + interval.mul_f64(sequence as f64);
        if slot.duration_since(started) >= args.duration {
            break;
        }
        let due = wait_for_slot(slot).await;
        let mut value = BytesMut::with_capacity(args.message_size);
        value.put_u64(due.duration_since(started).as_nanos() as u64);
        value.put_slice(&filler);
        let record = ProducerRecord {
            value: Some(value.freeze()),
            ..ProducerRecord::default()
        };
        let partition = (sequence % partitions as u64) as i32;
        producer
            .send(&args.topic.topic, Some(partition), record)
            .await
            .map_err(|error| format!("sending failed: {error}"))?;
        sent.fetch_add(1, Ordering::SeqCst);
    }
    producer.close().await;
    Ok(())
}

/// Reads until every sent message arrived after the producer stopped, or the drain time
/// passed.
async fn read(
    mut consumer: Consumer,
    started: tokio::time::Instant,
    stats: Stats,
    sent: Arc<AtomicU64>,
    producing: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut drain_deadline = None;
    loop {
        if !producing.load(Ordering::SeqCst) {
            let deadline = *drain_deadline.get_or_insert_with(|| now() + DRAIN_TIME);
            if stats.messages() >= sent.load(Ordering::SeqCst) || now() >= deadline {
                return Ok(());
            }
        }
        let messages = consumer
            .poll(POLL_TIMEOUT)
            .await
            .map_err(|error| format!("polling failed: {error}"))?;
        let arrived = now();
        for message in messages {
            let Some(value) = message.record.value else { continue };
            let Some(due) = value
                .get(..8)
                .map(|bytes| u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
            else {
                continue;
            };
            let due = started + Duration::from_nanos(due);
            stats.record_latency(value.len() as u64, arrived.saturating_duration_since(due));
        }
    }
}
