//! The consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, ListGroups, DescribeGroups and
//! DeleteGroups. This node coordinates every group.

use franz_core::group::offsets::OffsetAndMetadata;
use franz_core::group::{HeartbeatRequest, JoinRequest, LeavingMember, SyncRequest};
use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest as WireHeartbeat, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestKind, ResponseKind, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::metadata::advertised_host_port;
use super::{Context, Request};
use crate::groups::{Completion, MAX_METADATA_BYTES};

/// FindCoordinator key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Committed offsets of one topic's partitions; `None` where nothing is committed.
type TopicOffsets = (TopicName, Vec<(i32, Option<OffsetAndMetadata>)>);

/// The outcome of one topic's partitions in an OffsetCommit: the offset to write, or
/// why the partition was rejected.
type TopicCommits = (TopicName, Vec<(i32, Result<OffsetAndMetadata, ResponseError>)>);

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |error| error.code())
}

pub async fn dispatch<D: Disk>(context: &Context<D>, request: &Request, body: RequestKind) -> Option<ResponseKind> {
    let response = match body {
        RequestKind::FindCoordinator(body) => {
            ResponseKind::FindCoordinator(find_coordinator(context, request, body).await)
        }
        RequestKind::JoinGroup(body) => ResponseKind::JoinGroup(join_group(context, request, body).await),
        RequestKind::SyncGroup(body) => ResponseKind::SyncGroup(sync_group(context, request, body).await),
        RequestKind::Heartbeat(body) => ResponseKind::Heartbeat(heartbeat(context, body)),
        RequestKind::LeaveGroup(body) => ResponseKind::LeaveGroup(leave_group(context, request, body)),
        RequestKind::OffsetCommit(body) => ResponseKind::OffsetCommit(offset_commit(context, body).await),
        RequestKind::OffsetFetch(body) => ResponseKind::OffsetFetch(offset_fetch(context, request, body)),
        RequestKind::OffsetDelete(body) => ResponseKind::OffsetDelete(offset_delete(context, body).await),
        RequestKind::ListGroups(body) => ResponseKind::ListGroups(list_groups(context, body)),
        RequestKind::DescribeGroups(body) => ResponseKind::DescribeGroups(describe_groups(context, body)),
        RequestKind::DeleteGroups(body) => ResponseKind::DeleteGroups(delete_groups(context, body).await),
        other => {
            // versions::SUPPORTED lists only APIs with a handler, so this is a bug.
            warn!(
                api_key = request.header.request_api_key,
                "no handler for a supported API"
            );
            drop(other);
            return None;
        }
    };
    Some(response)
}

async fn find_coordinator<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let broker = &context.broker;
    let (host, port) = advertised_host_port(broker.config.advertised());
    let node_id = BrokerId(broker.config.node_id);
    let error = if body.key_type == KEY_TYPE_TRANSACTION {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported yet".to_string(),
        ))
    } else {
        match context.groups.offsets_topic().await {
            Ok(_) => None,
            Err(error) => {
                warn!(%error, "creating the offsets topic failed");
                Some((ResponseError::CoordinatorNotAvailable, error.to_string()))
            }
        }
    };

    if request.version >= 4 {
        let coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key);
                match &error {
                    Some((code, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_error_code(code.code())
                        .with_error_message(Some(text(message.clone()))),
                    None => coordinator
                        .with_node_id(node_id)
                        .with_host(text(host.clone()))
                        .with_port(port),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match error {
        Some((code, message)) => FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(text(message)))
            .with_node_id(BrokerId(-1)),
        None => FindCoordinatorResponse::default()
            .with_node_id(node_id)
            .with_host(text(host))
            .with_port(port),
    }
}

/// Waits for a delayed JoinGroup or SyncGroup result, or for shutdown, which returns
/// COORDINATOR_NOT_AVAILABLE so that the client retries against the restarted broker.
async fn wait_for<D: Disk>(context: &Context<D>, receiver: oneshot::Receiver<Completion>) -> Option<Completion> {
    tokio::select! {
        biased;
        completion = receiver => completion.ok(),
        _ = context.shutdown.wait() => None,
    }
}

async fn join_group<D: Disk>(context: &Context<D>, request: &Request, body: JoinGroupRequest) -> JoinGroupResponse {
    let member_id = body.member_id.as_str().to_string();
    let join = JoinRequest {
        group_id: body.group_id.as_str().to_string(),
        member_id: member_id.clone(),
        group_instance_id: body.group_instance_id.as_ref().map(|id| id.as_str().to_string()),
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|id| id.as_str().to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", request.peer.ip()),
        session_timeout_ms: body.session_timeout_ms,
        // Version 0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if request.version >= 1 {
            body.rebalance_timeout_ms
        } else {
            body.session_timeout_ms
        },
        protocol_type: body.protocol_type.as_str().to_string(),
        protocols: body
            .protocols
            .iter()
            .map(|protocol| (protocol.name.as_str().to_string(), protocol.metadata.clone()))
            .collect(),
        require_known_member_id: request.version >= 4,
        reason: body.reason.as_ref().map(|reason| reason.as_str().to_string()),
    };
    let (sender, receiver) = oneshot::channel();
    context
        .groups
        .with_coordinator(|coordinator, now| ((), coordinator.join(now, join, sender)));
    let result = match wait_for(context, receiver).await {
        Some(Completion::Join(result)) => result,
        _ => franz_core::group::JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id),
    };
    debug!(group = %body.group_id.as_str(), member = %result.member_id, generation = result.generation_id, error = ?result.error, "JoinGroup completed");

    let members = result
        .members
        .into_iter()
        .map(|member| {
            let response = JoinGroupResponseMember::default()
                .with_member_id(text(member.member_id))
                .with_metadata(member.metadata);
            if request.version >= 5 {
                response.with_group_instance_id(member.group_instance_id.map(text))
            } else {
                response
            }
        })
        .collect();
    let response = JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id)
        .with_leader(text(result.leader))
        .with_member_id(text(result.member_id))
        .with_members(members);
    if request.version >= 7 {
        response
            .with_protocol_type(result.protocol_type.map(text))
            .with_protocol_name(result.protocol_name.map(text))
    } else {
        // Before v7 the protocol name is a non-null string.
        response.with_protocol_name(Some(text(result.protocol_name.unwrap_or_default())))
    }
}

async fn sync_group<D: Disk>(context: &Context<D>, request: &Request, body: SyncGroupRequest) -> SyncGroupResponse {
    let sync = SyncRequest {
        group_id: body.group_id.as_str().to_string(),
        generation_id: body.generation_id,
        member_id: body.member_id.as_str().to_string(),
        group_instance_id: body.group_instance_id.as_ref().map(|id| id.as_str().to_string()),
        protocol_type: body.protocol_type.as_ref().map(|value| value.as_str().to_string()),
        protocol_name: body.protocol_name.as_ref().map(|value| value.as_str().to_string()),
        assignments: body
            .assignments
            .iter()
            .map(|assignment| (assignment.member_id.as_str().to_string(), assignment.assignment.clone()))
            .collect(),
    };
    let (sender, receiver) = oneshot::channel();
    context
        .groups
        .with_coordinator(|coordinator, now| ((), coordinator.sync(now, sync, sender)));
    let result = match wait_for(context, receiver).await {
        Some(Completion::Sync(result)) => result,
        _ => franz_core::group::SyncResult::error(ResponseError::CoordinatorNotAvailable),
    };
    let response = SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_assignment(result.assignment);
    if request.version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(text))
            .with_protocol_name(result.protocol_name.map(text))
    } else {
        response
    }
}

fn heartbeat<D: Disk>(context: &Context<D>, body: WireHeartbeat) -> HeartbeatResponse {
    let beat = HeartbeatRequest {
        group_id: body.group_id.as_str().to_string(),
        generation_id: body.generation_id,
        member_id: body.member_id.as_str().to_string(),
        group_instance_id: body.group_instance_id.as_ref().map(|id| id.as_str().to_string()),
    };
    let result = context
        .groups
        .with_coordinator(|coordinator, now| (coordinator.heartbeat(now, beat), Vec::new()));
    HeartbeatResponse::default().with_error_code(code(result.err()))
}

fn leave_group<D: Disk>(context: &Context<D>, request: &Request, body: LeaveGroupRequest) -> LeaveGroupResponse {
    // Before v3 one member leaves, named by member_id; from v3 a batch, each possibly static.
    let leaving: Vec<LeavingMember> = if request.version < 3 {
        vec![LeavingMember {
            member_id: body.member_id.as_str().to_string(),
            group_instance_id: None,
            reason: None,
        }]
    } else {
        body.members
            .iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.as_str().to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|id| id.as_str().to_string()),
                reason: member.reason.as_ref().map(|reason| reason.as_str().to_string()),
            })
            .collect()
    };
    let group = body.group_id.as_str().to_string();
    let identities: Vec<(String, Option<String>)> = leaving
        .iter()
        .map(|member| (member.member_id.clone(), member.group_instance_id.clone()))
        .collect();
    let outcome = context
        .groups
        .with_coordinator(|coordinator, now| coordinator.leave(now, &group, leaving));
    match outcome {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.code()),
        Ok(results) if request.version < 3 => {
            LeaveGroupResponse::default().with_error_code(code(results.into_iter().next().and_then(Result::err)))
        }
        Ok(results) => {
            let members = identities
                .into_iter()
                .zip(results)
                .map(|((member_id, instance_id), result)| {
                    MemberResponse::default()
                        .with_member_id(text(member_id))
                        .with_group_instance_id(instance_id.map(text))
                        .with_error_code(code(result.err()))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}

async fn offset_commit<D: Disk>(context: &Context<D>, body: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = body.group_id.as_str().to_string();
    let checked = context.groups.read_coordinator(|coordinator| {
        coordinator.validate_commit(
            &group,
            body.generation_id_or_member_epoch,
            body.member_id.as_str(),
            body.group_instance_id.as_ref().map(|id| id.as_str()),
        )
    });
    let now = context.broker.clock().now_ms();

    // Per partition: its error, or the offset to write.
    let mut outcome: Vec<TopicCommits> = Vec::new();
    let mut changes = Vec::new();
    for topic in &body.topics {
        let known = context.broker.topic(&topic.name);
        let mut partitions = Vec::new();
        for partition in &topic.partitions {
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|metadata| metadata.as_str().to_string())
                .unwrap_or_default();
            let result = if let Err(error) = checked {
                Err(error)
            } else if known
                .as_ref()
                .and_then(|topic| topic.partition(partition.partition_index))
                .is_none()
            {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > MAX_METADATA_BYTES {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                let offset = OffsetAndMetadata {
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                };
                changes.push((
                    topic.name.as_str().to_string(),
                    partition.partition_index,
                    Some(offset.clone()),
                ));
                Ok(offset)
            };
            partitions.push((partition.partition_index, result));
        }
        outcome.push((topic.name.clone(), partitions));
    }

    let written = context.groups.write_offsets(&group, changes).await;
    if written.is_ok() && checked.is_ok() {
        context
            .groups
            .with_coordinator(|coordinator, _| (coordinator.ensure_known(&group, "consumer"), Vec::new()));
    }
    let topics = outcome
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, result)| {
                    let error = match result {
                        Ok(_) => written.err(),
                        Err(error) => Some(error),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code(error))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Committed offsets of one group: for the listed topics and partitions, or all of them.
fn fetch_group<D: Disk>(
    context: &Context<D>,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    context.groups.read_offsets(|offsets| match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|index| (index, offsets.fetch(group, &name, index).cloned()))
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut by_topic: Vec<TopicOffsets> = Vec::new();
            for (topic, partition, offset) in offsets.fetch_all(group) {
                match by_topic.last_mut() {
                    Some((name, partitions)) if name.as_str() == topic => partitions.push((partition, Some(offset))),
                    _ => by_topic.push((TopicName(text(topic)), vec![(partition, Some(offset))])),
                }
            }
            by_topic
        }
    })
}

fn offset_fetch<D: Disk>(context: &Context<D>, request: &Request, body: OffsetFetchRequest) -> OffsetFetchResponse {
    if request.version >= 8 {
        let groups = body
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|topic| (topic.name, topic.partition_indexes))
                        .collect()
                });
                let topics = fetch_group(context, group.group_id.as_str(), wanted)
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, offset)| {
                                let (offset, epoch, metadata) = split_offset(offset);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(text(metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }

    let wanted = body.topics.map(|topics| {
        topics
            .into_iter()
            .map(|topic| (topic.name, topic.partition_indexes))
            .collect()
    });
    let topics = fetch_group(context, body.group_id.as_str(), wanted)
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset)| {
                    let (offset, epoch, metadata) = split_offset(offset);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_metadata(Some(text(metadata)));
                    if request.version >= 5 {
                        partition.with_committed_leader_epoch(epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Returns offset, leader epoch and metadata; -1, -1 and "" when nothing is committed.
fn split_offset(offset: Option<OffsetAndMetadata>) -> (i64, i32, String) {
    match offset {
        Some(offset) => (offset.offset, offset.leader_epoch, offset.metadata),
        None => (-1, -1, String::new()),
    }
}

async fn offset_delete<D: Disk>(context: &Context<D>, body: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = body.group_id.as_str().to_string();
    let known = context
        .groups
        .read_coordinator(|coordinator| coordinator.describe(&group).state != "Dead");
    let has_offsets = context
        .groups
        .read_offsets(|offsets| !offsets.fetch_all(&group).is_empty());
    if !known && !has_offsets {
        return OffsetDeleteResponse::default().with_error_code(ResponseError::GroupIdNotFound.code());
    }
    // None: the subscriptions cannot be read, so every topic counts as subscribed.
    let subscribed = context
        .groups
        .read_coordinator(|coordinator| coordinator.subscribed_topics(&group));

    let mut deletions = Vec::new();
    let mut topics = Vec::new();
    for topic in body.topics {
        let is_subscribed = match &subscribed {
            Some(topics) => topics.contains(topic.name.as_str()),
            None => known,
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|partition| {
                let error = if is_subscribed {
                    Some(ResponseError::GroupSubscribedToTopic)
                } else {
                    deletions.push((topic.name.as_str().to_string(), partition.partition_index, None));
                    None
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(partition.partition_index)
                    .with_error_code(code(error))
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    match context.groups.write_offsets(&group, deletions).await {
        Ok(()) => OffsetDeleteResponse::default().with_topics(topics),
        Err(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
    }
}

fn list_groups<D: Disk>(context: &Context<D>, body: ListGroupsRequest) -> ListGroupsResponse {
    let filter: Vec<String> = body
        .states_filter
        .iter()
        .map(|state| state.as_str().to_string())
        .collect();
    let groups = context
        .groups
        .read_coordinator(|coordinator| coordinator.list(&filter))
        .into_iter()
        .map(|listing| {
            ListedGroup::default()
                .with_group_id(GroupId(text(listing.group_id)))
                .with_protocol_type(text(listing.protocol_type))
                .with_group_state(text(listing.state))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

fn describe_groups<D: Disk>(context: &Context<D>, body: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = body
        .groups
        .into_iter()
        .map(|group_id| {
            let description = context
                .groups
                .read_coordinator(|coordinator| coordinator.describe(group_id.as_str()));
            let members = description
                .members
                .into_iter()
                .map(|member| {
                    DescribedGroupMember::default()
                        .with_member_id(text(member.member_id))
                        .with_group_instance_id(member.group_instance_id.map(text))
                        .with_client_id(text(member.client_id))
                        .with_client_host(text(member.client_host))
                        .with_member_metadata(member.metadata)
                        .with_member_assignment(member.assignment)
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(text(description.state))
                .with_protocol_type(text(description.protocol_type))
                .with_protocol_data(text(description.protocol_name))
                .with_members(members)
                .with_authorized_operations(i32::MIN)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

async fn delete_groups<D: Disk>(context: &Context<D>, body: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in body.groups_names {
        let deleted = context.groups.delete_group(group_id.as_str()).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code(deleted.err())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
