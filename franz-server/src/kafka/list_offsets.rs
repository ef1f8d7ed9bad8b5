//! ListOffsets (earliest, latest, by timestamp, max timestamp) and DeleteRecords.

use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse};
use tracing::warn;

use super::errors::log_error_code;
use super::{Context, Request};

/// Special timestamps of a ListOffsets request.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn list_offsets<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // Versions before 4 have no leader epoch field, and encoding one fails.
    let leader_epoch = if request.version >= 4 { 0 } else { -1 };
    let mut topics = Vec::with_capacity(body.topics.len());
    for wanted_topic in body.topics {
        let topic = context.broker.topic(&wanted_topic.name);
        let mut partitions = Vec::with_capacity(wanted_topic.partitions.len());
        for wanted in wanted_topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let Some(partition) = topic.as_ref().and_then(|topic| topic.partition(wanted.partition_index)) else {
                partitions.push(response.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let found = match wanted.timestamp {
                LATEST => Ok(Some((partition.high_watermark().await, -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((partition.log.log_start_offset().await, -1))),
                MAX_TIMESTAMP => partition
                    .log
                    .max_timestamp()
                    .await
                    .map(|found| found.map(|found| (found.offset, found.timestamp))),
                timestamp if timestamp >= 0 => partition
                    .log
                    .offset_for_timestamp(timestamp)
                    .await
                    .map(|found| found.map(|found| (found.offset, found.timestamp))),
                other => {
                    partitions.push(response.with_error_code(ResponseError::InvalidRequest.code()));
                    warn!(timestamp = other, "ListOffsets with an unknown special timestamp");
                    continue;
                }
            };
            let high_watermark = partition.high_watermark().await;
            match found {
                // A record at or past the high watermark is not visible yet; the earliest
                // and latest offsets carry timestamp -1 and are always returned.
                Ok(Some((offset, timestamp))) if offset < high_watermark || timestamp == -1 => partitions.push(
                    response
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        .with_leader_epoch(leader_epoch),
                ),
                Ok(_) => partitions.push(response),
                Err(error) => {
                    warn!(topic = %partition.topic, partition = partition.index, %error, "ListOffsets failed");
                    partitions.push(response.with_error_code(log_error_code(&error).code()));
                }
            }
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(wanted_topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn delete_records<D: Disk>(context: &Context<D>, body: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(body.topics.len());
    for wanted_topic in body.topics {
        let topic = context.broker.topic(&wanted_topic.name);
        let mut partitions = Vec::with_capacity(wanted_topic.partitions.len());
        for wanted in wanted_topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(wanted.partition_index)
                .with_low_watermark(-1);
            let Some(partition) = topic.as_ref().and_then(|topic| topic.partition(wanted.partition_index)) else {
                partitions.push(result.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let high_watermark = partition.high_watermark().await;
            // -1 means "up to the high watermark", as in Kafka.
            let offset = if wanted.offset == -1 {
                high_watermark
            } else {
                wanted.offset
            };
            if offset < 0 || offset > high_watermark {
                partitions.push(result.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            match partition.log.delete_records_before(offset).await {
                Ok(low_watermark) => partitions.push(result.with_low_watermark(low_watermark)),
                Err(error) => {
                    warn!(topic = %partition.topic, partition = partition.index, %error, "DeleteRecords failed");
                    partitions.push(result.with_error_code(log_error_code(&error).code()));
                }
            }
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(wanted_topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
