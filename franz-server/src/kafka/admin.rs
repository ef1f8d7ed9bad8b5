//! CreateTopics, DeleteTopics, CreatePartitions and InitProducerId.

use std::collections::BTreeMap;

use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;
use uuid::Uuid;

use super::errors::topic_error_code;
use super::{Context, Request};
use crate::broker::TopicError;
use crate::topic_config::TOPIC_SETTINGS;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub async fn create_topics<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = &context.broker;
    let mut results = Vec::with_capacity(body.topics.len());
    for wanted in body.topics {
        let name = wanted.name.as_str().to_string();
        let result = CreatableTopicResult::default()
            .with_name(wanted.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);

        let partitions = if !wanted.assignments.is_empty() {
            wanted.assignments.len() as i32
        } else if wanted.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            wanted.num_partitions
        };
        let node = broker.config.node_id;
        let bad_assignment = wanted
            .assignments
            .iter()
            .any(|assignment| assignment.broker_ids.iter().any(|id| id.0 != node) || assignment.broker_ids.len() > 1);
        let overrides: BTreeMap<String, String> = wanted
            .configs
            .iter()
            .filter_map(|config| {
                let value = config.value.as_ref()?;
                Some((config.name.as_str().to_string(), value.as_str().to_string()))
            })
            .collect();

        let created = if !matches!(wanted.replication_factor, -1 | 1) {
            Err(TopicError::InvalidReplicationFactor(wanted.replication_factor))
        } else if bad_assignment {
            Err(TopicError::InvalidRequest(format!(
                "replica assignments may name only this broker, {node}, once per partition"
            )))
        } else {
            broker
                .create_topic(&name, partitions, overrides, body.validate_only)
                .await
        };
        results.push(match created {
            Ok(topic) => {
                let configs = TOPIC_SETTINGS
                    .iter()
                    .map(|setting| {
                        let (value, source) = topic.configs.value(setting);
                        CreatableTopicConfigs::default()
                            .with_name(text(setting.name))
                            .with_value(Some(text(value)))
                            .with_config_source(source as i8)
                    })
                    .collect();
                let result = result
                    .with_topic_id(topic.id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if request.version >= 5 {
                    result.with_configs(Some(configs))
                } else {
                    result
                }
            }
            Err(error) => {
                if !matches!(error, TopicError::AlreadyExists(_)) {
                    warn!(topic = %name, %error, "CreateTopics failed");
                }
                result
                    .with_error_code(topic_error_code(&error).code())
                    .with_error_message(Some(text(error.to_string())))
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let broker = &context.broker;
    // Before v6 topics come by name only; from v6 each one has a name or an id.
    let wanted: Vec<(Option<TopicName>, Uuid)> = if request.version < 6 {
        body.topic_names
            .into_iter()
            .map(|name| (Some(name), Uuid::nil()))
            .collect()
    } else {
        body.topics
            .into_iter()
            .map(|topic| (topic.name, topic.topic_id))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let topic = match &name {
            Some(name) => broker.topic(name),
            None => broker.topic_by_id(id),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        let Some(topic) = topic else {
            let code = if name.is_some() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::UnknownTopicId
            };
            responses.push(result.with_error_code(code.code()));
            continue;
        };
        let result = result
            .with_name(Some(TopicName(text(topic.name.clone()))))
            .with_topic_id(topic.id);
        responses.push(match broker.delete_topic(&topic.name).await {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(topic_error_code(&error).code())
                .with_error_message(Some(text(error.to_string()))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions<D: Disk>(
    context: &Context<D>,
    body: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(body.topics.len());
    for wanted in body.topics {
        let result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
        let created = context
            .broker
            .create_partitions(&wanted.name, wanted.count, body.validate_only)
            .await;
        results.push(match created {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(topic_error_code(&error).code())
                .with_error_message(Some(text(error.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// Gives an idempotent producer its id. A producer that sends its current id and epoch
/// (KIP-360) gets the epoch raised instead, or a new id when the epoch is exhausted.
pub async fn init_producer_id<D: Disk>(context: &Context<D>, body: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if body.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if body.producer_id.0 >= 0 && body.producer_epoch >= 0 && body.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(body.producer_id)
            .with_producer_epoch(body.producer_epoch + 1);
    }
    match context.broker.allocate_producer_id().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(error) => {
            warn!(%error, "allocating a producer id failed");
            response.with_error_code(topic_error_code(&error).code())
        }
    }
}
