//! The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups, DeleteGroups) as a pure state machine, and the store of
//! committed offsets in [`offsets`].
//!
//! The coordinator does no IO and reads no clock: every call takes `now_ms`, and the
//! server calls [`GroupCoordinator::tick`] from a timer (every 100 ms) to run session
//! expiry and the join and sync deadlines. Groups and members are kept in ordered maps,
//! so the same calls produce the same replies in the same order, as the deterministic
//! simulation needs. This node is always the coordinator of every group, so no call
//! returns COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR.
//!
//! # Delayed responses
//!
//! JoinGroup and SyncGroup may wait for other members. With each of these requests the
//! server hands in a waiter `W`, which is a oneshot sender in the server and a number in
//! tests. The waiter comes back in a [`Reply`] together with the result. The contract:
//!
//! - Every waiter handed to [`GroupCoordinator::join`] or [`GroupCoordinator::sync`] MUST
//!   come back in exactly one [`Reply`], returned by that call or by a later call of
//!   `join`, `sync`, `leave` or `tick`, unless the coordinator itself is dropped first.
//! - The server MUST send every returned reply, and MUST keep calling `tick`: a waiter
//!   that is waiting for a deadline comes back only from `tick`.
//! - A second JoinGroup (or SyncGroup) from a member whose earlier one still waits
//!   replaces it, and the earlier waiter gets REBALANCE_IN_PROGRESS at once. Kafka drops
//!   the earlier response in that case.

pub mod offsets;

mod member;
mod request;
mod state;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Decodable, Message};
use tracing::info;

use member::Member;
use state::{Group, GroupState};

pub use request::{
    GroupDescription, GroupListing, HeartbeatRequest, JoinMember, JoinRequest, JoinResult, LeavingMember,
    MemberDescription, Reply, SyncRequest, SyncResult,
};

/// Protocol type of Kafka consumers; only its metadata is parsed for subscriptions.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Coordinator settings, named after Kafka's broker settings. [`GroupConfig::default`]
/// gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: smallest session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: largest session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first join phase of an Empty
    /// group waits for more members. Each delay in which a new member joined is followed
    /// by one more, until the phase has lasted the group's rebalance timeout.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: most members a group may have.
    pub max_group_size: usize,
    /// How long a new member may wait in its first JoinGroup before it is removed; 5
    /// minutes in Kafka, where it is not configurable.
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_size: i32::MAX as usize,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// The coordinator of every classic group on this node. `W` is the server's handle for
/// a delayed JoinGroup or SyncGroup response; see the module documentation for the
/// contract on waiters.
#[derive(Debug)]
pub struct GroupCoordinator<W> {
    /// Settings shared by all groups.
    config: GroupConfig,
    /// Groups by group id. A deleted group is removed, so no entry is Dead.
    groups: BTreeMap<String, Group<W>>,
    /// Random part of every member id, so that ids differ across restarts.
    member_id_seed: u64,
    /// Number of the next member id; counts across all groups.
    next_member_number: u64,
}

impl<W> GroupCoordinator<W> {
    /// Creates a coordinator with no groups. The server passes a fresh random
    /// `member_id_seed` on every start, so member ids stay unique across restarts.
    pub fn new(config: GroupConfig, member_id_seed: u64) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            member_id_seed,
            next_member_number: 0,
        }
    }

    /// Generates a member id: `{prefix}-{seed in hex}-{counter}`. The prefix is the
    /// `group.instance.id` of a static member and the client id otherwise, as in Kafka.
    fn generate_member_id(&mut self, client_id: &str, group_instance_id: Option<&str>) -> String {
        let prefix = group_instance_id.unwrap_or(client_id);
        let number = self.next_member_number;
        self.next_member_number += 1;
        format!("{prefix}-{:x}-{number}", self.member_id_seed)
    }

    /// Handles a JoinGroup request. The result for `waiter` is in the returned replies,
    /// or in those of a later call once the join phase ends. The returned replies may
    /// complete other members' delayed requests too.
    pub fn join(&mut self, now_ms: i64, request: JoinRequest, waiter: W) -> Vec<Reply<W>> {
        let mut out = Vec::new();

        if request.group_id.is_empty() {
            out.push(Reply::Join(
                waiter,
                JoinResult::error(ResponseError::InvalidGroupId, &request.member_id),
            ));
            return out;
        }
        let timeout = request.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms || timeout > self.config.max_session_timeout_ms {
            let result = JoinResult::error(ResponseError::InvalidSessionTimeout, &request.member_id);
            out.push(Reply::Join(waiter, result));
            return out;
        }

        let is_new_member = request.member_id.is_empty();
        if !self.groups.contains_key(&request.group_id) {
            if !is_new_member {
                let result = JoinResult::error(ResponseError::UnknownMemberId, &request.member_id);
                out.push(Reply::Join(waiter, result));
                return out;
            }
            self.groups
                .insert(request.group_id.clone(), Group::new(&request.group_id));
        }

        let new_member_id = if is_new_member {
            self.generate_member_id(&request.client_id, request.group_instance_id.as_deref())
        } else {
            String::new()
        };
        let config = &self.config;
        let group = self.groups.get_mut(&request.group_id).expect("group inserted above");

        if !accepts_joining_member(group, &request.member_id, config.max_group_size) {
            info!(group_id = %group.group_id, member_id = %request.member_id, "group is full");
            group.remove_member(&request.member_id, &mut out);
            out.push(Reply::Join(
                waiter,
                JoinResult::error(ResponseError::GroupMaxSizeReached, ""),
            ));
            group.maybe_complete_join_phase(now_ms, &mut out);
            return out;
        }

        if is_new_member {
            join_new_member(group, config, now_ms, request, new_member_id, waiter, &mut out);
        } else {
            join_existing_member(group, config, now_ms, request, waiter, &mut out);
        }

        // A join phase that is already due (an initial rebalance delay of 0) ends now
        // rather than at the next tick.
        group.expire_join_deadline(now_ms, config, &mut out);
        out
    }

    /// Handles a SyncGroup request. A follower's request waits for the leader's; the
    /// leader's request completes every waiting one with its assignment.
    pub fn sync(&mut self, now_ms: i64, request: SyncRequest, waiter: W) -> Vec<Reply<W>> {
        let mut out = Vec::new();
        let reject = |error, mut out: Vec<Reply<W>>, waiter| {
            out.push(Reply::Sync(waiter, SyncResult::error(error)));
            out
        };

        if request.group_id.is_empty() {
            return reject(ResponseError::InvalidGroupId, out, waiter);
        }
        // NOTE: Kafka's Java group coordinator returns GROUP_ID_NOT_FOUND here. This keeps
        // the Scala coordinator's UNKNOWN_MEMBER_ID, which makes any client join again.
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return reject(ResponseError::UnknownMemberId, out, waiter);
        };
        if let Err(error) = group.validate_member(&request.member_id, request.group_instance_id.as_deref()) {
            return reject(error, out, waiter);
        }
        if request.generation_id != group.generation_id {
            return reject(ResponseError::IllegalGeneration, out, waiter);
        }
        if is_inconsistent(request.protocol_type.as_deref(), group.protocol_type.as_deref())
            || is_inconsistent(request.protocol_name.as_deref(), group.protocol_name.as_deref())
        {
            return reject(ResponseError::InconsistentGroupProtocol, out, waiter);
        }

        let member = group.members.get_mut(&request.member_id).expect("validated member");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty => reject(ResponseError::UnknownMemberId, out, waiter),
            GroupState::PreparingRebalance => reject(ResponseError::RebalanceInProgress, out, waiter),
            GroupState::CompletingRebalance => {
                if let Some(previous) = member.sync_waiter.replace(waiter) {
                    out.push(Reply::Sync(
                        previous,
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
                group.pending_sync.remove(&request.member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline_ms = None;
                }
                if group.leader.as_deref() == Some(request.member_id.as_str()) {
                    group.complete_sync(request.assignments, now_ms, &mut out);
                }
                out
            }
            GroupState::Stable => {
                let result = SyncResult {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                out.push(Reply::Sync(waiter, result));
                group.pending_sync.remove(&request.member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline_ms = None;
                }
                out
            }
        }
    }

    /// Handles a Heartbeat request: restarts the member's session, and returns
    /// REBALANCE_IN_PROGRESS while the group is in its join phase, so that the member
    /// rejoins.
    pub fn heartbeat(&mut self, now_ms: i64, request: HeartbeatRequest) -> Result<(), ResponseError> {
        if request.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(&request.group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.validate_member(&request.member_id, request.group_instance_id.as_deref())?;
        if request.generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }

        let member = group.members.get_mut(&request.member_id).expect("validated member");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// Handles a LeaveGroup request for one or more members. Returns the group-level
    /// result (INVALID_GROUP_ID for an empty group id) with one result per member in
    /// request order, and the delayed responses that the departures completed.
    ///
    /// A member named by `group_instance_id` with an empty member id is removed whichever
    /// member id it holds, as LeaveGroup v3+ allows admin clients to do.
    #[allow(clippy::type_complexity)]
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> (Result<Vec<Result<(), ResponseError>>, ResponseError>, Vec<Reply<W>>) {
        let mut out = Vec::new();
        if group_id.is_empty() {
            return (Err(ResponseError::InvalidGroupId), out);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            let results = members.iter().map(|_| Err(ResponseError::UnknownMemberId)).collect();
            return (Ok(results), out);
        };

        let mut results = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in &members {
            let result = remove_leaving_member(group, leaving, &mut out);
            removed_any |= result.is_ok();
            results.push(result);
        }

        if removed_any {
            match group.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    group.prepare_rebalance(now_ms, &self.config, "members left the group", &mut out);
                }
                GroupState::PreparingRebalance => group.maybe_complete_join_phase(now_ms, &mut out),
                GroupState::Empty => {}
            }
        }
        (Ok(results), out)
    }

    /// Runs every deadline that has passed at `now_ms`, in group id order: expired
    /// sessions and unused MEMBER_ID_REQUIRED ids, the end of join phases (rebalance
    /// timeout and initial rebalance delay) and the sync deadline.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Reply<W>> {
        let mut out = Vec::new();
        for group in self.groups.values_mut() {
            group.expire(now_ms, &self.config, &mut out);
        }
        out
    }

    /// Checks whether an OffsetCommit from this member and generation may write offsets.
    ///
    /// A commit with generation -1 (a client that assigns partitions itself, or an admin
    /// client) is allowed to an Empty or unknown group, as in Kafka. Other commits to an
    /// unknown group get ILLEGAL_GENERATION, and a member whose group is still in the sync
    /// phase gets REBALANCE_IN_PROGRESS.
    pub fn validate_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let Some(group) = self.groups.get(group_id) else {
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }

        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            group.validate_member(member_id, group_instance_id)?;
            if generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if group.state != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }

        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Describes a group for DescribeGroups. An unknown group describes as Dead with no
    /// members. Member metadata, assignments and the protocol name are filled in only
    /// when the group is Stable, as in Kafka.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_string(),
                state: "Dead".to_string(),
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };

        let stable = group.state == GroupState::Stable;
        let protocol_name = if stable {
            group.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = group
            .members
            .values()
            .map(|member| MemberDescription {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: if stable {
                    member.metadata(&protocol_name).cloned().unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();

        GroupDescription {
            group_id: group.group_id.clone(),
            state: group.state.name().to_string(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name,
            members,
        }
    }

    /// Lists the groups for ListGroups, sorted by group id. A non-empty `states_filter`
    /// keeps only groups in one of those states, compared without regard to case.
    pub fn list(&self, states_filter: &[String]) -> Vec<GroupListing> {
        self.groups
            .values()
            .filter(|group| {
                states_filter.is_empty()
                    || states_filter
                        .iter()
                        .any(|state| state.eq_ignore_ascii_case(group.state.name()))
            })
            .map(|group| GroupListing {
                group_id: group.group_id.clone(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                state: group.state.name().to_string(),
            })
            .collect()
    }

    /// Deletes a group that has no members, for DeleteGroups. The caller deletes its
    /// committed offsets too. Returns NON_EMPTY_GROUP while the group has members or
    /// pending member ids, and GROUP_ID_NOT_FOUND for an unknown group.
    pub fn delete(&mut self, group_id: &str) -> Result<(), ResponseError> {
        let group = self.groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        if !group.members.is_empty() || !group.pending_members.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        self.groups.remove(group_id);
        info!(group_id, "group deleted");
        Ok(())
    }

    /// Returns the topics that the group's members subscribe to, for OffsetDelete's
    /// GROUP_SUBSCRIBED_TO_TOPIC check, parsed from the metadata of each member's
    /// selected protocol (its first protocol before any is selected).
    ///
    /// Returns `Some` of an empty set for a group without members, and `None` when the
    /// group is unknown, its protocol type is not `consumer`, or a member's metadata does
    /// not parse. The caller must then treat every topic as subscribed.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<BTreeSet<String>> {
        let group = self.groups.get(group_id)?;
        let mut topics = BTreeSet::new();
        if group.members.is_empty() {
            return Some(topics);
        }
        if group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }

        for member in group.members.values() {
            let metadata = match &group.protocol_name {
                Some(protocol) => member.metadata(protocol),
                None => member.protocols.first().map(|(_, metadata)| metadata),
            }?;
            topics.extend(parse_subscription(metadata)?);
        }
        Some(topics)
    }

    /// Creates an Empty group if `group_id` is unknown. The server calls it for every
    /// group that has committed offsets after replaying `__consumer_offsets`, and after
    /// a commit to an unknown group, so that such groups list and describe as Empty.
    ///
    /// NOTE: nothing removes an Empty group on its own yet; Kafka removes it once its
    /// offsets expire.
    pub fn ensure_known(&mut self, group_id: &str, protocol_type: &str) {
        if group_id.is_empty() || self.groups.contains_key(group_id) {
            return;
        }
        let mut group = Group::new(group_id);
        if !protocol_type.is_empty() {
            group.protocol_type = Some(protocol_type.to_string());
        }
        self.groups.insert(group_id.to_string(), group);
    }
}

/// Returns whether a new or rejoining member may enter under `group.max.size`. In the
/// join phase the members already waiting are counted, so that the last members to
/// rejoin an over-full group are the ones turned away, as in Kafka.
fn accepts_joining_member<W>(group: &Group<W>, member_id: &str, max_group_size: usize) -> bool {
    let existing = group.members.get(member_id);
    match group.state {
        GroupState::Empty => true,
        GroupState::PreparingRebalance => {
            existing.is_some_and(|member| member.join_waiter.is_some()) || group.awaiting_join_count() < max_group_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            existing.is_some() || group.members.len() < max_group_size
        }
    }
}

/// Returns whether a protocol type or name in a request contradicts the group's. Either
/// side may be absent, and then there is nothing to contradict.
fn is_inconsistent(requested: Option<&str>, current: Option<&str>) -> bool {
    matches!((requested, current), (Some(requested), Some(current)) if requested != current)
}

/// Parses the topics out of a `consumer` protocol subscription: an i16 version, then the
/// ConsumerProtocolSubscription fields of that version. A version newer than the crate
/// supports is read as the newest it supports, because later versions only append
/// fields, as Kafka's own consumer reads it.
fn parse_subscription(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < ConsumerProtocolSubscription::VERSIONS.min {
        return None;
    }
    let version = version.min(ConsumerProtocolSubscription::VERSIONS.max);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(subscription.topics.iter().map(|topic| topic.to_string()).collect())
}

/// Admits a member that joined with an empty member id. A static member replaces the
/// member that had its instance id. A dynamic member first gets MEMBER_ID_REQUIRED when
/// the request sets `require_known_member_id`. Any other member is added and starts a
/// rebalance.
fn join_new_member<W>(
    group: &mut Group<W>,
    config: &GroupConfig,
    now_ms: i64,
    request: JoinRequest,
    new_member_id: String,
    waiter: W,
    out: &mut Vec<Reply<W>>,
) {
    if !group.supports_protocols(&request.protocol_type, &request.protocols) {
        out.push(Reply::Join(
            waiter,
            JoinResult::error(ResponseError::InconsistentGroupProtocol, ""),
        ));
        return;
    }

    if let Some(instance_id) = request.group_instance_id.clone() {
        match group.static_members.get(&instance_id).cloned() {
            Some(old_member_id) => {
                let ids = StaticRejoin {
                    instance_id,
                    old_member_id,
                    new_member_id,
                };
                rejoin_static_member(group, config, now_ms, request, ids, waiter, out);
            }
            None => add_member_then_rebalance(group, config, now_ms, request, new_member_id, waiter, out),
        }
        return;
    }

    if request.require_known_member_id {
        info!(group_id = %group.group_id, member_id = %new_member_id, "member id required");
        let deadline = now_ms + i64::from(request.session_timeout_ms);
        group.pending_members.insert(new_member_id.clone(), deadline);
        out.push(Reply::Join(
            waiter,
            JoinResult::error(ResponseError::MemberIdRequired, &new_member_id),
        ));
        return;
    }
    add_member_then_rebalance(group, config, now_ms, request, new_member_id, waiter, out);
}

/// Handles a JoinGroup from a member of the group, or from a member id handed out with
/// MEMBER_ID_REQUIRED.
fn join_existing_member<W>(
    group: &mut Group<W>,
    config: &GroupConfig,
    now_ms: i64,
    request: JoinRequest,
    waiter: W,
    out: &mut Vec<Reply<W>>,
) {
    let member_id = request.member_id.clone();
    if !group.supports_protocols(&request.protocol_type, &request.protocols) {
        out.push(Reply::Join(
            waiter,
            JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id),
        ));
        return;
    }

    if group.pending_members.contains_key(&member_id) {
        // Pending member ids are only handed to dynamic members, so a static member
        // cannot hold one.
        if request.group_instance_id.is_some() {
            out.push(Reply::Join(
                waiter,
                JoinResult::error(ResponseError::UnknownMemberId, &member_id),
            ));
            return;
        }
        group.pending_members.remove(&member_id);
        add_member_then_rebalance(group, config, now_ms, request, member_id, waiter, out);
        return;
    }

    if let Err(error) = group.validate_member(&member_id, request.group_instance_id.as_deref()) {
        out.push(Reply::Join(waiter, JoinResult::error(error, &member_id)));
        return;
    }

    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    let member = group.members.get(&member_id).expect("validated member");
    let unchanged = member.matches(&request.protocols);
    match group.state {
        GroupState::PreparingRebalance => {
            update_member(group, now_ms, &request, waiter, out);
            group.maybe_complete_join_phase(now_ms, out);
        }
        // A member that lost its JoinGroup response joins again with the same metadata:
        // it gets the current generation, and the leader the member list again.
        GroupState::CompletingRebalance if unchanged => {
            refresh_session(group, &member_id, now_ms, request.session_timeout_ms);
            out.push(Reply::Join(waiter, group.join_result(&member_id)));
        }
        // A follower that changed nothing gets the current generation without a
        // rebalance. A leader's join always rebalances, because that is how a consumer
        // leader reacts to topic metadata changes that no member's metadata shows.
        GroupState::Stable if unchanged && !is_leader => {
            refresh_session(group, &member_id, now_ms, request.session_timeout_ms);
            out.push(Reply::Join(waiter, group.join_result(&member_id)));
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member(group, now_ms, &request, waiter, out);
            let reason = format!("member {member_id} joined again");
            group.prepare_rebalance(now_ms, config, &reason, out);
        }
        // An Empty group has no members, so validation has already rejected the request.
        GroupState::Empty => {
            out.push(Reply::Join(
                waiter,
                JoinResult::error(ResponseError::UnknownMemberId, &member_id),
            ));
        }
    }
}

/// The ids involved when a static member joins with an empty member id.
struct StaticRejoin {
    /// The member's `group.instance.id`.
    instance_id: String,
    /// The member id that has the instance id until now.
    old_member_id: String,
    /// The member id that replaces it.
    new_member_id: String,
}

/// Gives a restarted static member a new member id in place of its old one. In a Stable
/// group whose selected protocol stays the same, the member gets the current generation
/// at once and its old assignment at SyncGroup, without a rebalance.
///
/// The reply names the leader as it was before the replacement. A restarted leader thus
/// gets another member id as leader, acts as a follower and computes no assignment,
/// which a Stable group could not deliver anyway. This is Kafka's behaviour for clients
/// before JoinGroup v9; Kafka gives v9+ leaders the member list with `skip_assignment`
/// set instead.
fn rejoin_static_member<W>(
    group: &mut Group<W>,
    config: &GroupConfig,
    now_ms: i64,
    request: JoinRequest,
    ids: StaticRejoin,
    waiter: W,
    out: &mut Vec<Reply<W>>,
) {
    info!(
        group_id = %group.group_id,
        group_instance_id = %ids.instance_id,
        old_member_id = %ids.old_member_id,
        new_member_id = %ids.new_member_id,
        "static member joined again"
    );
    let leader_before = group.leader.clone().unwrap_or_default();
    group.replace_static_member(&ids.instance_id, &ids.old_member_id, &ids.new_member_id, out);

    let mut request = request;
    request.member_id = ids.new_member_id.clone();
    update_member(group, now_ms, &request, waiter, out);

    match group.state {
        GroupState::Stable => {
            if group.select_protocol() != group.protocol_name {
                let reason = format!("static member {} changed the selected protocol", ids.instance_id);
                group.prepare_rebalance(now_ms, config, &reason, out);
                return;
            }
            let mut result = group.join_result(&ids.new_member_id);
            result.leader = leader_before;
            result.members = Vec::new();
            let member = group.members.get_mut(&ids.new_member_id).expect("member just replaced");
            let waiter = member.join_waiter.take().expect("waiter just stored");
            out.push(Reply::Join(waiter, result));
        }
        // The leader may already be computing an assignment that names the old member
        // id, so the group rebalances.
        GroupState::CompletingRebalance => {
            let reason = format!("static member {} joined again during the sync phase", ids.instance_id);
            group.prepare_rebalance(now_ms, config, &reason, out);
        }
        GroupState::PreparingRebalance => group.maybe_complete_join_phase(now_ms, out),
        GroupState::Empty => {
            group.prepare_rebalance(now_ms, config, "static member joined an empty group", out);
        }
    }
}

/// Adds a new member waiting in JoinGroup, then starts a rebalance or, in the join
/// phase, ends it if every member has joined.
fn add_member_then_rebalance<W>(
    group: &mut Group<W>,
    config: &GroupConfig,
    now_ms: i64,
    request: JoinRequest,
    member_id: String,
    waiter: W,
    out: &mut Vec<Reply<W>>,
) {
    info!(group_id = %group.group_id, %member_id, reason = ?request.reason, "adding member");
    let member = Member {
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id,
        client_id: request.client_id,
        client_host: request.client_host,
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        protocol_type: request.protocol_type,
        protocols: request.protocols,
        assignment: Bytes::new(),
        join_waiter: Some(waiter),
        sync_waiter: None,
        session_deadline_ms: now_ms + config.new_member_join_timeout_ms,
        is_new: true,
    };
    group.add_member(member);

    let reason = format!("member {member_id} joined");
    group.maybe_prepare_rebalance_or_complete_join(now_ms, config, &reason, out);
}

/// Stores a known member's new protocols and timeouts and makes it wait in JoinGroup
/// with `waiter`. An earlier JoinGroup of the same member that still waits gets
/// REBALANCE_IN_PROGRESS, so that its waiter is not lost.
fn update_member<W>(group: &mut Group<W>, now_ms: i64, request: &JoinRequest, waiter: W, out: &mut Vec<Reply<W>>) {
    let member = group
        .members
        .get_mut(&request.member_id)
        .expect("caller checked the member");
    member.protocols = request.protocols.clone();
    member.session_timeout_ms = request.session_timeout_ms;
    member.rebalance_timeout_ms = request.rebalance_timeout_ms;
    member.session_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
    if let Some(previous) = member.join_waiter.replace(waiter) {
        let result = JoinResult::error(ResponseError::RebalanceInProgress, &request.member_id);
        out.push(Reply::Join(previous, result));
    }
}

/// Restarts a member's session with the session timeout of its latest request.
fn refresh_session<W>(group: &mut Group<W>, member_id: &str, now_ms: i64, session_timeout_ms: i32) {
    if let Some(member) = group.members.get_mut(member_id) {
        member.session_timeout_ms = session_timeout_ms;
        member.session_deadline_ms = now_ms + i64::from(session_timeout_ms);
    }
}

/// Removes one member named in a LeaveGroup request, by member id or, with an empty
/// member id, by `group.instance.id`.
fn remove_leaving_member<W>(
    group: &mut Group<W>,
    leaving: &LeavingMember,
    out: &mut Vec<Reply<W>>,
) -> Result<(), ResponseError> {
    let instance_id = leaving.group_instance_id.as_deref();
    let member_id = if leaving.member_id.is_empty() {
        let held_by = instance_id.and_then(|instance_id| group.static_members.get(instance_id));
        held_by.cloned().ok_or(ResponseError::UnknownMemberId)?
    } else if group.pending_members.contains_key(&leaving.member_id) {
        leaving.member_id.clone()
    } else {
        group.validate_member(&leaving.member_id, instance_id)?;
        leaving.member_id.clone()
    };

    info!(group_id = %group.group_id, %member_id, reason = ?leaving.reason, "member left the group");
    group.remove_member(&member_id, out);
    Ok(())
}
