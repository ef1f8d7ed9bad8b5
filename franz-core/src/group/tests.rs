//! Unit tests of the group coordinator, with `u32` waiters and exact replies.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use super::*;

type Coordinator = GroupCoordinator<u32>;

const SEED: u64 = 0xab;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn coordinator() -> Coordinator {
    GroupCoordinator::new(GroupConfig::default(), SEED)
}

fn coordinator_without_delay() -> Coordinator {
    GroupCoordinator::new(
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
        SEED,
    )
}

fn range() -> Vec<(String, Bytes)> {
    vec![("range".to_string(), Bytes::from_static(b"range-meta"))]
}

fn join_request(member_id: &str, client_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: client_id.to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: range(),
        require_known_member_id: false,
        reason: None,
    }
}

fn static_join_request(member_id: &str, client_id: &str, instance_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance_id.to_string()),
        ..join_request(member_id, client_id)
    }
}

fn sync_request(member_id: &str, generation_id: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: "g".to_string(),
        generation_id,
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments,
    }
}

fn heartbeat_request(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".to_string(),
        generation_id,
        member_id: member_id.to_string(),
        group_instance_id: None,
    }
}

fn leaving(member_id: &str) -> LeavingMember {
    LeavingMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        reason: None,
    }
}

fn joined(generation_id: i32, leader: &str, member_id: &str, members: Vec<JoinMember>) -> JoinResult {
    JoinResult {
        error: None,
        generation_id,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        leader: leader.to_string(),
        member_id: member_id.to_string(),
        members,
        skip_assignment: false,
    }
}

fn listed(member_id: &str) -> JoinMember {
    JoinMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        metadata: Bytes::from_static(b"range-meta"),
    }
}

fn synced(assignment: &'static [u8]) -> SyncResult {
    SyncResult {
        error: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignment: Bytes::from_static(assignment),
    }
}

fn member_ids(coordinator: &Coordinator) -> Vec<String> {
    coordinator
        .describe("g")
        .members
        .into_iter()
        .map(|member| member.member_id)
        .collect()
}

const M1: &str = "c1-ab-0";
const M2: &str = "c2-ab-1";
const M3: &str = "c3-ab-2";

/// Joins c1 and c2 at time 0; the join phase ends at 6000, after the initial delay and
/// one extension for c2.
fn join_two(coordinator: &mut Coordinator) -> Vec<Reply<u32>> {
    assert!(coordinator.join(0, join_request("", "c1"), 1).is_empty());
    assert!(coordinator.join(0, join_request("", "c2"), 2).is_empty());
    assert!(coordinator.tick(3_000).is_empty());
    coordinator.tick(6_000)
}

/// Brings c1 (leader) and c2 to a Stable generation 1 with assignments "a1" and "a2",
/// both synced at time 6000.
fn stable_two() -> Coordinator {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);
    coordinator.sync(6_000, sync_request(M2, 1, vec![]), 3);
    let assignments = vec![
        (M1.to_string(), Bytes::from_static(b"a1")),
        (M2.to_string(), Bytes::from_static(b"a2")),
    ];
    coordinator.sync(6_000, sync_request(M1, 1, assignments), 4);
    coordinator
}

#[test]
fn join_two_members_leader_gets_list() {
    let mut coordinator = coordinator();

    let replies = join_two(&mut coordinator);

    assert_eq!(
        replies,
        vec![
            Reply::Join(1, joined(1, M1, M1, vec![listed(M1), listed(M2)])),
            Reply::Join(2, joined(1, M1, M2, vec![])),
        ]
    );
    assert_eq!(coordinator.describe("g").state, "CompletingRebalance");
}

#[test]
fn sync_follower_waits_for_leader() {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);

    let follower = coordinator.sync(6_000, sync_request(M2, 1, vec![]), 3);
    let assignments = vec![
        (M1.to_string(), Bytes::from_static(b"a1")),
        (M2.to_string(), Bytes::from_static(b"a2")),
    ];
    let leader = coordinator.sync(6_100, sync_request(M1, 1, assignments), 4);

    assert!(follower.is_empty());
    assert_eq!(
        leader,
        vec![Reply::Sync(4, synced(b"a1")), Reply::Sync(3, synced(b"a2"))]
    );
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn sync_stable_returns_assignment() {
    let mut coordinator = stable_two();

    let replies = coordinator.sync(7_000, sync_request(M2, 1, vec![]), 5);

    assert_eq!(replies, vec![Reply::Sync(5, synced(b"a2"))]);
}

#[test]
fn sync_missing_assignment_is_empty() {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);
    coordinator.sync(6_000, sync_request(M2, 1, vec![]), 3);

    let replies = coordinator.sync(
        6_000,
        sync_request(M1, 1, vec![(M1.to_string(), Bytes::from_static(b"a1"))]),
        4,
    );

    assert_eq!(
        replies,
        vec![Reply::Sync(4, synced(b"a1")), Reply::Sync(3, synced(b""))]
    );
}

#[test]
fn sync_errors() {
    let mut coordinator = stable_two();
    let mut wrong_protocol = sync_request(M1, 1, vec![]);
    wrong_protocol.protocol_name = Some("roundrobin".to_string());
    let cases = [
        (sync_request(M1, 2, vec![]), ResponseError::IllegalGeneration),
        (sync_request("nobody", 1, vec![]), ResponseError::UnknownMemberId),
        (
            SyncRequest {
                group_id: "other".to_string(),
                ..sync_request(M1, 1, vec![])
            },
            ResponseError::UnknownMemberId,
        ),
        (
            SyncRequest {
                group_id: String::new(),
                ..sync_request(M1, 1, vec![])
            },
            ResponseError::InvalidGroupId,
        ),
        (wrong_protocol, ResponseError::InconsistentGroupProtocol),
    ];

    for (waiter, (request, error)) in (10..).zip(cases) {
        let replies = coordinator.sync(7_000, request.clone(), waiter);
        assert_eq!(
            replies,
            vec![Reply::Sync(waiter, SyncResult::error(error))],
            "{request:?}"
        );
    }
}

#[test]
fn third_member_starts_rebalance() {
    let mut coordinator = stable_two();

    let joining = coordinator.join(7_000, join_request("", "c3"), 5);

    assert!(joining.is_empty());
    assert_eq!(coordinator.describe("g").state, "PreparingRebalance");
    assert_eq!(
        coordinator.heartbeat(7_100, heartbeat_request(M1, 1)),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        coordinator.heartbeat(7_100, heartbeat_request(M2, 1)),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn third_member_joins_next_generation() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request("", "c3"), 5);
    assert!(coordinator.join(7_100, join_request(M1, "c1"), 6).is_empty());

    let replies = coordinator.join(7_200, join_request(M2, "c2"), 7);

    assert_eq!(
        replies,
        vec![
            Reply::Join(6, joined(2, M1, M1, vec![listed(M1), listed(M2), listed(M3)])),
            Reply::Join(7, joined(2, M1, M2, vec![])),
            Reply::Join(5, joined(2, M1, M3, vec![])),
        ]
    );
}

#[test]
fn rebalance_cancels_waiting_sync() {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);
    assert!(coordinator.sync(6_000, sync_request(M2, 1, vec![]), 3).is_empty());

    let replies = coordinator.join(6_100, join_request("", "c3"), 4);

    assert_eq!(
        replies,
        vec![Reply::Sync(3, SyncResult::error(ResponseError::RebalanceInProgress))]
    );
}

#[test]
fn sync_during_join_phase_rejected() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request("", "c3"), 5);

    let replies = coordinator.sync(7_100, sync_request(M2, 1, vec![]), 6);

    assert_eq!(
        replies,
        vec![Reply::Sync(6, SyncResult::error(ResponseError::RebalanceInProgress))]
    );
}

#[test]
fn follower_rejoin_stable_no_rebalance() {
    let mut coordinator = stable_two();

    let replies = coordinator.join(7_000, join_request(M2, "c2"), 5);

    assert_eq!(replies, vec![Reply::Join(5, joined(1, M1, M2, vec![]))]);
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn leader_rejoin_stable_rebalances() {
    let mut coordinator = stable_two();

    let replies = coordinator.join(7_000, join_request(M1, "c1"), 5);

    assert!(replies.is_empty());
    assert_eq!(coordinator.describe("g").state, "PreparingRebalance");
}

#[test]
fn duplicate_join_replies_old_waiter() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request(M1, "c1"), 5);

    let replies = coordinator.join(7_100, join_request(M1, "c1"), 6);

    let expected = JoinResult::error(ResponseError::RebalanceInProgress, M1);
    assert_eq!(replies, vec![Reply::Join(5, expected)]);
}

#[test]
fn session_expiry_removes_member() {
    let mut coordinator = stable_two();
    assert_eq!(coordinator.heartbeat(12_000, heartbeat_request(M1, 1)), Ok(()));

    let early = coordinator.tick(15_999);
    let due = coordinator.tick(16_000);

    assert!(early.is_empty());
    assert!(due.is_empty());
    assert_eq!(member_ids(&coordinator), vec![M1.to_string()]);
    assert_eq!(coordinator.describe("g").state, "PreparingRebalance");
}

#[test]
fn session_expiry_then_rejoin_completes() {
    let mut coordinator = stable_two();
    coordinator.heartbeat(12_000, heartbeat_request(M1, 1)).unwrap();
    coordinator.tick(16_000);

    let replies = coordinator.join(16_100, join_request(M1, "c1"), 5);

    assert_eq!(replies, vec![Reply::Join(5, joined(2, M1, M1, vec![listed(M1)]))]);
}

#[test]
fn waiting_member_not_expired() {
    let mut coordinator = stable_two();
    coordinator.heartbeat(12_000, heartbeat_request(M2, 1)).unwrap();
    coordinator.join(12_000, join_request(M1, "c1"), 5);
    coordinator.heartbeat(20_000, heartbeat_request(M2, 1)).unwrap_err();

    // M1's session deadline (22000) has passed while it waits in JoinGroup.
    let replies = coordinator.tick(23_000);

    assert!(replies.is_empty());
    assert_eq!(member_ids(&coordinator), vec![M1.to_string(), M2.to_string()]);
}

#[test]
fn rebalance_timeout_drops_member() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request("", "c3"), 5);
    coordinator.join(7_000, join_request(M1, "c1"), 6);
    // c2 keeps its session alive but never rejoins.
    for now_ms in [15_000, 24_000, 33_000] {
        let heartbeat = coordinator.heartbeat(now_ms, heartbeat_request(M2, 1));
        assert_eq!(heartbeat, Err(ResponseError::RebalanceInProgress), "at {now_ms}");
    }
    assert!(coordinator.tick(36_999).is_empty());

    let replies = coordinator.tick(37_000);

    assert_eq!(
        replies,
        vec![
            Reply::Join(6, joined(2, M1, M1, vec![listed(M1), listed(M3)])),
            Reply::Join(5, joined(2, M1, M3, vec![])),
        ]
    );
    assert_eq!(
        coordinator.heartbeat(37_100, heartbeat_request(M2, 1)),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn rebalance_timeout_replaces_leader() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request("", "c3"), 6);
    coordinator.join(7_100, join_request(M2, "c2"), 7);
    // The leader keeps its session alive but never rejoins.
    for now_ms in [15_000, 24_000, 33_000] {
        coordinator.heartbeat(now_ms, heartbeat_request(M1, 1)).unwrap_err();
    }

    let replies = coordinator.tick(37_000);

    assert_eq!(
        replies,
        vec![
            Reply::Join(7, joined(2, M2, M2, vec![listed(M2), listed(M3)])),
            Reply::Join(6, joined(2, M2, M3, vec![])),
        ]
    );
}

#[test]
fn member_id_required_flow() {
    let mut coordinator = coordinator_without_delay();
    let first = JoinRequest {
        require_known_member_id: true,
        ..join_request("", "c1")
    };

    let required = coordinator.join(0, first, 1);
    let rejoined = coordinator.join(
        100,
        JoinRequest {
            require_known_member_id: true,
            ..join_request(M1, "c1")
        },
        2,
    );

    assert_eq!(
        required,
        vec![Reply::Join(1, JoinResult::error(ResponseError::MemberIdRequired, M1))]
    );
    assert_eq!(rejoined, vec![Reply::Join(2, joined(1, M1, M1, vec![listed(M1)]))]);
}

#[test]
fn pending_member_id_expires() {
    let mut coordinator = coordinator_without_delay();
    let first = JoinRequest {
        require_known_member_id: true,
        ..join_request("", "c1")
    };
    coordinator.join(0, first, 1);

    coordinator.tick(i64::from(SESSION_MS));
    let late = coordinator.join(10_100, join_request(M1, "c1"), 2);

    assert_eq!(
        late,
        vec![Reply::Join(2, JoinResult::error(ResponseError::UnknownMemberId, M1))]
    );
}

#[test]
fn pending_member_blocks_join_phase() {
    let mut coordinator = stable_two();
    let required = coordinator.join(
        7_000,
        JoinRequest {
            require_known_member_id: true,
            ..join_request("", "c3")
        },
        5,
    );
    assert_eq!(
        required,
        vec![Reply::Join(5, JoinResult::error(ResponseError::MemberIdRequired, M3))]
    );
    coordinator.join(7_000, join_request(M1, "c1"), 6);

    let without_pending = coordinator.join(7_000, join_request(M2, "c2"), 7);
    let with_pending = coordinator.join(7_100, join_request(M3, "c3"), 8);

    assert!(without_pending.is_empty());
    assert_eq!(with_pending.len(), 3);
}

#[test]
fn join_unknown_member_rejected() {
    let mut coordinator = stable_two();

    let replies = coordinator.join(7_000, join_request("ghost", "c9"), 5);

    assert_eq!(
        replies,
        vec![Reply::Join(
            5,
            JoinResult::error(ResponseError::UnknownMemberId, "ghost")
        )]
    );
}

#[test]
fn join_unknown_group_with_member_id() {
    let mut coordinator = coordinator();

    let replies = coordinator.join(0, join_request("ghost", "c9"), 1);

    assert_eq!(
        replies,
        vec![Reply::Join(
            1,
            JoinResult::error(ResponseError::UnknownMemberId, "ghost")
        )]
    );
    assert_eq!(coordinator.describe("g").state, "Dead");
}

#[test]
fn join_empty_group_id_invalid() {
    let mut coordinator = coordinator();

    let replies = coordinator.join(
        0,
        JoinRequest {
            group_id: String::new(),
            ..join_request("", "c1")
        },
        1,
    );

    assert_eq!(
        replies,
        vec![Reply::Join(1, JoinResult::error(ResponseError::InvalidGroupId, ""))]
    );
}

/// Brings static members i1 (c1, leader) and i2 (c2) to Stable generation 1 with
/// assignments "a1" and "a2".
fn stable_static_two() -> Coordinator {
    let mut coordinator = coordinator();
    coordinator.join(0, static_join_request("", "c1", "i1"), 1);
    coordinator.join(0, static_join_request("", "c2", "i2"), 2);
    coordinator.tick(3_000);
    coordinator.tick(6_000);
    let s1 = "i1-ab-0";
    let s2 = "i2-ab-1";
    coordinator.sync(
        6_000,
        SyncRequest {
            group_instance_id: Some("i2".into()),
            ..sync_request(s2, 1, vec![])
        },
        3,
    );
    let assignments = vec![
        (s1.to_string(), Bytes::from_static(b"a1")),
        (s2.to_string(), Bytes::from_static(b"a2")),
    ];
    let leader_sync = SyncRequest {
        group_instance_id: Some("i1".into()),
        ..sync_request(s1, 1, assignments)
    };
    coordinator.sync(6_000, leader_sync, 4);
    coordinator
}

#[test]
fn static_follower_rejoin_keeps_generation() {
    let mut coordinator = stable_static_two();

    let replies = coordinator.join(7_000, static_join_request("", "c2", "i2"), 5);

    assert_eq!(replies, vec![Reply::Join(5, joined(1, "i1-ab-0", "i2-ab-2", vec![]))]);
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn static_follower_rejoin_gets_old_assignment() {
    let mut coordinator = stable_static_two();
    coordinator.join(7_000, static_join_request("", "c2", "i2"), 5);

    let sync = SyncRequest {
        group_instance_id: Some("i2".into()),
        ..sync_request("i2-ab-2", 1, vec![])
    };
    let replies = coordinator.sync(7_100, sync, 6);

    assert_eq!(replies, vec![Reply::Sync(6, synced(b"a2"))]);
}

#[test]
fn static_leader_rejoin_acts_as_follower() {
    let mut coordinator = stable_static_two();

    let replies = coordinator.join(7_000, static_join_request("", "c1", "i1"), 5);

    // The reply names the old leader id, so the restarted leader computes no assignment.
    assert_eq!(replies, vec![Reply::Join(5, joined(1, "i1-ab-0", "i1-ab-2", vec![]))]);
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn static_rejoin_protocol_change_rebalances() {
    let mut coordinator = stable_static_two();
    let both = vec![
        ("roundrobin".to_string(), Bytes::new()),
        ("range".to_string(), Bytes::new()),
    ];
    let mut leader = static_join_request("", "c1", "i1");
    leader.protocols = both.clone();
    let mut follower = static_join_request("", "c2", "i2");
    follower.protocols = both;

    // i2 supports only range, so range stays selected after i1's change.
    let first = coordinator.join(7_000, leader, 5);
    // Now both prefer roundrobin, which would be selected.
    let second = coordinator.join(7_000, follower, 6);

    assert_eq!(first.len(), 1);
    assert!(second.is_empty());
    assert_eq!(coordinator.describe("g").state, "PreparingRebalance");
}

#[test]
fn fenced_instance_id() {
    let mut coordinator = stable_static_two();
    coordinator.join(7_000, static_join_request("", "c2", "i2"), 5);
    let old = HeartbeatRequest {
        group_instance_id: Some("i2".into()),
        ..heartbeat_request("i2-ab-1", 1)
    };
    let unknown = HeartbeatRequest {
        group_instance_id: Some("i9".into()),
        ..heartbeat_request("i2-ab-2", 1)
    };

    assert_eq!(coordinator.heartbeat(7_100, old), Err(ResponseError::FencedInstanceId));
    assert_eq!(
        coordinator.heartbeat(7_100, unknown),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn static_rejoin_fences_waiting_join() {
    let mut coordinator = stable_static_two();
    coordinator.join(7_000, static_join_request("i1-ab-0", "c1", "i1"), 5);

    let replies = coordinator.join(7_100, static_join_request("", "c1", "i1"), 6);

    let fenced = JoinResult::error(ResponseError::FencedInstanceId, "i1-ab-0");
    assert_eq!(replies, vec![Reply::Join(5, fenced)]);
}

#[test]
fn static_member_kept_after_rebalance_timeout() {
    let mut coordinator = stable_static_two();
    coordinator.join(7_000, static_join_request("i1-ab-0", "c1", "i1"), 5);
    let heartbeat = HeartbeatRequest {
        group_instance_id: Some("i2".into()),
        ..heartbeat_request("i2-ab-1", 1)
    };
    for now_ms in [15_000, 24_000, 33_000] {
        coordinator.heartbeat(now_ms, heartbeat.clone()).unwrap_err();
    }

    let replies = coordinator.tick(37_000);

    let members = vec![
        JoinMember {
            group_instance_id: Some("i1".into()),
            ..listed("i1-ab-0")
        },
        JoinMember {
            group_instance_id: Some("i2".into()),
            ..listed("i2-ab-1")
        },
    ];
    assert_eq!(replies, vec![Reply::Join(5, joined(2, "i1-ab-0", "i1-ab-0", members))]);
}

#[test]
fn leave_starts_rebalance() {
    let mut coordinator = stable_two();

    let (results, replies) = coordinator.leave(7_000, "g", vec![leaving(M2)]);

    assert_eq!(results, Ok(vec![Ok(())]));
    assert!(replies.is_empty());
    assert_eq!(member_ids(&coordinator), vec![M1.to_string()]);
    assert_eq!(coordinator.describe("g").state, "PreparingRebalance");
}

#[test]
fn leave_last_member_empties_group() {
    let mut coordinator = stable_two();

    let (results, _) = coordinator.leave(7_000, "g", vec![leaving(M1), leaving(M2)]);

    assert_eq!(results, Ok(vec![Ok(()), Ok(())]));
    assert_eq!(coordinator.describe("g").state, "Empty");
}

#[test]
fn leave_replies_waiting_join() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request(M1, "c1"), 5);

    let (_, replies) = coordinator.leave(7_100, "g", vec![leaving(M1)]);

    assert_eq!(
        replies,
        vec![Reply::Join(5, JoinResult::error(ResponseError::UnknownMemberId, ""))]
    );
}

#[test]
fn leave_unknown_member() {
    let mut coordinator = stable_two();

    let (known_group, _) = coordinator.leave(7_000, "g", vec![leaving("ghost")]);
    let (unknown_group, _) = coordinator.leave(7_000, "other", vec![leaving(M1)]);
    let (no_group_id, _) = coordinator.leave(7_000, "", vec![leaving(M1)]);

    assert_eq!(known_group, Ok(vec![Err(ResponseError::UnknownMemberId)]));
    assert_eq!(unknown_group, Ok(vec![Err(ResponseError::UnknownMemberId)]));
    assert_eq!(no_group_id, Err(ResponseError::InvalidGroupId));
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn leave_by_instance_id() {
    let mut coordinator = stable_static_two();
    let by_instance = LeavingMember {
        member_id: String::new(),
        group_instance_id: Some("i2".into()),
        reason: None,
    };

    let (results, _) = coordinator.leave(7_000, "g", vec![by_instance]);

    assert_eq!(results, Ok(vec![Ok(())]));
    assert_eq!(member_ids(&coordinator), vec!["i1-ab-0".to_string()]);
}

#[test]
fn inconsistent_protocol_rejected() {
    let mut coordinator = stable_two();
    let other_assignor = JoinRequest {
        protocols: vec![("roundrobin".to_string(), Bytes::new())],
        ..join_request("", "c3")
    };
    let other_type = JoinRequest {
        protocol_type: "connect".to_string(),
        ..join_request("", "c4")
    };

    let assignor_replies = coordinator.join(7_000, other_assignor, 5);
    let type_replies = coordinator.join(7_000, other_type, 6);

    let error = JoinResult::error(ResponseError::InconsistentGroupProtocol, "");
    assert_eq!(assignor_replies, vec![Reply::Join(5, error.clone())]);
    assert_eq!(type_replies, vec![Reply::Join(6, error)]);
    assert_eq!(coordinator.describe("g").state, "Stable");
}

#[test]
fn empty_protocols_rejected() {
    let mut coordinator = coordinator();

    let replies = coordinator.join(
        0,
        JoinRequest {
            protocols: vec![],
            ..join_request("", "c1")
        },
        1,
    );

    let error = JoinResult::error(ResponseError::InconsistentGroupProtocol, "");
    assert_eq!(replies, vec![Reply::Join(1, error)]);
}

#[test]
fn protocol_selected_by_votes() {
    let mut coordinator = coordinator_without_delay();
    let both = |first: &str, second: &str| {
        vec![
            (first.to_string(), Bytes::from_static(b"m")),
            (second.to_string(), Bytes::from_static(b"m")),
        ]
    };
    let mut c1 = join_request("", "c1");
    c1.protocols = both("sticky", "range");
    coordinator.join(0, c1, 1);
    let mut c1_again = join_request(M1, "c1");
    c1_again.protocols = both("sticky", "range");
    let mut c2 = join_request("", "c2");
    c2.protocols = both("range", "sticky");
    let mut c3 = join_request("", "c3");
    c3.protocols = both("range", "sticky");
    coordinator.join(1, c2, 2);
    coordinator.join(1, c3, 3);

    let replies = coordinator.join(2, c1_again, 4);

    let Some(Reply::Join(_, result)) = replies.first() else {
        panic!("no join reply: {replies:?}")
    };
    assert_eq!(result.protocol_name.as_deref(), Some("range"));
}

#[test]
fn invalid_session_timeout() {
    let mut coordinator = coordinator();

    let low = coordinator.join(
        0,
        JoinRequest {
            session_timeout_ms: 5_999,
            ..join_request("", "c1")
        },
        1,
    );
    let high = coordinator.join(
        0,
        JoinRequest {
            session_timeout_ms: 1_800_001,
            ..join_request("", "c1")
        },
        2,
    );

    assert_eq!(
        low,
        vec![Reply::Join(
            1,
            JoinResult::error(ResponseError::InvalidSessionTimeout, "")
        )]
    );
    assert_eq!(
        high,
        vec![Reply::Join(
            2,
            JoinResult::error(ResponseError::InvalidSessionTimeout, "")
        )]
    );
}

#[test]
fn initial_delay_single_member() {
    let mut coordinator = coordinator();
    coordinator.join(0, join_request("", "c1"), 1);

    let early = coordinator.tick(2_999);
    let due = coordinator.tick(3_000);

    assert!(early.is_empty());
    assert_eq!(due, vec![Reply::Join(1, joined(1, M1, M1, vec![listed(M1)]))]);
}

#[test]
fn initial_delay_extended_by_join() {
    let mut coordinator = coordinator();
    coordinator.join(0, join_request("", "c1"), 1);
    coordinator.join(1_000, join_request("", "c2"), 2);

    let first_deadline = coordinator.tick(3_000);
    let before_extension_ends = coordinator.tick(5_999);
    let extension_ends = coordinator.tick(6_000);

    assert!(first_deadline.is_empty());
    assert!(before_extension_ends.is_empty());
    assert_eq!(extension_ends.len(), 2);
}

#[test]
fn initial_delay_capped_by_rebalance_timeout() {
    let mut coordinator = coordinator();
    let short = |member_id: &str, client_id: &str| JoinRequest {
        rebalance_timeout_ms: 4_000,
        ..join_request(member_id, client_id)
    };
    coordinator.join(0, short("", "c1"), 1);
    coordinator.join(100, short("", "c2"), 2);
    assert!(coordinator.tick(3_000).is_empty());
    coordinator.join(3_500, short("", "c3"), 3);

    let replies = coordinator.tick(4_000);

    assert_eq!(replies.len(), 3);
}

#[test]
fn initial_delay_not_ended_by_all_joined() {
    let mut coordinator = coordinator();
    coordinator.join(0, join_request("", "c1"), 1);

    let rejoin = coordinator.join(100, join_request(M1, "c1"), 2);

    let replaced = JoinResult::error(ResponseError::RebalanceInProgress, M1);
    assert_eq!(rejoin, vec![Reply::Join(1, replaced)]);
}

#[test]
fn pending_sync_expiry_removes_member() {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);
    coordinator.sync(6_000, sync_request(M2, 1, vec![]), 3);

    // The leader never sends SyncGroup, so it is removed and the follower rejoins.
    let replies = coordinator.tick(36_000);

    assert_eq!(
        replies,
        vec![Reply::Sync(3, SyncResult::error(ResponseError::RebalanceInProgress))]
    );
    assert_eq!(member_ids(&coordinator), vec![M2.to_string()]);
}

#[test]
fn max_group_size_rejects_join() {
    let config = GroupConfig {
        max_group_size: 2,
        ..GroupConfig::default()
    };
    let mut coordinator = GroupCoordinator::new(config, SEED);
    join_two(&mut coordinator);

    let replies = coordinator.join(6_100, join_request("", "c3"), 5);

    assert_eq!(
        replies,
        vec![Reply::Join(
            5,
            JoinResult::error(ResponseError::GroupMaxSizeReached, "")
        )]
    );
    assert_eq!(member_ids(&coordinator), vec![M1.to_string(), M2.to_string()]);
}

#[test]
fn heartbeat_errors() {
    let mut coordinator = stable_two();

    assert_eq!(
        coordinator.heartbeat(7_000, heartbeat_request(M1, 0)),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        coordinator.heartbeat(7_000, heartbeat_request("ghost", 1)),
        Err(ResponseError::UnknownMemberId)
    );
    let unknown_group = HeartbeatRequest {
        group_id: "other".to_string(),
        ..heartbeat_request(M1, 1)
    };
    assert_eq!(
        coordinator.heartbeat(7_000, unknown_group),
        Err(ResponseError::UnknownMemberId)
    );
    let no_group_id = HeartbeatRequest {
        group_id: String::new(),
        ..heartbeat_request(M1, 1)
    };
    assert_eq!(
        coordinator.heartbeat(7_000, no_group_id),
        Err(ResponseError::InvalidGroupId)
    );
}

#[test]
fn validate_commit_cases() {
    let mut coordinator = stable_two();
    coordinator.ensure_known("empty", "consumer");

    assert_eq!(coordinator.validate_commit("unknown", -1, "", None), Ok(()));
    assert_eq!(
        coordinator.validate_commit("unknown", 3, "m", None),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(coordinator.validate_commit("empty", -1, "", None), Ok(()));
    assert_eq!(coordinator.validate_commit("g", 1, M1, None), Ok(()));
    assert_eq!(
        coordinator.validate_commit("g", -1, "", None),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.validate_commit("g", 0, M1, None),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        coordinator.validate_commit("g", 1, "ghost", None),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn validate_commit_during_sync_phase() {
    let mut coordinator = coordinator();
    join_two(&mut coordinator);

    assert_eq!(
        coordinator.validate_commit("g", 1, M2, None),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn validate_commit_static_member() {
    let coordinator = stable_static_two();

    assert_eq!(coordinator.validate_commit("g", 1, "i1-ab-0", Some("i1")), Ok(()));
    assert_eq!(
        coordinator.validate_commit("g", 1, "i2-ab-1", Some("i1")),
        Err(ResponseError::FencedInstanceId)
    );
}

#[test]
fn delete_group_cases() {
    let mut coordinator = stable_two();
    coordinator.ensure_known("empty", "consumer");

    assert_eq!(coordinator.delete("g"), Err(ResponseError::NonEmptyGroup));
    assert_eq!(coordinator.delete("unknown"), Err(ResponseError::GroupIdNotFound));
    assert_eq!(coordinator.delete("empty"), Ok(()));
    assert_eq!(coordinator.describe("empty").state, "Dead");
}

#[test]
fn describe_stable_group() {
    let coordinator = stable_two();

    let description = coordinator.describe("g");

    let expected_first = MemberDescription {
        member_id: M1.to_string(),
        group_instance_id: None,
        client_id: "c1".to_string(),
        client_host: "/127.0.0.1".to_string(),
        metadata: Bytes::from_static(b"range-meta"),
        assignment: Bytes::from_static(b"a1"),
    };
    assert_eq!(description.state, "Stable");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.protocol_name, "range");
    assert_eq!(description.members.len(), 2);
    assert_eq!(description.members[0], expected_first);
}

#[test]
fn describe_rebalancing_hides_metadata() {
    let mut coordinator = stable_two();
    coordinator.join(7_000, join_request("", "c3"), 5);

    let description = coordinator.describe("g");

    assert_eq!(description.protocol_name, "");
    assert!(description.members.iter().all(|member| member.assignment.is_empty()));
    assert!(description.members.iter().all(|member| member.metadata.is_empty()));
}

#[test]
fn list_filters_states() {
    let mut coordinator = stable_two();
    coordinator.ensure_known("empty", "consumer");

    let all = coordinator.list(&[]);
    let stable = coordinator.list(&["stable".to_string()]);
    let dead = coordinator.list(&["Dead".to_string()]);

    let names: Vec<&str> = all.iter().map(|listing| listing.group_id.as_str()).collect();
    assert_eq!(names, vec!["empty", "g"]);
    assert_eq!(
        stable,
        vec![GroupListing {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            state: "Stable".into()
        }]
    );
    assert!(dead.is_empty());
}

#[test]
fn ensure_known_keeps_existing_group() {
    let mut coordinator = stable_two();

    coordinator.ensure_known("g", "other");

    assert_eq!(coordinator.describe("g").state, "Stable");
    assert_eq!(coordinator.describe("g").protocol_type, "consumer");
}

fn subscription(topics: &[&str], version: i16) -> Bytes {
    let topics = topics
        .iter()
        .map(|topic| StrBytes::from_string(topic.to_string()))
        .collect();
    let subscription = ConsumerProtocolSubscription::default().with_topics(topics);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    subscription.encode(&mut buf, version.min(3)).unwrap();
    buf.freeze()
}

#[test]
fn subscribed_topics_from_metadata() {
    let mut coordinator = coordinator_without_delay();
    let mut c1 = join_request("", "c1");
    c1.protocols = vec![("range".to_string(), subscription(&["orders", "users"], 3))];
    coordinator.join(0, c1, 1);

    let topics = coordinator.subscribed_topics("g");

    let expected: BTreeSet<String> = ["orders".to_string(), "users".to_string()].into();
    assert_eq!(topics, Some(expected));
}

#[test]
fn subscribed_topics_edge_cases() {
    let mut coordinator = coordinator_without_delay();
    coordinator.ensure_known("empty", "consumer");
    let mut garbage = join_request("", "c1");
    garbage.protocols = vec![("range".to_string(), Bytes::from_static(b"\x00"))];
    coordinator.join(0, garbage, 1);

    assert_eq!(coordinator.subscribed_topics("empty"), Some(BTreeSet::new()));
    assert_eq!(coordinator.subscribed_topics("unknown"), None);
    assert_eq!(coordinator.subscribed_topics("g"), None);
}

#[test]
fn subscribed_topics_newer_version() {
    let mut coordinator = coordinator_without_delay();
    let mut c1 = join_request("", "c1");
    c1.protocols = vec![("range".to_string(), subscription(&["orders"], 9))];
    coordinator.join(0, c1, 1);

    let topics = coordinator.subscribed_topics("g");

    assert_eq!(topics, Some(["orders".to_string()].into()));
}

/// One step of the waiter-accounting property test. Clients are numbered 0..4; even
/// clients are dynamic and odd ones static.
#[derive(Debug, Clone)]
enum Step {
    Join {
        client: usize,
        forget_member_id: bool,
        require_known: bool,
    },
    Sync {
        client: usize,
    },
    Heartbeat {
        client: usize,
    },
    Leave {
        client: usize,
    },
    Tick {
        advance_ms: i64,
    },
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize, any::<bool>(), any::<bool>()).prop_map(|(client, forget_member_id, require_known)| Step::Join {
            client,
            forget_member_id,
            require_known
        }),
        (0..4usize).prop_map(|client| Step::Sync { client }),
        (0..4usize).prop_map(|client| Step::Heartbeat { client }),
        (0..4usize).prop_map(|client| Step::Leave { client }),
        (0..40_000i64).prop_map(|advance_ms| Step::Tick { advance_ms }),
    ]
}

/// What a simulated client remembers from its replies.
#[derive(Debug, Default, Clone)]
struct ClientView {
    member_id: String,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
}

fn record_replies(replies: Vec<Reply<u32>>, replied: &mut BTreeSet<u32>, clients: &mut [ClientView], owner: &[usize]) {
    for reply in replies {
        let waiter = match &reply {
            Reply::Join(waiter, _) | Reply::Sync(waiter, _) => *waiter,
        };
        assert!(replied.insert(waiter), "waiter {waiter} replied twice");
        if let Reply::Join(waiter, result) = reply {
            let client = &mut clients[owner[waiter as usize]];
            if result.error.is_none() || result.error == Some(ResponseError::MemberIdRequired) {
                client.member_id = result.member_id.clone();
                client.generation_id = result.generation_id;
            }
            client.assignments = result
                .members
                .iter()
                .map(|m| (m.member_id.clone(), Bytes::from_static(b"x")))
                .collect();
        }
    }
}

proptest! {
    #[test]
    fn every_waiter_replied_once(steps in proptest::collection::vec(step_strategy(), 1..60)) {
        let config = GroupConfig { max_group_size: 3, ..GroupConfig::default() };
        let mut coordinator: Coordinator = GroupCoordinator::new(config, SEED);
        let mut clients = vec![ClientView::default(); 4];
        let mut owner: Vec<usize> = Vec::new();
        let mut replied = BTreeSet::new();
        let mut now_ms = 0i64;

        for step in steps {
            match step {
                Step::Join { client, forget_member_id, require_known } => {
                    if forget_member_id {
                        clients[client].member_id.clear();
                    }
                    let client_id = format!("c{client}");
                    let mut request = join_request(&clients[client].member_id, &client_id);
                    if client % 2 == 1 {
                        request.group_instance_id = Some(format!("i{client}"));
                    }
                    request.require_known_member_id = require_known && client % 2 == 0;
                    let waiter = owner.len() as u32;
                    owner.push(client);
                    let replies = coordinator.join(now_ms, request, waiter);
                    record_replies(replies, &mut replied, &mut clients, &owner);
                }
                Step::Sync { client } => {
                    let view = clients[client].clone();
                    let mut request = sync_request(&view.member_id, view.generation_id, view.assignments);
                    if client % 2 == 1 {
                        request.group_instance_id = Some(format!("i{client}"));
                    }
                    let waiter = owner.len() as u32;
                    owner.push(client);
                    let replies = coordinator.sync(now_ms, request, waiter);
                    record_replies(replies, &mut replied, &mut clients, &owner);
                }
                Step::Heartbeat { client } => {
                    let view = &clients[client];
                    let _ = coordinator.heartbeat(now_ms, heartbeat_request(&view.member_id, view.generation_id));
                }
                Step::Leave { client } => {
                    let (_, replies) = coordinator.leave(now_ms, "g", vec![leaving(&clients[client].member_id)]);
                    record_replies(replies, &mut replied, &mut clients, &owner);
                }
                Step::Tick { advance_ms } => {
                    now_ms += advance_ms;
                    let replies = coordinator.tick(now_ms);
                    record_replies(replies, &mut replied, &mut clients, &owner);
                }
            }
        }

        // With no more requests, every session and deadline runs out within a few
        // rebalance timeouts and new-member join timeouts.
        for _ in 0..20 {
            now_ms += 400_000;
            let replies = coordinator.tick(now_ms);
            record_replies(replies, &mut replied, &mut clients, &owner);
        }

        let missing: Vec<u32> = (0..owner.len() as u32).filter(|waiter| !replied.contains(waiter)).collect();
        prop_assert!(missing.is_empty(), "waiters never replied: {:?}", missing);
        prop_assert_eq!(coordinator.describe("g").members.len(), 0);
    }
}
