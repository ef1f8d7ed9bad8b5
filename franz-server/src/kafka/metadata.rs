//! Metadata and DescribeCluster: this node is every partition's leader and only replica.

use std::sync::Arc;

use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;
use uuid::Uuid;

use super::errors::topic_error_code;
use super::{Context, Request};
use crate::broker::{validate_topic_name, Topic};

/// Kafka's value for "authorized operations were not requested".
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Splits the advertised `host:port`.
pub fn advertised_host_port(advertised: &str) -> (String, i32) {
    match advertised.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']).to_string(), port.parse().unwrap_or(9092)),
        None => (advertised.to_string(), 9092),
    }
}

fn topic_metadata<D: Disk>(topic: &Topic<D>, node_id: i32) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            MetadataResponsePartition::default()
                .with_partition_index(partition.index)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn topic_error(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

pub async fn metadata<D: Disk>(context: &Context<D>, request: &Request, body: MetadataRequest) -> MetadataResponse {
    let broker = &context.broker;
    let node_id = broker.config.node_id;
    // v0 has no null list, so an empty one requests every topic.
    let all_topics = body.topics.is_none() || (request.version == 0 && body.topics.as_ref().is_some_and(Vec::is_empty));
    // Before v4 the request has no flag and auto-creation is always allowed.
    let allow_create = request.version < 4 || body.allow_auto_topic_creation;

    let topics = if all_topics {
        broker
            .topics()
            .iter()
            .map(|topic| topic_metadata(topic, node_id))
            .collect()
    } else {
        let mut topics = Vec::new();
        for wanted in body.topics.unwrap_or_default() {
            topics.push(requested_topic(context, wanted.name, wanted.topic_id, allow_create).await);
        }
        topics
    };

    let (host, port) = advertised_host_port(broker.config.advertised());
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id().to_string())))
        .with_controller_id(BrokerId(node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

async fn requested_topic<D: Disk>(
    context: &Context<D>,
    name: Option<TopicName>,
    id: Uuid,
    allow_create: bool,
) -> MetadataResponseTopic {
    let broker = &context.broker;
    let node_id = broker.config.node_id;
    let Some(name) = name else {
        return match broker.topic_by_id(id) {
            Some(topic) => topic_metadata(&topic, node_id),
            None => topic_error(None, id, ResponseError::UnknownTopicId),
        };
    };
    if let Err(error) = validate_topic_name(&name) {
        return topic_error(Some(name), id, topic_error_code(&error));
    }
    let found = if allow_create {
        broker.topic_or_create(&name).await
    } else {
        Ok(broker.topic(&name))
    };
    match found {
        Ok(Some(topic)) => topic_metadata(&topic, node_id),
        Ok(None) => topic_error(Some(name), id, ResponseError::UnknownTopicOrPartition),
        Err(error) => {
            warn!(topic = %name.as_str(), %error, "creating a topic on first use failed");
            topic_error(Some(name), id, topic_error_code(&error))
        }
    }
}

pub fn describe_cluster<D: Disk>(
    context: &Context<D>,
    _request: &Request,
    _body: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker: &Arc<_> = &context.broker;
    let node_id = broker.config.node_id;
    let (host, port) = advertised_host_port(broker.config.advertised());
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id().to_string()))
        .with_controller_id(BrokerId(node_id))
        .with_endpoint_type(1)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
