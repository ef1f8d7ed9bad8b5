//! The admin client: topics, partitions, settings, groups and committed offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Cluster, TopicInfo};
use super::error::{check, ClientError, Result};

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// Config resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn topic_name(value: &str) -> TopicName {
    TopicName(text(value))
}

fn message(value: Option<StrBytes>) -> Option<String> {
    value.map(|text| text.as_str().to_string())
}

/// One setting as DescribeConfigs returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Whether the topic sets it (rather than a default).
    pub is_override: bool,
    pub read_only: bool,
}

/// A group as ListGroups returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// A member of a group as DescribeGroups returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Partitions assigned to it, decoded from the consumer protocol; empty for other
    /// protocols.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A change of one topic setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    pub fn new(cluster: Arc<Cluster>) -> Admin {
        Admin { cluster }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Creates a topic; `partitions` of -1 takes the broker's default.
    pub async fn create_topic(&self, name: &str, partitions: i32, configs: &BTreeMap<String, String>) -> Result<()> {
        let configs = configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(text(key))
                    .with_value(Some(text(value)))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(configs);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        let (response, _) = self.cluster.send_any(request, 2, 7).await?;
        let result = response
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                address: String::new(),
                api: "CreateTopics",
                message: "no result for the topic".to_string(),
            })?;
        check(
            || format!("creating topic {name:?}"),
            result.error_code,
            message(result.error_message),
        )?;
        self.cluster.invalidate(name);
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(name)])
            .with_timeout_ms(30_000);
        let (response, _) = self.cluster.send_any(request, 1, 5).await?;
        let result = response
            .responses
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                address: String::new(),
                api: "DeleteTopics",
                message: "no result for the topic".to_string(),
            })?;
        check(
            || format!("deleting topic {name:?}"),
            result.error_code,
            message(result.error_message),
        )?;
        self.cluster.invalidate(name);
        Ok(())
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.cluster.topics().await
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        self.cluster.invalidate(name);
        self.cluster.topic(name, false).await
    }

    /// Raises a topic's partition count to `count`.
    pub async fn create_partitions(&self, name: &str, count: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)])
            .with_timeout_ms(30_000);
        let (response, _) = self.cluster.send_any(request, 0, 3).await?;
        for result in response.results {
            check(
                || format!("adding partitions to {name:?}"),
                result.error_code,
                message(result.error_message),
            )?;
        }
        self.cluster.invalidate(name);
        Ok(())
    }

    /// Returns a topic's settings.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(name))
            .with_configuration_keys(None)]);
        let (response, _) = self.cluster.send_any(request, 1, 4).await?;
        let mut entries = Vec::new();
        for result in response.results {
            check(
                || format!("describing the settings of {name:?}"),
                result.error_code,
                message(result.error_message),
            )?;
            for config in result.configs {
                entries.push(ConfigEntry {
                    name: config.name.as_str().to_string(),
                    value: message(config.value),
                    is_override: config.config_source == 1,
                    read_only: config.read_only,
                });
            }
        }
        Ok(entries)
    }

    /// Sets or deletes single topic settings, leaving the others as they are.
    pub async fn alter_topic_configs(&self, name: &str, changes: &[ConfigChange]) -> Result<()> {
        let configs = changes
            .iter()
            .map(|change| match change {
                ConfigChange::Set(key, value) => AlterableConfig::default()
                    .with_name(text(key))
                    .with_config_operation(0)
                    .with_value(Some(text(value))),
                ConfigChange::Delete(key) => AlterableConfig::default().with_name(text(key)).with_config_operation(1),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(name))
            .with_configs(configs)]);
        let (response, _) = self.cluster.send_any(request, 0, 1).await?;
        for result in response.responses {
            check(
                || format!("changing the settings of {name:?}"),
                result.error_code,
                message(result.error_message),
            )?;
        }
        Ok(())
    }

    /// Returns the offset of each partition for `timestamp`: [`EARLIEST`], [`LATEST`], or
    /// milliseconds since the epoch (the first record at or after it, -1 when none).
    pub async fn list_offsets(&self, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>> {
        let info = self.cluster.topic(topic, false).await?;
        let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for partition in &info.partitions {
            let leader = self.cluster.leader(topic, partition.index).await?;
            by_leader.entry(leader).or_default().push(partition.index);
        }
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|index| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*index)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let (response, _) = self.cluster.send_to(&leader, request, 1, 7).await?;
            for topic_response in response.topics {
                for partition in topic_response.partitions {
                    check(
                        || format!("listing offsets of {topic}-{}", partition.partition_index),
                        partition.error_code,
                        None,
                    )?;
                    offsets.insert(partition.partition_index, partition.offset);
                }
            }
        }
        Ok(offsets)
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let (response, _) = self.cluster.send_any(ListGroupsRequest::default(), 0, 4).await?;
        check(|| "listing groups".to_string(), response.error_code, None)?;
        Ok(response
            .groups
            .into_iter()
            .map(|group| GroupListing {
                group_id: group.group_id.0.as_str().to_string(),
                protocol_type: group.protocol_type.as_str().to_string(),
                state: group.group_state.as_str().to_string(),
            })
            .collect())
    }

    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.cluster.coordinator(group).await?;
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(text(group))]);
        let (response, _) = self.cluster.send_to(&coordinator, request, 0, 5).await?;
        let described = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                address: coordinator.clone(),
                api: "DescribeGroups",
                message: "no result for the group".to_string(),
            })?;
        check(|| format!("describing group {group:?}"), described.error_code, None)?;
        let members = described
            .members
            .into_iter()
            .map(|member| GroupMember {
                member_id: member.member_id.as_str().to_string(),
                group_instance_id: message(member.group_instance_id),
                client_id: member.client_id.as_str().to_string(),
                client_host: member.client_host.as_str().to_string(),
                assignment: super::assignment::decode_assignment(&member.member_assignment).unwrap_or_default(),
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: described.group_state.as_str().to_string(),
            protocol_type: described.protocol_type.as_str().to_string(),
            protocol: described.protocol_data.as_str().to_string(),
            members,
        })
    }

    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let coordinator = self.cluster.coordinator(group).await?;
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text(group))]);
        let (response, _) = self.cluster.send_to(&coordinator, request, 0, 2).await?;
        for result in response.results {
            check(|| format!("deleting group {group:?}"), result.error_code, None)?;
        }
        Ok(())
    }

    /// Returns a group's committed offsets: (topic, partition) to offset.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let coordinator = self.cluster.coordinator(group).await?;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            }));
        let (response, _) = self.cluster.send_to(&coordinator, request, 1, 7).await?;
        check(
            || format!("reading the offsets of group {group:?}"),
            response.error_code,
            None,
        )?;
        let mut offsets = BTreeMap::new();
        for topic in response.topics {
            for partition in topic.partitions {
                check(
                    || format!("reading the offset of group {group:?} on {}", topic.name.0.as_str()),
                    partition.error_code,
                    None,
                )?;
                if partition.committed_offset >= 0 {
                    offsets.insert(
                        (topic.name.0.as_str().to_string(), partition.partition_index),
                        partition.committed_offset,
                    );
                }
            }
        }
        Ok(offsets)
    }

    /// Commits offsets for a group outside any generation, as a tool does when it resets
    /// them; the group must have no active members.
    pub async fn commit_offsets(&self, group: &str, offsets: &BTreeMap<(String, i32), i64>) -> Result<()> {
        self.commit_offsets_in_generation(group, "", -1, offsets).await
    }

    /// Commits offsets as member `member_id` of generation `generation`; generation -1 with
    /// an empty member id commits outside any generation.
    pub async fn commit_offsets_in_generation(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        let coordinator = self.cluster.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(text(member_id))
            .with_topics(topics);
        let (response, _) = self.cluster.send_to(&coordinator, request, 2, 8).await?;
        for topic in response.topics {
            for partition in topic.partitions {
                check(
                    || format!("committing the offset of group {group:?} on {}", topic.name.0.as_str()),
                    partition.error_code,
                    None,
                )?;
            }
        }
        Ok(())
    }
}
