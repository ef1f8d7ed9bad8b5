//! The consumer protocol's subscription and assignment bytes, and the range assignor
//! that the group leader runs.
//!
//! Both are Kafka's format: a big-endian i16 version, then the message of that version,
//! so that Franz clients and Java or librdkafka consumers can share a group.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Version of the subscription and assignment this client writes. Version 1 adds the
/// partitions a member owns, which cooperative assignors need; this client does not.
const VERSION: i16 = 0;

/// Name of the range assignor in JoinGroup's protocol list, as Kafka names it.
pub const RANGE: &str = "range";

/// Encodes the subscription a member sends with JoinGroup.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|topic| StrBytes::from_string(topic.clone()))
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(VERSION);
    subscription
        .encode(&mut out, VERSION)
        .expect("a subscription of version 0 encodes");
    out.freeze()
}

/// Decodes a member's subscription into its topics.
pub fn decode_subscription(metadata: &[u8]) -> Result<Vec<String>, String> {
    let mut buf = Bytes::copy_from_slice(metadata);
    if buf.remaining() < 2 {
        return Err("subscription shorter than its version".to_string());
    }
    let version = buf.get_i16().clamp(0, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|error| format!("invalid subscription: {error}"))?;
    Ok(subscription
        .topics
        .iter()
        .map(|topic| topic.as_str().to_string())
        .collect())
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

/// Kafka's range assignor: for each topic, the members subscribed to it, sorted by member
/// id, get consecutive ranges of partitions; the first `partitions % members` members get
/// one more.
///
/// `members` maps member id to subscribed topics; `partition_counts` maps topic to its
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips() {
        let topics = vec!["orders".to_string(), "payments".to_string()];
        assert_eq!(decode_subscription(&encode_subscription(&topics)), Ok(topics));
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
