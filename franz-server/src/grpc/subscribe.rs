//! Subscribe: a task per subscription reads its partitions from their start positions,
//! sends each record into a bounded channel that backs the response stream, and waits
//! for appends when it has read everything below the high watermarks.
//!
//! The task ends when the client drops the stream or shutdown begins, and the stream
//! then ends with status OK. It ends the stream with NOT_FOUND when the topic is
//! deleted, and with the read's error when a read fails, for example OUT_OF_RANGE when
//! retention deleted the records at its position.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use franz_core::batch::{BatchHeader, TimestampType as StoredTimestampType};
use franz_core::Disk;
use franz_net::grpc::subscribe_request::Start;
use franz_net::grpc::{Header, SubscribeRequest, SubscribeResponse};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;
use tonic::Status;
use tracing::{debug, warn};
use uuid::Uuid;

use super::status;
use crate::broker::{Broker, Partition, Topic};
use crate::shutdown::{Shutdown, TaskGuard};

/// Records buffered between the reading task and the response stream. Once this many
/// wait, a slow client blocks the task.
const STREAM_BUFFER: usize = 256;

/// Bytes read from one partition at a time. A batch larger than this is still read
/// whole.
const READ_BYTES: usize = 1024 * 1024;

type Item = Result<SubscribeResponse, Status>;

/// The response stream of Subscribe.
pub struct RecordStream {
    receiver: mpsc::Receiver<Item>,
}

impl Stream for RecordStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// One subscribed partition and the offset of the next record to send from it.
struct Cursor<D: Disk> {
    partition: Arc<Partition<D>>,
    position: i64,
}

/// Checks the request, resolves every partition's start offset, and spawns the task
/// that feeds the stream. Errors in the request are returned before any record is sent.
pub async fn start<D: Disk>(
    broker: Arc<Broker<D>>,
    topic: Arc<Topic<D>>,
    request: SubscribeRequest,
    shutdown: Shutdown,
    guard: TaskGuard,
) -> Result<RecordStream, Status> {
    let partitions = chosen_partitions(&topic, &request.partitions)?;
    let mut cursors = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let position = start_offset(&partition, request.start).await?;
        cursors.push(Cursor { partition, position });
    }
    debug!(topic = %topic.name, partitions = cursors.len(), start = ?request.start, "gRPC subscription started");

    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    let follower = Follower {
        broker,
        topic_name: topic.name.clone(),
        topic_id: topic.id,
        cursors,
        sender,
        shutdown,
    };
    tokio::spawn(async move {
        follower.run().await;
        drop(guard);
    });
    Ok(RecordStream { receiver })
}

/// Returns the requested partitions, or every partition when none is named.
fn chosen_partitions<D: Disk>(topic: &Topic<D>, requested: &[i32]) -> Result<Vec<Arc<Partition<D>>>, Status> {
    if requested.is_empty() {
        return Ok(topic.partitions.clone());
    }
    let mut chosen: Vec<Arc<Partition<D>>> = Vec::with_capacity(requested.len());
    for &index in requested {
        let Some(partition) = topic.partition(index) else {
            return Err(Status::invalid_argument(format!(
                "partition {index} does not exist: topic {:?} has partitions 0 to {}",
                topic.name,
                topic.partitions.len() as i32 - 1
            )));
        };
        if chosen.iter().any(|existing| existing.index == index) {
            return Err(Status::invalid_argument(format!(
                "partition {index} is listed twice; list each partition once"
            )));
        }
        chosen.push(partition.clone());
    }
    Ok(chosen)
}

/// Resolves where `partition` starts; no start position means latest.
async fn start_offset<D: Disk>(partition: &Partition<D>, start: Option<Start>) -> Result<i64, Status> {
    let high_watermark = partition.high_watermark().await;
    match start {
        None | Some(Start::Latest(_)) => Ok(high_watermark),
        Some(Start::Earliest(_)) => Ok(partition.log.log_start_offset().await),
        Some(Start::Offset(offset)) => {
            let log_start_offset = partition.log.log_start_offset().await;
            if offset < log_start_offset || offset > high_watermark {
                return Err(Status::out_of_range(format!(
                    "offset {offset} is outside partition {} of topic {:?}, which has offsets {log_start_offset} to {high_watermark} (exclusive); start from earliest or latest instead",
                    partition.index, partition.topic
                )));
            }
            Ok(offset)
        }
        Some(Start::TimestampMs(timestamp)) => {
            if timestamp < 0 {
                return Err(Status::invalid_argument(format!(
                    "timestamp_ms {timestamp} is negative; give milliseconds since the Unix epoch"
                )));
            }
            let found = partition
                .log
                .offset_for_timestamp(timestamp)
                .await
                .map_err(|error| status::from_log_error(&error))?;
            Ok(match found {
                Some(found) if found.offset < high_watermark => found.offset,
                _ => high_watermark,
            })
        }
    }
}

/// The reason a subscription stopped sending.
enum Stop {
    /// The client dropped the stream or shutdown began: nothing more to send.
    Quietly,
    /// The stream ends with this status.
    Failed(Status),
}

struct Follower<D: Disk> {
    broker: Arc<Broker<D>>,
    topic_name: String,
    /// Tells a topic deleted and created again under the same name from the original.
    topic_id: Uuid,
    cursors: Vec<Cursor<D>>,
    sender: mpsc::Sender<Item>,
    shutdown: Shutdown,
}

impl<D: Disk> Follower<D> {
    async fn run(mut self) {
        let stop = self.follow().await;
        if let Stop::Failed(status) = stop {
            debug!(topic = %self.topic_name, code = ?status.code(), message = status.message(), "gRPC subscription failed");
            let _ = self.sender.send(Err(status)).await;
        }
        debug!(topic = %self.topic_name, "gRPC subscription ended");
    }

    /// Reads every partition in turn and sends what it finds; waits for an append once
    /// a whole pass found nothing. Returns only when the subscription ends.
    async fn follow(&mut self) -> Stop {
        loop {
            // Arm the wake-ups before reading, so that an append between the read and
            // the wait is not missed.
            let partitions: Vec<_> = self.cursors.iter().map(|cursor| cursor.partition.clone()).collect();
            let mut wakeups: Vec<_> = partitions
                .iter()
                .map(|partition| Box::pin(partition.appended()))
                .collect();
            for wakeup in &mut wakeups {
                wakeup.as_mut().enable();
            }

            if self.shutdown.is_triggered() {
                return Stop::Quietly;
            }
            if !self.topic_exists() {
                return Stop::Failed(self.deleted());
            }

            let mut sent_any = false;
            for index in 0..self.cursors.len() {
                match self.send_from(index).await {
                    Ok(sent) => sent_any |= sent,
                    Err(stop) => return stop,
                }
            }
            if sent_any {
                continue;
            }

            tokio::select! {
                biased;
                _ = self.shutdown.wait() => return Stop::Quietly,
                _ = self.sender.closed() => return Stop::Quietly,
                _ = any_of(&mut wakeups) => {}
            }
        }
    }

    /// Reads one chunk of one partition from its cursor and sends its records. Returns
    /// whether any batch was read.
    async fn send_from(&mut self, index: usize) -> Result<bool, Stop> {
        let cursor = &self.cursors[index];
        let partition = cursor.partition.clone();
        let position = cursor.position;
        let (info, _high_watermark) = match partition.read(position, READ_BYTES).await {
            Ok(read) => read,
            Err(error) => {
                if !self.topic_exists() {
                    return Err(Stop::Failed(self.deleted()));
                }
                warn!(topic = %partition.topic, partition = partition.index, offset = position, %error, "gRPC subscription read failed");
                return Err(Stop::Failed(status::from_log_error(&error)));
            }
        };
        if info.records.is_empty() {
            return Ok(false);
        }

        let mut next_position = position;
        let mut rest = info.records;
        while !rest.is_empty() {
            let header = BatchHeader::parse(&rest).map_err(|error| self.corrupt(&partition, position, error))?;
            let batch = rest.split_to(header.size().min(rest.len()));
            next_position = header.next_offset();
            if header.is_control() {
                continue;
            }
            let responses = decode_batch(&header, batch, partition.index, position)
                .map_err(|error| self.corrupt(&partition, header.base_offset, error))?;
            for response in responses {
                self.send(response).await?;
            }
        }
        self.cursors[index].position = next_position;
        Ok(true)
    }

    async fn send(&self, response: SubscribeResponse) -> Result<(), Stop> {
        tokio::select! {
            biased;
            _ = self.shutdown.wait() => Err(Stop::Quietly),
            sent = self.sender.send(Ok(response)) => sent.map_err(|_| Stop::Quietly),
        }
    }

    fn topic_exists(&self) -> bool {
        self.broker
            .topic(&self.topic_name)
            .is_some_and(|topic| topic.id == self.topic_id)
    }

    fn deleted(&self) -> Status {
        Status::not_found(format!("topic {:?} was deleted", self.topic_name))
    }

    fn corrupt(&self, partition: &Partition<D>, offset: i64, error: impl std::fmt::Display) -> Stop {
        warn!(topic = %partition.topic, partition = partition.index, offset, %error, "gRPC subscription read an undecodable batch");
        Stop::Failed(Status::data_loss(format!(
            "the record batch at offset {offset} of partition {} of topic {:?} does not decode: {error}",
            partition.index, partition.topic
        )))
    }
}

/// Decodes one stored batch into responses, skipping records below `position`.
fn decode_batch(
    header: &BatchHeader,
    mut batch: Bytes,
    partition: i32,
    position: i64,
) -> Result<Vec<SubscribeResponse>, String> {
    let decoded = RecordBatchDecoder::decode(&mut batch).map_err(|error| error.to_string())?;
    // kafka-protocol returns each record's creation time; under LogAppendTime every
    // record of the batch has the batch's append time, which is its max timestamp.
    let log_append_time =
        (header.timestamp_type() == StoredTimestampType::LogAppendTime).then_some(header.max_timestamp);
    let responses = decoded
        .records
        .into_iter()
        .filter(|record| record.offset >= position && !record.control)
        .map(|record| SubscribeResponse {
            partition,
            offset: record.offset,
            timestamp_ms: log_append_time.unwrap_or(record.timestamp),
            key: record.key.map(|key| key.to_vec()),
            value: record.value.map(|value| value.to_vec()),
            // NOTE: kafka-protocol 0.18 decodes headers into a map, so of two headers with
            // the same key, written by a Kafka client, only the last one arrives here.
            headers: record
                .headers
                .into_iter()
                .map(|(key, value)| Header {
                    key: key.to_string(),
                    value: value.map(|value| value.to_vec()),
                })
                .collect(),
        })
        .collect();
    Ok(responses)
}

/// Completes when any of the futures completes; never when there are none.
async fn any_of<F: Future<Output = ()>>(futures: &mut [Pin<Box<F>>]) {
    std::future::poll_fn(|cx| {
        for future in futures.iter_mut() {
            if future.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
