//! Fetch: reads whole batches below the high watermark, and long-polls.
//!
//! When the first pass finds fewer than `min_bytes`, the request waits until an append
//! to one of its partitions, `max_wait_ms`, or shutdown, whichever comes first, then
//! reads again. Sessions (KIP-227) are not kept: every response carries session id 0,
//! so clients send full requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use franz_core::{Disk, LogError};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tracing::warn;

use super::errors::log_error_code;
use super::{Context, Request};
use crate::broker::Partition;

/// One requested partition, resolved.
struct Wanted<D: Disk> {
    topic_index: usize,
    index: i32,
    fetch_offset: i64,
    max_bytes: usize,
    partition: Option<Arc<Partition<D>>>,
}

pub async fn fetch<D: Disk>(context: &Context<D>, _request: &Request, body: FetchRequest) -> FetchResponse {
    let mut wanted = Vec::new();
    let mut topics = Vec::new();
    for (topic_index, fetch_topic) in body.topics.into_iter().enumerate() {
        let topic = context.broker.topic(&fetch_topic.topic);
        for fetch_partition in fetch_topic.partitions {
            wanted.push(Wanted {
                topic_index,
                index: fetch_partition.partition,
                fetch_offset: fetch_partition.fetch_offset,
                max_bytes: fetch_partition.partition_max_bytes.max(0) as usize,
                partition: topic
                    .as_ref()
                    .and_then(|topic| topic.partition(fetch_partition.partition).cloned()),
            });
        }
        topics.push(FetchableTopicResponse::default().with_topic(fetch_topic.topic));
    }

    let min_bytes = body.min_bytes.max(0) as usize;
    let max_bytes = if body.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        body.max_bytes as usize
    };
    let timeout = tokio::time::sleep(Duration::from_millis(body.max_wait_ms.max(0) as u64));
    tokio::pin!(timeout);
    let responses = loop {
        // Arm the wake-ups before reading, so that an append between the read and the
        // wait is not missed.
        let mut wakeups: Vec<_> = wanted
            .iter()
            .filter_map(|want| want.partition.as_ref())
            .map(|partition| Box::pin(partition.appended()))
            .collect();
        for wakeup in &mut wakeups {
            wakeup.as_mut().enable();
        }

        let (responses, bytes, has_error) = read_all(&wanted, max_bytes).await;
        if bytes >= min_bytes || has_error || timeout.is_elapsed() || context.shutdown.is_triggered() {
            break responses;
        }
        tokio::select! {
            biased;
            _ = context.shutdown.wait() => {}
            _ = any_of(&mut wakeups) => {}
            _ = &mut timeout => {}
        }
    };

    for (want, data) in wanted.iter().zip(responses) {
        let topic: &mut FetchableTopicResponse = &mut topics[want.topic_index];
        topic.partitions.push(data);
    }
    FetchResponse::default().with_session_id(0).with_responses(topics)
}

/// Reads every wanted partition once. Returns the partition responses in request order,
/// the record bytes found and whether any partition failed.
async fn read_all<D: Disk>(wanted: &[Wanted<D>], max_bytes: usize) -> (Vec<PartitionData>, usize, bool) {
    let mut responses = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut has_error = false;
    for want in wanted {
        let Some(partition) = &want.partition else {
            has_error = true;
            responses.push(error_data(want.index, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        // KIP-74: the first batch is returned whole even past the limits, so a consumer
        // always makes progress; after that, the response stops at max_bytes.
        let budget = if total == 0 {
            want.max_bytes
        } else {
            want.max_bytes.min(max_bytes.saturating_sub(total))
        };
        if budget == 0 && total > 0 {
            responses.push(empty_data(partition).await);
            continue;
        }
        match partition.read(want.fetch_offset, budget.max(1)).await {
            Ok((info, high_watermark)) => {
                total += info.records.len();
                responses.push(
                    PartitionData::default()
                        .with_partition_index(want.index)
                        .with_high_watermark(high_watermark)
                        .with_last_stable_offset(high_watermark)
                        .with_log_start_offset(info.log_start_offset)
                        .with_records(Some(info.records)),
                );
            }
            Err(error) => {
                has_error = true;
                if !matches!(error, LogError::OffsetOutOfRange { .. }) {
                    warn!(topic = %partition.topic, partition = want.index, %error, "fetch failed");
                }
                let mut data = error_data(want.index, log_error_code(&error));
                data.high_watermark = partition.high_watermark().await;
                data.log_start_offset = partition.log.log_start_offset().await;
                responses.push(data);
            }
        }
    }
    (responses, total, has_error)
}

fn error_data(index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_records(None)
}

async fn empty_data<D: Disk>(partition: &Partition<D>) -> PartitionData {
    let high_watermark = partition.high_watermark().await;
    PartitionData::default()
        .with_partition_index(partition.index)
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(high_watermark)
        .with_log_start_offset(partition.log.log_start_offset().await)
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
