//! The consumer protocol's subscription and assignment bytes, and the range assignor
//! that the group leader runs.
//!
//! Both are Kafka's format: a big-endian i16 version, then the message of that version,
//! so that Franz clients and Java or librdkafka consumers can share a group.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedPartitions;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Version of the assignment this client writes.
const VERSION: i16 = 0;

/// Version of the subscription this client writes: version 1 adds the partitions a
/// member owns, which the cooperative-sticky assignor needs.
const SUBSCRIPTION_VERSION: i16 = 1;

/// Name of the range assignor in JoinGroup's protocol list, as Kafka names it.
pub const RANGE: &str = "range";

/// Name of the cooperative sticky assignor, as Kafka names it.
pub const COOPERATIVE_STICKY: &str = "cooperative-sticky";

/// A member's subscription: its topics and the partitions it owns now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub owned: Vec<(String, i32)>,
}

/// Encodes the subscription a member sends with JoinGroup.
pub fn encode_subscription(subscription: &Subscription) -> Bytes {
    let mut owned: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &subscription.owned {
        owned.entry(topic).or_default().push(*partition);
    }
    let topics = subscription
        .topics
        .iter()
        .map(|topic| StrBytes::from_string(topic.clone()))
        .collect();
    let owned = owned
        .into_iter()
        .map(|(topic, partitions)| {
            OwnedPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolSubscription::default()
        .with_topics(topics)
        .with_owned_partitions(owned);
    let mut out = BytesMut::new();
    out.put_i16(SUBSCRIPTION_VERSION);
    message
        .encode(&mut out, SUBSCRIPTION_VERSION)
        .expect("a subscription of version 1 encodes");
    out.freeze()
}

/// Decodes a member's subscription: its topics and, from version 1, the partitions it owns.
pub fn decode_subscription(metadata: &[u8]) -> Result<Subscription, String> {
    let mut buf = Bytes::copy_from_slice(metadata);
    if buf.remaining() < 2 {
        return Err("subscription shorter than its version".to_string());
    }
    let version = buf.get_i16().clamp(0, 3);
    let message = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|error| format!("invalid subscription: {error}"))?;
    let owned = message
        .owned_partitions
        .iter()
        .flat_map(|topic| {
            let name = topic.topic.0.as_str().to_string();
            topic.partitions.iter().map(move |partition| (name.clone(), *partition))
        })
        .collect();
    Ok(Subscription {
        topics: message.topics.iter().map(|topic| topic.as_str().to_string()).collect(),
        owned,
    })
}

/// Encodes the partitions assigned to one member.
pub fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(topic, indexes)| {
                AssignedPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(indexes.clone())
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(VERSION);
    assignment
        .encode(&mut out, VERSION)
        .expect("an assignment of version 0 encodes");
    out.freeze()
}

/// Decodes an assignment into (topic, partitions) pairs. Empty bytes are an empty
/// assignment.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Err("assignment shorter than its version".to_string());
    }
    let version = buf.get_i16().clamp(0, 3);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|error| format!("invalid assignment: {error}"))?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .map(|topic| (topic.topic.0.as_str().to_string(), topic.partitions))
        .collect())
}

/// Kafka's range assignor. For each topic, the members subscribed to it, sorted by member
/// id, get consecutive ranges of partitions, and the first `partitions % members` members
/// get one more.
///
/// `members` maps member id to subscribed topics, and `partition_counts` maps topic to its
/// partition count. Returns each member's assignment, including empty ones.
pub fn assign_range(
    members: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut assignments: BTreeMap<String, BTreeMap<String, Vec<i32>>> =
        members.keys().map(|member| (member.clone(), BTreeMap::new())).collect();
    let topics: BTreeSet<&String> = members.values().flatten().collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        let per_member = count / subscribers.len() as i32;
        let extra = count % subscribers.len() as i32;
        let mut next = 0;
        for (position, member) in subscribers.iter().enumerate() {
            let take = per_member + i32::from((position as i32) < extra);
            if take > 0 {
                let partitions = (next..next + take).collect();
                assignments
                    .get_mut(*member)
                    .expect("every member has an entry")
                    .insert(topic.clone(), partitions);
            }
            next += take;
        }
    }
    assignments
}

/// Kafka's cooperative sticky assignor: members keep the partitions they own where
/// possible, counts are balanced to within one per member, and a partition that moves
/// is left out of this generation's assignment. Its old owner revokes it and rejoins,
/// and the next rebalance gives it to its new member, so no partition is ever owned by
/// two members at once.
///
/// `members` maps member id to its subscription. Returns each member's assignment.
pub fn assign_cooperative_sticky(
    members: &BTreeMap<String, Subscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let subscribed = |member: &str, topic: &str| members[member].topics.iter().any(|candidate| candidate == topic);

    // Every partition of every subscribed topic, and who owned it in the last generation.
    let mut all: BTreeSet<(String, i32)> = BTreeSet::new();
    for topic in members.values().flat_map(|subscription| &subscription.topics) {
        if let Some(&count) = partition_counts.get(topic) {
            all.extend((0..count).map(|partition| (topic.clone(), partition)));
        }
    }
    let mut previous_owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut owned: BTreeMap<String, BTreeSet<(String, i32)>> =
        members.keys().map(|member| (member.clone(), BTreeSet::new())).collect();
    for (member, subscription) in members {
        for partition in &subscription.owned {
            // The first claimant keeps a partition that two members claim.
            if all.contains(partition) && subscribed(member, &partition.0) && !previous_owner.contains_key(partition) {
                previous_owner.insert(partition.clone(), member.clone());
                owned
                    .get_mut(member)
                    .expect("every member has an entry")
                    .insert(partition.clone());
            }
        }
    }

    // Unowned partitions go to the eligible member with the fewest.
    let mut target = owned.clone();
    for partition in all.iter().filter(|partition| !previous_owner.contains_key(*partition)) {
        let fewest = target
            .iter()
            .filter(|(member, _)| subscribed(member, &partition.0))
            .min_by_key(|(member, partitions)| (partitions.len(), (*member).clone()))
            .map(|(member, _)| member.clone());
        if let Some(member) = fewest {
            target.get_mut(&member).expect("known member").insert(partition.clone());
        }
    }

    // Move partitions from the fullest member to the emptiest until counts differ by at
    // most one. Each move narrows the gap, so the loop ends within `all.len()` moves.
    for _ in 0..=all.len() {
        let fullest = target
            .iter()
            .max_by_key(|(member, partitions)| (partitions.len(), std::cmp::Reverse((*member).clone())))
            .map(|(member, partitions)| (member.clone(), partitions.len()));
        let emptiest = target
            .iter()
            .min_by_key(|(member, partitions)| (partitions.len(), (*member).clone()))
            .map(|(member, partitions)| (member.clone(), partitions.len()));
        let (Some((from, from_count)), Some((to, to_count))) = (fullest, emptiest) else {
            break;
        };
        if from_count <= to_count + 1 {
            break;
        }
        let movable = target[&from]
            .iter()
            .rev()
            .find(|partition| subscribed(&to, &partition.0))
            .cloned();
        let Some(partition) = movable else {
            break;
        };
        target.get_mut(&from).expect("known member").remove(&partition);
        target.get_mut(&to).expect("known member").insert(partition);
    }

    // A partition still owned by another member waits for the next generation.
    target
        .into_iter()
        .map(|(member, partitions)| {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for partition in partitions {
                let moving = previous_owner.get(&partition).is_some_and(|owner| *owner != member);
                if !moving {
                    by_topic.entry(partition.0).or_default().push(partition.1);
                }
            }
            (member, by_topic)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(topics: &[&str], owned: &[(&str, i32)]) -> Subscription {
        Subscription {
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(topic, partition)| (topic.to_string(), *partition))
                .collect(),
        }
    }

    fn counts(topic: &str, partitions: i32) -> BTreeMap<String, i32> {
        [(topic.to_string(), partitions)].into_iter().collect()
    }

    #[test]
    fn subscription_round_trips() {
        let sent = subscription(&["orders", "payments"], &[("orders", 0), ("orders", 3)]);
        assert_eq!(decode_subscription(&encode_subscription(&sent)), Ok(sent));
    }

    #[test]
    fn cooperative_first_generation_balances() {
        let members: BTreeMap<String, Subscription> = ["a", "b", "c"]
            .iter()
            .map(|member| (member.to_string(), subscription(&["t"], &[])))
            .collect();
        let assigned = assign_cooperative_sticky(&members, &counts("t", 6));
        for member in ["a", "b", "c"] {
            assert_eq!(assigned[member]["t"].len(), 2, "{member}: {assigned:?}");
        }
    }

    #[test]
    fn cooperative_keeps_owned_and_defers_moves() {
        // a owned all four partitions; b joins.
        let mut members = BTreeMap::new();
        let all_four = [("t", 0), ("t", 1), ("t", 2), ("t", 3)];
        members.insert("a".to_string(), subscription(&["t"], &all_four));
        members.insert("b".to_string(), subscription(&["t"], &[]));
        let first = assign_cooperative_sticky(&members, &counts("t", 4));
        assert_eq!(first["a"]["t"].len(), 2, "a keeps two: {first:?}");
        assert!(first["b"].is_empty(), "b gets nothing until a revokes: {first:?}");

        // a revoked the two it lost and rejoins; now b gets them.
        let kept: Vec<(&str, i32)> = first["a"]["t"].iter().map(|partition| ("t", *partition)).collect();
        members.insert("a".to_string(), subscription(&["t"], &kept));
        let second = assign_cooperative_sticky(&members, &counts("t", 4));
        assert_eq!(second["a"], first["a"]);
        assert_eq!(second["b"]["t"].len(), 2);
        let mut all: Vec<i32> = second.values().flat_map(|topics| topics["t"].clone()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn assignment_round_trips() {
        let mut partitions = BTreeMap::new();
        partitions.insert("orders".to_string(), vec![0, 2]);
        let decoded = decode_assignment(&encode_assignment(&partitions)).expect("decodes");
        assert_eq!(decoded, vec![("orders".to_string(), vec![0, 2])]);
    }

    #[test]
    fn range_splits_like_kafka() {
        let members: BTreeMap<String, Vec<String>> = [("a", "t"), ("b", "t"), ("c", "t")]
            .iter()
            .map(|(member, topic)| (member.to_string(), vec![topic.to_string()]))
            .collect();
        let counts: BTreeMap<String, i32> = [("t".to_string(), 7)].into_iter().collect();
        let assigned = assign_range(&members, &counts);
        assert_eq!(assigned["a"]["t"], vec![0, 1, 2]);
        assert_eq!(assigned["b"]["t"], vec![3, 4]);
        assert_eq!(assigned["c"]["t"], vec![5, 6]);
    }

    #[test]
    fn range_leaves_extra_members_empty() {
        let members: BTreeMap<String, Vec<String>> = ["a", "b", "c"]
            .iter()
            .map(|member| (member.to_string(), vec!["t".to_string()]))
            .collect();
        let counts: BTreeMap<String, i32> = [("t".to_string(), 2)].into_iter().collect();
        let assigned = assign_range(&members, &counts);
        assert_eq!(assigned["a"]["t"], vec![0]);
        assert_eq!(assigned["b"]["t"], vec![1]);
        assert!(assigned["c"].is_empty());
    }
}
