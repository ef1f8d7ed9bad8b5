//! `franz bench produce`: throughput and acknowledgement latency of producers.
//!
//! Each producer has its own connections and sends its share of the messages to the
//! topic's partitions in turn. A message's latency runs from its send to its
//! acknowledgement. With `--rate`, a message that is sent more than the timer's slack after
//! its slot in the schedule counts from the slot, so a stalled broker shows up as latency
//! instead of as fewer messages (no coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use franz_net::client::producer::{Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::Cluster;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use super::stats::{now, Stats};
use super::{ensure_topic, parse_acks, parse_compression, parse_duration, payload, wait_for_slot, TopicArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceBenchArgs {
    #[command(flatten)]
    topic: TopicArgs,
    /// Bytes in each message's value.
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Messages to send in all [default: 1000000, or unlimited with --duration].
    #[arg(long)]
    count: Option<u64>,
    /// How long to send, for example 30s. With --count too, the first limit reached ends the
    /// run.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Messages per second across all producers; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Acknowledgements to wait for: all, 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "1", "0"])]
    acks: String,
    /// Compression of each batch.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Producers, each with its own connections.
    #[arg(long, default_value_t = 1)]
    producers: u64,
    /// Milliseconds a batch waits for more messages before it is sent.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Bytes at which a batch is sent without waiting.
    #[arg(long, default_value_t = 16384)]
    batch_size: usize,
    /// Messages one producer may have waiting for acknowledgement before it stops sending.
    #[arg(long, default_value_t = 20_000)]
    max_pending: usize,
}

pub async fn run(cluster: Arc<Cluster>, args: ProduceBenchArgs) -> Result<(), String> {
    if args.producers == 0 {
        return Err("--producers must be at least 1".to_string());
    }
    let partitions = ensure_topic(&cluster, &args.topic).await?;
    let count = match (args.count, args.duration) {
        (Some(count), _) => count,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1_000_000,
    };

    let stats = Stats::new();
    let progress = stats.spawn_progress("produce");
    let started = now();
    let deadline = args.duration.map(|duration| started + duration);
    let mut tasks = Vec::new();
    for index in 0..args.producers {
        let share = count / args.producers + u64::from(index < count % args.producers);
        let producer = ProducerTask {
            index,
            share,
            partitions,
            deadline,
            started,
            stats: stats.clone(),
            args: args.clone(),
        };
        let cluster = Cluster::connect(cluster.config().clone())
            .await
            .map_err(|error| format!("connecting producer {index} failed: {error}"))?;
        tasks.push(tokio::spawn(producer.run(cluster)));
    }
    for task in tasks {
        task.await
            .map_err(|error| format!("a producer task failed: {error}"))??;
    }
    let elapsed = started.elapsed();
    progress.abort();

    let summary = stats.summary(elapsed);
    summary.print(
        "produce",
        Some(("ack", "ack_latency_ms")),
        json!({
            "topic": args.topic.topic,
            "partitions": partitions,
            "message_size": args.message_size,
            "rate": args.rate,
            "acks": args.acks,
            "compression": args.compression,
            "producers": args.producers,
            "linger_ms": args.linger_ms,
            "batch_size": args.batch_size,
            "count": args.count,
            "duration_seconds": args.duration.map(|duration| duration.as_secs_f64()),
            "max_pending": args.max_pending,
            "topic_configs": args.topic.configs,
        }),
    );
    if summary.errors > 0 {
        return Err(format!("{} messages were not acknowledged", summary.errors));
    }
    Ok(())
}

/// One producer's share of the benchmark.
struct ProducerTask {
    index: u64,
    /// Messages this producer sends, unless the deadline comes first.
    share: u64,
    partitions: i32,
    deadline: Option<tokio::time::Instant>,
    started: tokio::time::Instant,
    stats: Stats,
    args: ProduceBenchArgs,
}

impl ProducerTask {
    async fn run(self, cluster: Arc<Cluster>) -> Result<(), String> {
        let acks = parse_acks(&self.args.acks);
        let config = ProducerConfig {
            acks,
            linger: Duration::from_millis(self.args.linger_ms),
            batch_size: self.args.batch_size,
            compression: parse_compression(&self.args.compression),
            idempotence: acks == -1,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(cluster, config)
            .await
            .map_err(|error| format!("starting producer {} failed: {error}", self.index))?;
        let value = payload(self.args.message_size);
        let bytes = value.len() as u64;
        // This producer's messages are every `producers`-th slot of the global schedule.
        let interval =
            (self.args.rate > 0).then(|| Duration::from_secs_f64(self.args.producers as f64 / self.args.rate as f64));

        let window = Arc::new(Semaphore::new(self.args.max_pending));
        let (pending, receiver) = mpsc::unbounded_channel();
        let collector = tokio::spawn(settle(receiver));
        for sequence in 0..self.share {
            let due = match interval {
                Some(interval) => wait_for_slot(self.started + interval.mul_f64(sequence as f64)).await,
                None => now(),
            };
            if self.deadline.is_some_and(|deadline| due >= deadline) {
                break;
            }
            let permit = window
                .clone()
                .acquire_owned()
                .await
                .expect("the window is never closed");

            let record = ProducerRecord {
                value: Some(value.clone()),
                ..ProducerRecord::default()
            };
            let partition = ((sequence + self.index) % self.partitions as u64) as i32;
            let delivery = producer
                .send(&self.args.topic.topic, Some(partition), record)
                .await
                .map_err(|error| format!("sending failed: {error}"))?;
            let stats = self.stats.clone();
            let settled = async move {
                match delivery.wait().await {
                    Ok(_) => stats.record_latency(bytes, due.elapsed()),
                    Err(_) => stats.record_error(),
                }
                drop(permit);
            };
            let _ = pending.send(settled.boxed());
        }
        drop(pending);
        producer.flush().await;
        collector
            .await
            .map_err(|error| format!("the acknowledgement task failed: {error}"))?;
        producer.close().await;
        Ok(())
    }
}

/// Waits for deliveries as they are handed over, each as soon as it completes, so that
/// latencies are measured when acknowledgements arrive. Returns when the sender is dropped
/// and every delivery has completed.
async fn settle(mut receiver: mpsc::UnboundedReceiver<BoxFuture<'static, ()>>) {
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = pending.next(), if !pending.is_empty() => {}
            next = receiver.recv() => match next {
                Some(delivery) => pending.push(delivery),
                None => break,
            },
        }
    }
    while pending.next().await.is_some() {}
}
