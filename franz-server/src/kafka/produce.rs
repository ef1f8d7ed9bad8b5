//! Produce: appends each partition's record batch and reports its base offset.
//!
//! A single node is the only in-sync replica, so acks=1 and acks=all both return after
//! the local append, which includes the fsync when the topic's flush policy requires one.
//! acks=0 gets no response at all.

use std::sync::Arc;

use bytes::BytesMut;
use franz_core::batch::BatchHeader;
use franz_core::Disk;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use super::errors::{append_error_code, topic_error_code};
use super::{Context, Request};
use crate::broker::{validate_topic_name, AppendError, Partition};

fn partition_error(index: i32, error: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

pub async fn produce<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = body.acks;
    let mut responses = Vec::with_capacity(body.topic_data.len());
    // The appends of all partitions run together, so their fsyncs overlap. Each carries
    // the place of its response: the topic's index and the partition's index within it.
    let mut appends = Vec::new();
    for topic_data in body.topic_data {
        let name = topic_data.name.clone();
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());

        let topic = if !matches!(acks, -1..=1) {
            Err((
                ResponseError::InvalidRequiredAcks,
                format!("acks {acks} is not 0, 1 or -1"),
            ))
        } else if body.transactional_id.is_some() {
            Err((
                ResponseError::TransactionalIdAuthorizationFailed,
                "transactions are not supported yet".to_string(),
            ))
        } else if let Err(error) = validate_topic_name(&name) {
            Err((topic_error_code(&error), error.to_string()))
        } else {
            match context.broker.topic_or_create(&name).await {
                Ok(Some(topic)) => Ok(topic),
                Ok(None) => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {:?} does not exist", name.as_str()),
                )),
                Err(error) => Err((topic_error_code(&error), error.to_string())),
            }
        };

        for partition_data in topic_data.partition_data {
            let index = partition_data.index;
            let topic = match &topic {
                Ok(topic) => topic,
                Err((code, message)) => {
                    partitions.push(partition_error(index, *code, Some(message.clone())));
                    continue;
                }
            };
            let Some(partition) = topic.partition(index) else {
                partitions.push(partition_error(index, ResponseError::UnknownTopicOrPartition, None));
                continue;
            };
            if topic.is_internal() {
                let message = "clients may not write to an internal topic".to_string();
                partitions.push(partition_error(
                    index,
                    ResponseError::InvalidTopicException,
                    Some(message),
                ));
                continue;
            }
            let records = partition_data.records.unwrap_or_default();
            if let Err((code, message)) = check_one_batch(&records) {
                partitions.push(partition_error(index, code, Some(message)));
                continue;
            }
            let records = BytesMut::from(&records[..]);
            let place = (responses.len(), partitions.len());
            appends.push(append(place, name.clone(), index, partition.clone(), records));
            partitions.push(PartitionProduceResponse::default());
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions),
        );
    }
    for ((topic, slot), response) in join_all(appends).await {
        responses[topic].partition_responses[slot] = response;
    }
    if acks == 0 {
        debug!(peer = %request.peer, "acks=0 produce served without a response");
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Appends one partition's batch and returns its response with `place`, the position of
/// that response in the produce response: the topic's index and the partition's index.
async fn append<D: Disk>(
    place: (usize, usize),
    topic: TopicName,
    index: i32,
    partition: Arc<Partition<D>>,
    records: BytesMut,
) -> ((usize, usize), PartitionProduceResponse) {
    let response = match partition.append(records).await {
        Ok(appended) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(appended.log_append_time)
            .with_log_start_offset(appended.log_start_offset),
        Err(error) => {
            let code = append_error_code(&error);
            match &error {
                AppendError::Log(log_error) if log_error.is_fatal() => {
                    warn!(topic = %topic.as_str(), partition = index, %error, "produce failed")
                }
                _ => debug!(topic = %topic.as_str(), partition = index, %error, "produce rejected"),
            }
            partition_error(index, code, Some(error.to_string()))
        }
    };
    (place, response)
}

/// Checks that a partition's records are exactly one v2 batch, as Kafka requires of
/// Produce v3 and later. The batch's contents are validated by the log.
fn check_one_batch(records: &[u8]) -> Result<(), (ResponseError, String)> {
    let header = BatchHeader::parse(records)
        .map_err(|error| (ResponseError::CorruptMessage, format!("invalid record batch: {error}")))?;
    if header.size() > records.len() {
        let message = format!(
            "the record batch claims {} bytes but the request carries {}",
            header.size(),
            records.len()
        );
        return Err((ResponseError::CorruptMessage, message));
    }
    if header.size() != records.len() {
        return Err((
            ResponseError::InvalidRecord,
            format!(
            "a produce request must carry exactly one record batch per partition; found {} bytes after a batch of {}",
            records.len() - header.size(),
            header.size()
        ),
        ));
    }
    Ok(())
}
