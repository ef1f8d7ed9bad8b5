//! One member of a classic consumer group: what it joined with, its assignment, its
//! session deadline and its delayed JoinGroup and SyncGroup requests.

use bytes::Bytes;

/// A member of a classic group. `W` is the server's handle for a delayed response.
#[derive(Debug)]
pub(crate) struct Member<W> {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Client id, shown by DescribeGroups.
    pub client_id: String,
    /// Client address, shown by DescribeGroups.
    pub client_host: String,
    /// Time without a heartbeat after which the member is removed, in milliseconds.
    pub session_timeout_ms: i32,
    /// Time the member may take to rejoin once a rebalance starts, in milliseconds.
    pub rebalance_timeout_ms: i32,
    /// Protocol type the member joined with.
    pub protocol_type: String,
    /// Supported protocols with their metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment from the leader's last SyncGroup; empty until then.
    pub assignment: Bytes,
    /// The delayed JoinGroup request, while the member waits for the join phase to end.
    pub join_waiter: Option<W>,
    /// The delayed SyncGroup request, while the member waits for the leader's
    /// assignment.
    pub sync_waiter: Option<W>,
    /// Time at which the member is removed unless a heartbeat, join or sync arrives.
    pub session_deadline_ms: i64,
    /// Set from the member's first join until the join phase that admitted it ends. A new
    /// member waiting in JoinGroup can still expire, at the new-member join timeout.
    pub is_new: bool,
}

impl<W> Member<W> {
    /// Returns the member's metadata for `protocol`, if it supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    /// Returns whether `protocols` equals what the member joined with, names, order and
    /// metadata alike.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Returns whether the member's session has expired at `now_ms`. A member that
    /// waits in a JoinGroup or SyncGroup cannot heartbeat, so it does not expire unless it
    /// is new.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        if now_ms < self.session_deadline_ms {
            return false;
        }
        let waiting = self.join_waiter.is_some() || self.sync_waiter.is_some();
        self.is_new || !waiting
    }
}
