//! The consumer: reads assigned partitions, or joins a group with the classic protocol
//! and reads the partitions the group's leader assigns it, committing its positions.
//!
//! A group member sends heartbeats from a background task. When the coordinator returns
//! REBALANCE_IN_PROGRESS or UNKNOWN_MEMBER_ID, the next [`Consumer::poll`] commits
//! (with auto commit), joins again and resumes from the committed offsets. The leader
//! computes the assignment with the range assignor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::admin::{Admin, EARLIEST, LATEST};
use super::assignment::{self, Subscription, COOPERATIVE_STICKY, RANGE};
use super::cluster::Cluster;
use super::error::{check, ClientError, Result};
use super::records::{decode_batches, ConsumerRecord};

/// The start of a partition without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

/// Consumer settings, with the Java client's defaults.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer group; `None` for a consumer that only reads assigned partitions.
    pub group_id: Option<String>,
    pub offset_reset: OffsetReset,
    /// Commit positions every `auto_commit_interval` during polls and on close.
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    /// How long the group waits for members to rejoin during a rebalance.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Largest bytes a fetch returns per partition.
    pub max_partition_fetch_bytes: i32,
    /// Assignors offered to the group, preferred first: `range` and `cooperative-sticky`.
    /// The group uses the one most members prefer among those every member offers.
    pub assignors: Vec<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            offset_reset: OffsetReset::Latest,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            max_partition_fetch_bytes: 1024 * 1024,
            assignors: vec![RANGE.to_string(), COOPERATIVE_STICKY.to_string()],
        }
    }
}

/// A record with the partition it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub record: ConsumerRecord,
}

/// Membership in a group, shared with the heartbeat task.
#[derive(Debug, Default)]
struct Membership {
    member_id: String,
    generation: i32,
    coordinator: String,
}

pub struct Consumer {
    cluster: Arc<Cluster>,
    admin: Admin,
    config: ConsumerConfig,
    /// Topics to subscribe to with the group.
    subscription: Vec<String>,
    /// Next offset to read per assigned partition; `None` until it is resolved.
    positions: BTreeMap<(String, i32), Option<i64>>,
    /// Positions as last committed, to skip commits that change nothing.
    committed: BTreeMap<(String, i32), i64>,
    membership: Arc<Mutex<Membership>>,
    /// Member id and generation of the last completed join, for [`Consumer::membership`].
    joined: Option<(String, i32)>,
    rejoin_needed: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    last_commit: Option<tokio::time::Instant>,
    /// This member's own connection to the coordinator for JoinGroup and SyncGroup, which
    /// the coordinator may hold for a whole rebalance. Shared connections would block
    /// every other request, such as another member's heartbeats, meanwhile.
    group_connection: Option<super::connection::Connection>,
}

#[allow(clippy::disallowed_methods)] // Under madsim this Instant is std's, whose clock madsim simulates.
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl Consumer {
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Consumer {
        Consumer {
            admin: Admin::new(cluster.clone()),
            cluster,
            config,
            subscription: Vec::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            membership: Arc::new(Mutex::new(Membership::default())),
            joined: None,
            rejoin_needed: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
            last_commit: None,
            group_connection: None,
        }
    }

    /// Reads these partitions, without a group. Positions start from the committed
    /// offsets when a group id is set, else from the offset reset policy.
    pub fn assign(&mut self, partitions: &[(String, i32)]) {
        self.positions = partitions.iter().map(|key| (key.clone(), None)).collect();
    }

    /// Joins the group (the config's `group_id`) for these topics; the assignment comes
    /// with the first poll.
    pub fn subscribe(&mut self, topics: &[String]) -> Result<()> {
        if self.config.group_id.is_none() {
            return Err(ClientError::InvalidArgument(
                "subscribing needs a group id; set one or assign partitions".to_string(),
            ));
        }
        self.subscription = topics.to_vec();
        self.rejoin_needed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Returns the assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// Returns the member id and generation of this member's last join, or `None` before
    /// its first. A change means a new assignment, whose positions may start again from
    /// the committed offsets. Both change at a rejoin: a coordinator that restarted has
    /// forgotten its members, so their next join gets a new member id.
    pub fn membership(&self) -> Option<(&str, i32)> {
        self.joined
            .as_ref()
            .map(|(member_id, generation)| (member_id.as_str(), *generation))
    }

    /// Returns the next offset to read from a partition, once it is known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied().flatten()
    }

    /// Moves a partition's position to `offset`.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions.insert((topic.to_string(), partition), Some(offset));
    }

    /// Moves every assigned partition of `topic` to the first record at or after
    /// `timestamp_ms`, or to its end when there is none.
    pub async fn seek_to_time(&mut self, topic: &str, timestamp_ms: i64) -> Result<()> {
        let found = self.admin.list_offsets(topic, timestamp_ms).await?;
        let ends = self.admin.list_offsets(topic, LATEST).await?;
        for ((assigned_topic, partition), position) in self.positions.iter_mut() {
            if assigned_topic != topic {
                continue;
            }
            let offset = match found.get(partition) {
                Some(offset) if *offset >= 0 => *offset,
                _ => ends.get(partition).copied().unwrap_or(0),
            };
            *position = Some(offset);
        }
        Ok(())
    }

    /// Fetches records, waiting up to `timeout` for some. Returns an empty list when
    /// none arrived.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<Message>> {
        if self.config.group_id.is_some() && !self.subscription.is_empty() && self.rejoin_needed.load(Ordering::SeqCst)
        {
            if self.config.auto_commit {
                let _ = self.commit().await;
            }
            self.join_group().await?;
        }
        self.resolve_positions().await?;
        let messages = self.fetch(timeout).await?;
        if self.config.auto_commit && self.config.group_id.is_some() {
            let due = self
                .last_commit
                .is_none_or(|last| now().saturating_duration_since(last) >= self.config.auto_commit_interval);
            if due {
                if let Err(error) = self.commit().await {
                    warn!(%error, "auto commit failed");
                }
            }
        }
        Ok(messages)
    }

    /// Commits the current positions and waits for the result.
    pub async fn commit(&mut self) -> Result<()> {
        let Some(group) = self.config.group_id.clone() else {
            return Err(ClientError::InvalidArgument("committing needs a group id".to_string()));
        };
        let offsets: BTreeMap<(String, i32), i64> = self
            .positions
            .iter()
            .filter_map(|(key, position)| position.map(|offset| (key.clone(), offset)))
            .filter(|(key, offset)| self.committed.get(key) != Some(offset))
            .collect();
        self.last_commit = Some(now());
        if offsets.is_empty() {
            return Ok(());
        }
        let membership = self.membership.lock().await;
        let (member_id, generation) = (membership.member_id.clone(), membership.generation);
        drop(membership);
        if member_id.is_empty() && !self.subscription.is_empty() {
            self.rejoin_needed.store(true, Ordering::SeqCst);
            return Err(not_a_member(&group));
        }
        if member_id.is_empty() {
            self.admin.commit_offsets(&group, &offsets).await?;
        } else {
            self.commit_in_generation(&group, &member_id, generation, &offsets)
                .await?;
        }
        self.committed.extend(offsets);
        Ok(())
    }

    /// Commits the current positions in the background and returns at once; the handle
    /// yields the outcome. Positions sent this way are not recorded as committed, so the
    /// next [`Consumer::commit`] sends them again.
    pub fn commit_async(&mut self) -> tokio::task::JoinHandle<Result<()>> {
        let Some(group) = self.config.group_id.clone() else {
            return tokio::spawn(async {
                Err(ClientError::InvalidArgument("committing needs a group id".to_string()))
            });
        };
        let offsets: BTreeMap<(String, i32), i64> = self
            .positions
            .iter()
            .filter_map(|(key, position)| position.map(|offset| (key.clone(), offset)))
            .collect();
        self.last_commit = Some(now());
        let cluster = self.cluster.clone();
        let membership = self.membership.clone();
        let subscribed = !self.subscription.is_empty();
        let rejoin_needed = self.rejoin_needed.clone();
        tokio::spawn(async move {
            let (member_id, generation) = {
                let membership = membership.lock().await;
                (membership.member_id.clone(), membership.generation)
            };
            if offsets.is_empty() {
                return Ok(());
            }
            if member_id.is_empty() && subscribed {
                rejoin_needed.store(true, Ordering::SeqCst);
                return Err(not_a_member(&group));
            }
            if member_id.is_empty() {
                return Admin::new(cluster).commit_offsets(&group, &offsets).await;
            }
            Admin::new(cluster)
                .commit_offsets_in_generation(&group, &member_id, generation, &offsets)
                .await
        })
    }

    async fn commit_in_generation(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        let committed = self
            .admin
            .commit_offsets_in_generation(group, member_id, generation, offsets)
            .await;
        let stale = [
            ResponseError::RebalanceInProgress,
            ResponseError::IllegalGeneration,
            ResponseError::UnknownMemberId,
        ];
        if let Err(error) = &committed {
            if error.kafka_error().is_some_and(|code| stale.contains(&code)) {
                self.rejoin_needed.store(true, Ordering::SeqCst);
            }
        }
        committed
    }

    /// Commits with auto commit, leaves the group and stops heartbeats.
    pub async fn close(mut self) -> Result<()> {
        if self.config.auto_commit && self.config.group_id.is_some() {
            let _ = self.commit().await;
        }
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        let membership = self.membership.lock().await;
        if let (Some(group), false) = (&self.config.group_id, membership.member_id.is_empty()) {
            // Version 3 and later name the leaving members in a list (Kafka 2.4 and later).
            let request = LeaveGroupRequest::default()
                .with_group_id(GroupId(text(group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(text(&membership.member_id))
                ]);
            let left = self.cluster.send_to(&membership.coordinator, request, 3, 4).await;
            if let Err(error) = left {
                debug!(%error, "LeaveGroup failed; the session timeout removes the member");
            }
        }
        Ok(())
    }

    /// Gives every position without an offset its committed offset, or the reset
    /// policy's.
    async fn resolve_positions(&mut self) -> Result<()> {
        let unresolved: Vec<(String, i32)> = self
            .positions
            .iter()
            .filter(|(_, position)| position.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        if unresolved.is_empty() {
            return Ok(());
        }
        let mut committed = BTreeMap::new();
        if let Some(group) = &self.config.group_id {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in &unresolved {
                by_topic.entry(topic.clone()).or_default().push(*partition);
            }
            let wanted: Vec<(String, Vec<i32>)> = by_topic.into_iter().collect();
            committed = self.admin.committed_offsets(group, Some(&wanted)).await?;
        }
        let reset = match self.config.offset_reset {
            OffsetReset::Earliest => EARLIEST,
            OffsetReset::Latest => LATEST,
        };
        let mut reset_offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for key in unresolved {
            let offset = match committed.get(&key) {
                Some(offset) => *offset,
                None => {
                    if !reset_offsets.contains_key(&key.0) {
                        let offsets = self.admin.list_offsets(&key.0, reset).await?;
                        reset_offsets.insert(key.0.clone(), offsets);
                    }
                    reset_offsets[&key.0].get(&key.1).copied().unwrap_or(0)
                }
            };
            self.committed.insert(key.clone(), offset);
            self.positions.insert(key, Some(offset));
        }
        Ok(())
    }

    async fn fetch(&mut self, timeout: Duration) -> Result<Vec<Message>> {
        let mut by_leader: BTreeMap<String, Vec<(String, i32, i64)>> = BTreeMap::new();
        for ((topic, partition), position) in &self.positions {
            let Some(offset) = position else { continue };
            let leader = self.cluster.leader(topic, *partition).await?;
            by_leader
                .entry(leader)
                .or_default()
                .push((topic.clone(), *partition, *offset));
        }
        if by_leader.is_empty() {
            tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        // Only the first leader's fetch waits for data; the others return at once.
        let wait_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut messages = Vec::new();
        let mut first_error = None;
        for (index, (leader, partitions)) in by_leader.into_iter().enumerate() {
            let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
            for (topic, partition, offset) in &partitions {
                topics.entry(topic.clone()).or_default().push(
                    FetchPartition::default()
                        .with_partition(*partition)
                        .with_fetch_offset(*offset)
                        .with_partition_max_bytes(self.config.max_partition_fetch_bytes),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(if index == 0 { wait_ms } else { 0 })
                .with_min_bytes(1)
                .with_max_bytes(50 * 1024 * 1024)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            FetchTopic::default()
                                .with_topic(TopicName(text(&topic)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let response = match self.cluster.send_to(&leader, request, 4, 12).await {
                Ok((response, _)) => response,
                Err(error) => {
                    first_error.get_or_insert(error);
                    continue;
                }
            };
            if let Err(error) = check(|| format!("fetching from {leader}"), response.error_code, None) {
                first_error.get_or_insert(error);
                continue;
            }
            for topic in response.responses {
                let name = topic.topic.0.as_str().to_string();
                for partition in topic.partitions {
                    let key = (name.clone(), partition.partition_index);
                    if partition.error_code == ResponseError::OffsetOutOfRange.code() {
                        let policy = self.config.offset_reset;
                        warn!(topic = %name, partition = partition.partition_index, ?policy, "offset out of range; resetting");
                        match self.reset_offset(&name, partition.partition_index).await {
                            Ok(offset) => {
                                self.positions.insert(key, Some(offset));
                            }
                            Err(error) => {
                                first_error.get_or_insert(error);
                            }
                        }
                        continue;
                    }
                    if partition.error_code == ResponseError::NotLeaderOrFollower.code()
                        || partition.error_code == ResponseError::UnknownTopicOrPartition.code()
                    {
                        self.cluster.invalidate(&name);
                        continue;
                    }
                    // Other partitions of this response may already have moved their
                    // positions, so their records must reach the caller: a partition's
                    // error is returned only when nothing was read.
                    if let Err(error) = check(
                        || format!("fetching {name}-{}", partition.partition_index),
                        partition.error_code,
                        None,
                    ) {
                        warn!(topic = %name, partition = partition.partition_index, %error, "fetch failed for a partition");
                        first_error.get_or_insert(error);
                        continue;
                    }
                    let Some(records) = partition.records else { continue };
                    let position = self.positions.get(&key).copied().flatten().unwrap_or(0);
                    let decoded = match decode_batches(&records) {
                        Ok(decoded) => decoded,
                        Err(message) => {
                            first_error.get_or_insert(ClientError::Protocol {
                                address: leader.clone(),
                                api: "Fetch",
                                message: format!("{name}-{}: {message}", partition.partition_index),
                            });
                            continue;
                        }
                    };
                    let mut next = position;
                    for record in decoded {
                        if record.offset < position {
                            continue;
                        }
                        next = record.offset + 1;
                        messages.push(Message {
                            topic: name.clone(),
                            partition: partition.partition_index,
                            record,
                        });
                    }
                    self.positions.insert(key, Some(next));
                }
            }
        }
        match first_error {
            Some(error) if messages.is_empty() => Err(error),
            _ => Ok(messages),
        }
    }

    /// Returns the offset the reset policy gives one partition.
    async fn reset_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let timestamp = match self.config.offset_reset {
            OffsetReset::Earliest => EARLIEST,
            OffsetReset::Latest => LATEST,
        };
        let offsets = self.admin.list_offsets(topic, timestamp).await?;
        Ok(offsets.get(&partition).copied().unwrap_or(0))
    }

    /// Joins the group and takes the assignment the leader computed. The rejoin flag
    /// stays set until the SyncGroup succeeds, so the next poll tries again after a join
    /// that failed or whose future was dropped, because the old heartbeats are stopped.
    async fn join_group(&mut self) -> Result<()> {
        let group = self.config.group_id.clone().expect("joining needs a group id");
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        let coordinator = self.cluster.coordinator(&group).await?;
        let mut member_id = self.membership.lock().await.member_id.clone();
        if member_id.is_empty() {
            // The coordinator forgot this member, so the group may have handed its
            // partitions on already: they are lost, not owned.
            self.drop_lost_partitions();
        }
        for assignor in &self.config.assignors {
            if assignor != RANGE && assignor != COOPERATIVE_STICKY {
                return Err(ClientError::InvalidArgument(format!(
                    "unknown assignor {assignor:?}; use {RANGE} or {COOPERATIVE_STICKY}"
                )));
            }
        }
        let mut protocols = self.join_protocols();

        let joined = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_session_timeout_ms(self.config.session_timeout.as_millis() as i32)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout.as_millis() as i32)
                .with_member_id(text(&member_id))
                .with_protocol_type(text("consumer"))
                .with_protocols(protocols.clone());
            // The coordinator may hold a JoinGroup for up to the rebalance timeout.
            let (response, _) = self.send_long(&coordinator, request, 0, 7).await?;
            if response.error_code == ResponseError::MemberIdRequired.code() {
                member_id = response.member_id.as_str().to_string();
                continue;
            }
            if response.error_code == ResponseError::UnknownMemberId.code() {
                member_id.clear();
                // The member claims no partition of the membership that ended.
                self.drop_lost_partitions();
                protocols = self.join_protocols();
                continue;
            }
            check(|| format!("joining group {group:?}"), response.error_code, None)?;
            break response;
        };
        let member_id = joined.member_id.as_str().to_string();
        let generation = joined.generation_id;
        let is_leader = joined.leader.as_str() == member_id;

        let protocol = joined
            .protocol_name
            .as_ref()
            .map_or(RANGE.to_string(), |name| name.as_str().to_string());
        let assignments = if is_leader {
            let mut members = BTreeMap::new();
            for member in &joined.members {
                let subscription = assignment::decode_subscription(&member.metadata).unwrap_or_default();
                members.insert(member.member_id.as_str().to_string(), subscription);
            }
            let mut counts = BTreeMap::new();
            for topic in members.values().flat_map(|subscription| &subscription.topics) {
                if counts.contains_key(topic) {
                    continue;
                }
                match self.cluster.topic(topic, false).await {
                    Ok(info) => {
                        counts.insert(topic.clone(), info.partitions.len() as i32);
                    }
                    Err(error) => debug!(topic, %error, "subscribed topic not found; assigning none of it"),
                }
            }
            let computed = if protocol == COOPERATIVE_STICKY {
                assignment::assign_cooperative_sticky(&members, &counts)
            } else {
                let topics = members
                    .iter()
                    .map(|(member, subscription)| (member.clone(), subscription.topics.clone()))
                    .collect();
                assignment::assign_range(&topics, &counts)
            };
            computed
                .into_iter()
                .map(|(member, partitions)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(&member))
                        .with_assignment(assignment::encode_assignment(&partitions))
                })
                .collect()
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(text(&group)))
            .with_generation_id(generation)
            .with_member_id(text(&member_id))
            .with_assignments(assignments);
        let (synced, _) = self.send_long(&coordinator, request, 0, 4).await?;
        if synced.error_code == ResponseError::RebalanceInProgress.code() {
            // The next join goes in as the member that this JoinGroup made.
            self.membership.lock().await.member_id = member_id;
            self.rejoin_needed.store(true, Ordering::SeqCst);
            return Ok(());
        }
        check(|| format!("syncing group {group:?}"), synced.error_code, None)?;
        self.rejoin_needed.store(false, Ordering::SeqCst);
        let assigned = assignment::decode_assignment(&synced.assignment).map_err(|message| ClientError::Protocol {
            address: coordinator.clone(),
            api: "SyncGroup",
            message,
        })?;

        if self.joined.as_ref().is_some_and(|(previous, _)| *previous != member_id) {
            // A new member id: the old membership ended while this member held its
            // partitions, and others may have read and committed them since.
            self.drop_lost_partitions();
        }
        let assigned: std::collections::BTreeSet<(String, i32)> = assigned
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |partition| (topic.clone(), partition)))
            .collect();
        let revoked: Vec<(String, i32)> = self
            .positions
            .keys()
            .filter(|key| !assigned.contains(*key))
            .cloned()
            .collect();
        if protocol == COOPERATIVE_STICKY {
            // Kept partitions keep their positions; revoked ones are given up, and the
            // member rejoins so that the group can hand them on.
            for key in &revoked {
                self.positions.remove(key);
                self.committed.remove(key);
            }
            for key in &assigned {
                self.positions.entry(key.clone()).or_insert(None);
            }
            if !revoked.is_empty() {
                self.rejoin_needed.store(true, Ordering::SeqCst);
            }
        } else {
            self.positions = assigned.iter().map(|key| (key.clone(), None)).collect();
            self.committed.clear();
        }
        info!(
            group,
            member_id,
            generation,
            protocol,
            partitions = self.positions.len(),
            revoked = revoked.len(),
            "joined group"
        );
        self.joined = Some((member_id.clone(), generation));
        {
            let mut membership = self.membership.lock().await;
            membership.member_id = member_id;
            membership.generation = generation;
            membership.coordinator = coordinator;
        }
        self.heartbeat = Some(tokio::spawn(run_heartbeats(
            self.cluster.clone(),
            group,
            self.membership.clone(),
            self.rejoin_needed.clone(),
            self.config.heartbeat_interval,
        )));
        Ok(())
    }

    /// Returns the JoinGroup protocols: every configured assignor, each with the
    /// subscription and the partitions this member owns.
    fn join_protocols(&self) -> Vec<JoinGroupRequestProtocol> {
        let metadata = assignment::encode_subscription(&Subscription {
            topics: self.subscription.clone(),
            owned: self.positions.keys().cloned().collect(),
        });
        self.config
            .assignors
            .iter()
            .map(|name| {
                JoinGroupRequestProtocol::default()
                    .with_name(text(name))
                    .with_metadata(metadata.clone())
            })
            .collect()
    }

    /// Forgets the positions of every partition of a membership that ended, as Kafka's
    /// consumer does for lost partitions: the next owner of each resumes from the group's
    /// committed offset, not from this member's position, which may lie behind it.
    fn drop_lost_partitions(&mut self) {
        if !self.positions.is_empty() {
            info!(
                partitions = self.positions.len(),
                "membership lost; dropping the positions of its partitions"
            );
        }
        self.positions.clear();
        self.committed.clear();
    }

    /// Sends a request that the coordinator may hold for up to the rebalance timeout, on
    /// this member's own connection.
    async fn send_long<R: kafka_protocol::protocol::Request>(
        &mut self,
        address: &str,
        request: R,
        min: i16,
        max: i16,
    ) -> Result<(R::Response, i16)> {
        // The connection is taken out while a request is on it. When the caller drops the
        // future, the connection is dropped too, so a late response never reaches the
        // next request.
        let mut connection = match self.group_connection.take() {
            Some(connection) if connection.address() == address => connection,
            _ => {
                let client_id = &self.cluster.config().client_id;
                super::connection::Connection::connect(address, client_id).await?
            }
        };
        let limit = self.config.rebalance_timeout + Duration::from_secs(5);
        let result = match tokio::time::timeout(limit, connection.send(request, min, max)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                operation: "waiting for the group to rebalance".to_string(),
                timeout_ms: limit.as_millis() as u64,
            }),
        };
        if result.is_ok() {
            self.group_connection = Some(connection);
        }
        result
    }
}

/// Returns the error of a commit by a subscribed member that is not in the group, because
/// its positions may belong to another member by now.
fn not_a_member(group: &str) -> ClientError {
    ClientError::broker(
        format!("committing offsets of group {group:?}"),
        ResponseError::UnknownMemberId.code(),
        Some("this member is not in the group; poll to join it again, then commit".to_string()),
    )
}

async fn run_heartbeats(
    cluster: Arc<Cluster>,
    group: String,
    membership: Arc<Mutex<Membership>>,
    rejoin_needed: Arc<AtomicBool>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let (member_id, generation, coordinator) = {
            let membership = membership.lock().await;
            (
                membership.member_id.clone(),
                membership.generation,
                membership.coordinator.clone(),
            )
        };
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(text(&group)))
            .with_generation_id(generation)
            .with_member_id(text(&member_id));
        match cluster.send_to(&coordinator, request, 0, 4).await {
            Ok((response, _)) if response.error_code == 0 => {}
            Ok((response, _)) => {
                debug!(group, code = response.error_code, "heartbeat asks for a rejoin");
                if response.error_code == ResponseError::UnknownMemberId.code() {
                    membership.lock().await.member_id.clear();
                }
                rejoin_needed.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => debug!(group, %error, "heartbeat failed; retrying"),
        }
    }
}
