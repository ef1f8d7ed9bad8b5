//! Inputs and outputs of the group coordinator: one request type per Kafka API, the
//! results that complete delayed JoinGroup and SyncGroup requests, and the read-only
//! views that DescribeGroups and ListGroups return.
//!
//! These mirror the Kafka wire messages field by field but stay independent of any
//! message version, so the server converts them at its edge.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Group to join.
    pub group_id: String,
    /// The member id from an earlier join, or empty on a member's first join.
    pub member_id: String,
    /// `group.instance.id` of a static member; `None` for a dynamic member.
    pub group_instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address, shown by DescribeGroups.
    pub client_host: String,
    /// Time without a heartbeat after which the member is removed, in milliseconds.
    pub session_timeout_ms: i32,
    /// Time the member may take to rejoin once a rebalance starts, in milliseconds.
    pub rebalance_timeout_ms: i32,
    /// Protocol type, `consumer` for Kafka consumers.
    pub protocol_type: String,
    /// Supported protocols (assignors) with their metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Set for JoinGroup v4+ from dynamic members: a first join with an empty member id
    /// gets MEMBER_ID_REQUIRED with its new member id and must join again with it.
    pub require_known_member_id: bool,
    /// The client's reason for joining (JoinGroup v8+), for logs only.
    pub reason: Option<String>,
}

/// A member as listed in the group leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the protocol the group selected.
    pub metadata: Bytes,
}

/// The outcome of a JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// The error, or `None` on success.
    pub error: Option<ResponseError>,
    /// Generation the member joined, or -1 on error.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The protocol the group selected.
    pub protocol_name: Option<String>,
    /// Member id of the group leader, or empty on error.
    pub leader: String,
    /// The member's id; on MEMBER_ID_REQUIRED, the id it must join again with.
    pub member_id: String,
    /// Every member with its metadata, for the leader only; empty for followers.
    pub members: Vec<JoinMember>,
    /// JoinGroup v9's flag by which a leader skips the assignment. This coordinator
    /// always sends false.
    pub skip_assignment: bool,
}

impl JoinResult {
    /// Builds an error result that carries only the error and a member id.
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// Group id.
    pub group_id: String,
    /// Generation from the member's JoinGroup response.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Protocol type (SyncGroup v5+); checked against the group's when present.
    pub protocol_type: Option<String>,
    /// Protocol name (SyncGroup v5+); checked against the group's when present.
    pub protocol_name: Option<String>,
    /// Member id to assignment; only the leader sends assignments.
    pub assignments: Vec<(String, Bytes)>,
}

/// The outcome of a SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// The error, or `None` on success.
    pub error: Option<ResponseError>,
    /// The group's protocol type, on success.
    pub protocol_type: Option<String>,
    /// The group's selected protocol, on success.
    pub protocol_name: Option<String>,
    /// The member's assignment from the leader; empty on error.
    pub assignment: Bytes,
}

impl SyncResult {
    /// Builds an error result.
    pub fn error(error: ResponseError) -> Self {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// Group id.
    pub group_id: String,
    /// Generation the member believes current.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

/// One member of a LeaveGroup request. LeaveGroup v3+ may name a static member by its
/// instance id alone, with an empty member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// Member id, or empty to name the member by `group_instance_id`.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's reason for leaving (LeaveGroup v5+), for logs only.
    pub reason: Option<String>,
}

/// A delayed response that the server must send: the waiter handed in with the request,
/// and the result to send through it.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<W> {
    /// Completes a JoinGroup request.
    Join(W, JoinResult),
    /// Completes a SyncGroup request.
    Sync(W, SyncResult),
}

/// One member in a DescribeGroups response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Metadata for the selected protocol; empty unless the group is Stable.
    pub metadata: Bytes,
    /// Current assignment; empty unless the group is Stable.
    pub assignment: Bytes,
}

/// A group as DescribeGroups returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State as Kafka prints it: Empty, PreparingRebalance, CompletingRebalance, Stable,
    /// or Dead for an unknown group.
    pub state: String,
    /// Protocol type, or empty when unknown.
    pub protocol_type: String,
    /// The selected protocol when the group is Stable, otherwise empty.
    pub protocol_name: String,
    /// Members in member id order.
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type, or empty when unknown.
    pub protocol_type: String,
    /// State as Kafka prints it.
    pub state: String,
}
