//! The state of one classic group and the transitions of Kafka's rebalance protocol:
//! Empty → PreparingRebalance (join phase) → CompletingRebalance (sync phase) → Stable.
//!
//! Every transition that completes delayed requests pushes a [`Reply`] for each waiter it
//! takes out of a member, so a waiter leaves the group state only through the output list.
//! Deadlines are absolute times in milliseconds, compared with the `now_ms` that
//! [`Group::expire`] receives.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tracing::info;

use super::member::Member;
use super::request::{JoinMember, JoinResult, Reply, SyncResult};
use super::GroupConfig;

/// The states of a classic group, named as Kafka prints them. Kafka's fifth state, Dead,
/// is never stored: a deleted group is removed, and an unknown group describes as Dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members; the group may still have committed offsets.
    Empty,
    /// The join phase: members rejoin until all have, or the rebalance timeout passes.
    PreparingRebalance,
    /// The sync phase: the leader computes the assignment and sends it in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
}

impl GroupState {
    /// Returns the state's name as Kafka prints it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Progress of `group.initial.rebalance.delay.ms`, which keeps the first join phase of an
/// Empty group open so that more members can join before the first assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitialDelay {
    /// Set when a new member joined during the current delay, which earns one more delay.
    pub new_member_added: bool,
    /// Time the join phase may still be extended by, so that the whole join phase never
    /// outlasts the group's rebalance timeout.
    pub remaining_ms: i64,
}

/// One classic group.
#[derive(Debug)]
pub(crate) struct Group<W> {
    /// Group id.
    pub group_id: String,
    /// Current state.
    pub state: GroupState,
    /// Generation of the last completed join phase; 0 before the first one.
    pub generation_id: i32,
    /// Protocol type of the members, kept after the group becomes Empty.
    pub protocol_type: Option<String>,
    /// Protocol selected by the last completed join phase.
    pub protocol_name: Option<String>,
    /// Member id of the leader, `None` when there are no members.
    pub leader: Option<String>,
    /// Members by member id. Ordered so that leader choice and every listing are
    /// deterministic.
    pub members: BTreeMap<String, Member<W>>,
    /// `group.instance.id` to the member id that currently has it.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time at which each is
    /// dropped unless the member joins with it.
    pub pending_members: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup since the last join phase ended.
    pub pending_sync: BTreeSet<String>,
    /// When the join phase ends, while the group is PreparingRebalance.
    pub join_deadline_ms: Option<i64>,
    /// Set during the first join phase after the group was Empty.
    pub initial_delay: Option<InitialDelay>,
    /// When members still in `pending_sync` are removed.
    pub sync_deadline_ms: Option<i64>,
}

impl<W> Group<W> {
    /// Creates an Empty group.
    pub fn new(group_id: &str) -> Self {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
        }
    }

    /// Returns the group's rebalance timeout: the largest of its members', or 0 when it
    /// has none.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|member| i64::from(member.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Returns the number of members waiting in JoinGroup.
    pub fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.join_waiter.is_some())
            .count()
    }

    /// Returns whether every member waits in JoinGroup and no member id handed out with
    /// MEMBER_ID_REQUIRED is still unused.
    pub fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|member| member.join_waiter.is_some())
    }

    /// Returns whether a member with `protocol_type` and `protocols` may join: an Empty
    /// group takes any non-empty type and list, and otherwise the type must match and one
    /// of the protocols must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Returns the protocols that every member supports.
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut candidates: BTreeSet<String> = first.protocols.iter().map(|(name, _)| name.clone()).collect();
        for member in members {
            candidates.retain(|name| member.metadata(name).is_some());
        }
        candidates
    }

    /// Selects the group's protocol: each member votes for its most preferred protocol
    /// among those every member supports, and the most votes win.
    ///
    /// NOTE: Kafka breaks a tie in hash-map order; here the name that sorts first wins, so
    /// the choice is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member.protocols.iter().find(|(name, _)| candidates.contains(name));
            if let Some((name, _)) = vote {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }

        let mut winner: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if winner.is_none_or(|(_, best)| count > best) {
                winner = Some((name, count));
            }
        }
        winner.map(|(name, _)| name.to_string())
    }

    /// Checks that `member_id` is a member and, for a static member, that it still has
    /// `group_instance_id`.
    pub fn validate_member(&self, member_id: &str, group_instance_id: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance_id) = group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// Returns every member with its metadata for the selected protocol, as the leader
    /// receives them.
    pub fn member_list(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Builds the successful JoinGroup result of `member_id` for the current generation;
    /// the leader gets the member list.
    pub fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.member_list()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Adds a member. The first member sets the protocol type and the leader.
    pub fn add_member(&mut self, member: Member<W>) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        if let Some(delay) = &mut self.initial_delay {
            delay.new_member_added = true;
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member or a pending member id. A waiting JoinGroup or SyncGroup of the
    /// member gets UNKNOWN_MEMBER_ID, so that a client still running joins again as a new
    /// member. A removed leader is replaced by the first remaining member.
    pub fn remove_member(&mut self, member_id: &str, out: &mut Vec<Reply<W>>) {
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };

        if let Some(instance_id) = &member.group_instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        if let Some(waiter) = member.join_waiter.take() {
            out.push(Reply::Join(
                waiter,
                JoinResult::error(ResponseError::UnknownMemberId, ""),
            ));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            out.push(Reply::Sync(waiter, SyncResult::error(ResponseError::UnknownMemberId)));
        }
    }

    /// Moves a static member from `old_member_id` to `new_member_id`, keeping everything
    /// else. A JoinGroup or SyncGroup that the old member id still waits in gets
    /// FENCED_INSTANCE_ID, because that client instance has been replaced.
    pub fn replace_static_member(
        &mut self,
        group_instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
        out: &mut Vec<Reply<W>>,
    ) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return;
        };
        if let Some(waiter) = member.join_waiter.take() {
            let result = JoinResult::error(ResponseError::FencedInstanceId, old_member_id);
            out.push(Reply::Join(waiter, result));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            out.push(Reply::Sync(waiter, SyncResult::error(ResponseError::FencedInstanceId)));
        }

        member.member_id = new_member_id.to_string();
        self.members.insert(new_member_id.to_string(), member);
        self.static_members
            .insert(group_instance_id.to_string(), new_member_id.to_string());
        if self.leader.as_deref() == Some(old_member_id) {
            self.leader = Some(new_member_id.to_string());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.to_string());
        }
    }

    /// Starts a rebalance if the state allows one (Empty, CompletingRebalance or
    /// Stable), and otherwise ends the join phase if every member has joined.
    pub fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now_ms: i64,
        config: &GroupConfig,
        reason: &str,
        out: &mut Vec<Reply<W>>,
    ) {
        if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join_phase(now_ms, out);
        } else {
            self.prepare_rebalance(now_ms, config, reason, out);
        }
    }

    /// Starts a join phase. SyncGroup requests still waiting get REBALANCE_IN_PROGRESS.
    /// From Empty, the phase lasts the initial rebalance delay; otherwise it ends when
    /// every member has rejoined or after the rebalance timeout.
    pub fn prepare_rebalance(&mut self, now_ms: i64, config: &GroupConfig, reason: &str, out: &mut Vec<Reply<W>>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_error(ResponseError::RebalanceInProgress, now_ms, out);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;

        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        info!(group_id = %self.group_id, generation_id = self.generation_id, reason, "preparing rebalance");

        if from_empty {
            let delay_ms = config.initial_rebalance_delay_ms;
            let remaining_ms = (self.rebalance_timeout_ms() - delay_ms).max(0);
            self.initial_delay = Some(InitialDelay {
                new_member_added: false,
                remaining_ms,
            });
            self.join_deadline_ms = Some(now_ms + delay_ms);
        } else if self.all_joined() {
            self.complete_join(now_ms, out);
        } else {
            self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        }
    }

    /// Ends the join phase early once every member has joined, unless the initial
    /// rebalance delay keeps it open.
    pub fn maybe_complete_join_phase(&mut self, now_ms: i64, out: &mut Vec<Reply<W>>) {
        if self.state == GroupState::PreparingRebalance && self.all_joined() && self.initial_delay.is_none() {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: removes dynamic members that did not rejoin, starts the next
    /// generation and completes every waiting JoinGroup. Static members that did not rejoin
    /// stay until their session expires, as in Kafka.
    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Reply<W>>) {
        self.join_deadline_ms = None;
        self.initial_delay = None;

        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|member| member.join_waiter.is_none() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &not_rejoined {
            info!(group_id = %self.group_id, member_id, "removing member that did not rejoin");
            self.remove_member(member_id, out);
        }

        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait one more
            // rebalance timeout, during which their sessions may expire.
            self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
            return;
        }

        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.state = GroupState::Empty;
            info!(group_id = %self.group_id, generation_id = self.generation_id, "group is empty");
            return;
        }

        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        info!(
            group_id = %self.group_id,
            generation_id = self.generation_id,
            members = self.members.len(),
            "join phase complete"
        );

        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let result = self.join_result(&member_id);
            let member = self.members.get_mut(&member_id).expect("member id taken from the map");
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            member.is_new = false;
            if let Some(waiter) = member.join_waiter.take() {
                out.push(Reply::Join(waiter, result));
            }
            self.pending_sync.insert(member_id);
        }
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
    }

    /// Keeps the leader if it rejoined, or else makes the first member that rejoined the
    /// leader. Returns false when no member rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .is_some_and(|leader| leader.join_waiter.is_some());
        if leader_joined {
            return true;
        }
        match self.members.values().find(|member| member.join_waiter.is_some()) {
            Some(member) => {
                self.leader = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Stores the leader's assignment, completes every waiting SyncGroup with it and makes
    /// the group Stable. Members the leader left out get an empty assignment.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64, out: &mut Vec<Reply<W>>) {
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
        }
        self.propagate_assignment(None, now_ms, out);
        self.state = GroupState::Stable;
        info!(group_id = %self.group_id, generation_id = self.generation_id, "group is stable");
    }

    /// Clears every assignment and completes every waiting SyncGroup with `error`.
    fn reset_and_propagate_error(&mut self, error: ResponseError, now_ms: i64, out: &mut Vec<Reply<W>>) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), now_ms, out);
    }

    /// Completes every waiting SyncGroup with the member's assignment, or with `error`,
    /// and restarts the session of each member it completes.
    fn propagate_assignment(&mut self, error: Option<ResponseError>, now_ms: i64, out: &mut Vec<Reply<W>>) {
        for member in self.members.values_mut() {
            let Some(waiter) = member.sync_waiter.take() else {
                continue;
            };
            let result = match error {
                Some(error) => SyncResult::error(error),
                None => SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                },
            };
            out.push(Reply::Sync(waiter, result));
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
    }

    /// Runs every deadline of the group that has passed at `now_ms`: unused pending
    /// member ids, member sessions, the end of the join phase and the sync deadline.
    pub fn expire(&mut self, now_ms: i64, config: &GroupConfig, out: &mut Vec<Reply<W>>) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| now_ms >= **deadline)
            .map(|(member_id, _)| member_id.clone())
            .collect();
        for member_id in &expired_pending {
            self.pending_members.remove(member_id);
        }
        if !expired_pending.is_empty() {
            self.maybe_complete_join_phase(now_ms, out);
        }

        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| member.is_expired(now_ms))
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &expired {
            // An earlier removal may have ended a join phase, which removed this member
            // or completed its JoinGroup.
            if !self
                .members
                .get(member_id)
                .is_some_and(|member| member.is_expired(now_ms))
            {
                continue;
            }
            info!(group_id = %self.group_id, member_id, "member session expired");
            self.remove_member(member_id, out);
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.prepare_rebalance(now_ms, config, "member session expired", out);
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
                GroupState::Empty => {}
            }
        }

        self.expire_join_deadline(now_ms, config, out);
        self.expire_sync_deadline(now_ms, config, out);
    }

    /// Ends the join phase if its deadline has passed, or extends the initial rebalance
    /// delay once more when a new member joined during it.
    pub fn expire_join_deadline(&mut self, now_ms: i64, config: &GroupConfig, out: &mut Vec<Reply<W>>) {
        let due = self.join_deadline_ms.is_some_and(|deadline| now_ms >= deadline);
        if !due || self.state != GroupState::PreparingRebalance {
            return;
        }

        if let Some(delay) = &mut self.initial_delay {
            if delay.new_member_added && delay.remaining_ms > 0 {
                let extension_ms = config.initial_rebalance_delay_ms.min(delay.remaining_ms);
                delay.remaining_ms -= extension_ms;
                delay.new_member_added = false;
                self.join_deadline_ms = Some(now_ms + extension_ms);
                return;
            }
        }
        self.complete_join(now_ms, out);
    }

    /// Removes the members that have not sent SyncGroup within the rebalance timeout
    /// after the join phase, and starts a new rebalance without them.
    fn expire_sync_deadline(&mut self, now_ms: i64, config: &GroupConfig, out: &mut Vec<Reply<W>>) {
        let due = self.sync_deadline_ms.is_some_and(|deadline| now_ms >= deadline);
        if !due {
            return;
        }
        self.sync_deadline_ms = None;
        if self.pending_sync.is_empty() {
            return;
        }

        let late: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        for member_id in &late {
            info!(group_id = %self.group_id, member_id, "removing member that did not send SyncGroup");
            self.remove_member(member_id, out);
        }
        self.prepare_rebalance(now_ms, config, "members did not send SyncGroup in time", out);
    }
}
