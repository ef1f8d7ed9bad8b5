//! Fetch responses encoded as a list of chunks, so that the record data a broker read from
//! a segment reaches the socket without being copied into a response buffer.
//!
//! The fields around the records are encoded into small buffers; each partition's records
//! are passed on as the `Bytes` the storage engine returned. The bytes are exactly those
//! that kafka-protocol's encoder writes for the same response (a test compares them), for
//! the versions the broker serves, 4 to 12.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchResponse;

/// Fetch versions this encoder writes.
pub const VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;

/// First Fetch version with the flexible (compact, tagged) encoding.
const FIRST_FLEXIBLE: i16 = 12;

/// Record data shorter than this is copied into the surrounding chunk: a copy of a few
/// KiB costs less than one more write to the socket.
const MIN_SHARED_RECORDS: usize = 8 * 1024;

/// Collects the encoded response: small fields go to `current`, record data becomes chunks
/// of its own.
struct Chunks {
    done: Vec<Bytes>,
    current: BytesMut,
}

impl Chunks {
    fn push_records(&mut self, records: &Bytes) {
        if records.len() < MIN_SHARED_RECORDS {
            self.current.put_slice(records);
            return;
        }
        if !self.current.is_empty() {
            self.done.push(self.current.split().freeze());
        }
        self.done.push(records.clone());
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        self.done
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes an array or string length: compact (length + 1 as an unsigned varint) in flexible
/// versions, an i32 or i16 otherwise. `None` is null.
fn put_length(buf: &mut BytesMut, flexible: bool, length: Option<usize>, short: bool) -> Result<(), String> {
    match (flexible, length) {
        (true, None) => put_unsigned_varint(buf, 0),
        (true, Some(length)) => {
            let length = u32::try_from(length + 1).map_err(|_| format!("length {length} does not fit a varint"))?;
            put_unsigned_varint(buf, length);
        }
        (false, None) if short => buf.put_i16(-1),
        (false, None) => buf.put_i32(-1),
        (false, Some(length)) if short => {
            buf.put_i16(i16::try_from(length).map_err(|_| format!("string of {length} bytes is too long"))?)
        }
        (false, Some(length)) => {
            buf.put_i32(i32::try_from(length).map_err(|_| format!("length {length} does not fit an i32"))?)
        }
    }
    Ok(())
}

/// Encodes the response header and `response` at `version`, as chunks to write in order.
///
/// # Errors
/// When `version` is outside [`VERSIONS`], or the response sets a field this encoder does
/// not write (a tagged field, a topic id, node endpoints).
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
) -> Result<Vec<Bytes>, String> {
    if !VERSIONS.contains(&version) {
        return Err(format!("Fetch version {version} is not encoded without copies"));
    }
    if !response.unknown_tagged_fields.is_empty() || !response.node_endpoints.is_empty() {
        return Err("the response sets fields this encoder does not write".to_string());
    }
    let flexible = version >= FIRST_FLEXIBLE;
    // The partition fields this encoder leaves out must keep their default values.
    let defaults = PartitionData::default();
    let mut chunks = Chunks {
        done: Vec::new(),
        current: BytesMut::with_capacity(256),
    };
    let buf = &mut chunks.current;

    // Response header v0, or v1 with an empty tagged-field section.
    buf.put_i32(correlation_id);
    if flexible {
        put_unsigned_varint(buf, 0);
    }

    buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(response.error_code);
        buf.put_i32(response.session_id);
    } else if response.session_id != 0 {
        return Err(format!("a session id is not available in Fetch version {version}"));
    }
    put_length(buf, flexible, Some(response.responses.len()), false)?;
    for topic in &response.responses {
        if !topic.unknown_tagged_fields.is_empty() {
            return Err("a topic sets fields this encoder does not write".to_string());
        }
        let name = topic.topic.0.as_bytes();
        put_length(&mut chunks.current, flexible, Some(name.len()), true)?;
        chunks.current.put_slice(name);
        put_length(&mut chunks.current, flexible, Some(topic.partitions.len()), false)?;
        for partition in &topic.partitions {
            encode_partition(&mut chunks, version, partition, &defaults)?;
        }
        if flexible {
            put_unsigned_varint(&mut chunks.current, 0);
        }
    }
    if flexible {
        put_unsigned_varint(&mut chunks.current, 0);
    }
    Ok(chunks.finish())
}

fn encode_partition(
    chunks: &mut Chunks,
    version: i16,
    partition: &PartitionData,
    defaults: &PartitionData,
) -> Result<(), String> {
    let flexible = version >= FIRST_FLEXIBLE;
    let has_tagged_fields = partition.diverging_epoch != defaults.diverging_epoch
        || partition.current_leader != defaults.current_leader
        || partition.snapshot_id != defaults.snapshot_id
        || !partition.unknown_tagged_fields.is_empty();
    if has_tagged_fields {
        return Err("a partition sets tagged fields this encoder does not write".to_string());
    }

    let buf = &mut chunks.current;
    buf.put_i32(partition.partition_index);
    buf.put_i16(partition.error_code);
    buf.put_i64(partition.high_watermark);
    buf.put_i64(partition.last_stable_offset);
    if version >= 5 {
        buf.put_i64(partition.log_start_offset);
    }
    let aborted = partition.aborted_transactions.as_ref();
    put_length(buf, flexible, aborted.map(Vec::len), false)?;
    for transaction in aborted.into_iter().flatten() {
        buf.put_i64(transaction.producer_id.0);
        buf.put_i64(transaction.first_offset);
        if flexible {
            put_unsigned_varint(buf, 0);
        }
    }
    if version >= 11 {
        buf.put_i32(partition.preferred_read_replica.0);
    } else if partition.preferred_read_replica.0 != -1 {
        return Err(format!(
            "a preferred read replica is not available in Fetch version {version}"
        ));
    }
    put_length(buf, flexible, partition.records.as_ref().map(Bytes::len), false)?;
    if let Some(records) = &partition.records {
        chunks.push_records(records);
    }
    if flexible {
        put_unsigned_varint(&mut chunks.current, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    use super::*;

    /// Encodes with kafka-protocol: the reference the chunks must match.
    fn reference(version: i16, correlation_id: i32, response: &FetchResponse) -> Vec<u8> {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .expect("header encodes");
        response.encode(&mut buf, version).expect("response encodes");
        buf.to_vec()
    }

    fn partition_strategy() -> impl Strategy<Value = PartitionData> {
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            prop::option::of(prop::collection::vec((any::<i64>(), any::<i64>()), 0..3)),
            prop::option::of(prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                prop::collection::vec(any::<u8>(), MIN_SHARED_RECORDS..MIN_SHARED_RECORDS + 100),
            ]),
        )
            .prop_map(|(index, error, high, stable, start, aborted, records)| {
                PartitionData::default()
                    .with_partition_index(index)
                    .with_error_code(error)
                    .with_high_watermark(high)
                    .with_last_stable_offset(stable)
                    .with_log_start_offset(start)
                    .with_aborted_transactions(aborted.map(|list| {
                        list.into_iter()
                            .map(|(producer, first)| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(producer))
                                    .with_first_offset(first)
                            })
                            .collect()
                    }))
                    .with_records(records.map(Bytes::from))
            })
    }

    fn response_strategy() -> impl Strategy<Value = FetchResponse> {
        let topic =
            ("[a-z.]{0,20}", prop::collection::vec(partition_strategy(), 0..4)).prop_map(|(name, partitions)| {
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            });
        (any::<i32>(), any::<i16>(), prop::collection::vec(topic, 0..3)).prop_map(|(throttle, error, topics)| {
            FetchResponse::default()
                .with_throttle_time_ms(throttle)
                .with_error_code(error)
                .with_responses(topics)
        })
    }

    proptest! {
        #[test]
        fn chunks_match_kafka_protocol(
            version in VERSIONS,
            correlation_id in any::<i32>(),
            session_id in any::<i32>(),
            replica in any::<i32>(),
            mut response in response_strategy(),
        ) {
            if version >= 7 {
                response.session_id = session_id;
            }
            if version >= 11 {
                for topic in &mut response.responses {
                    for partition in &mut topic.partitions {
                        partition.preferred_read_replica = BrokerId(replica);
                    }
                }
            }
            let chunks = encode_fetch_response(version, correlation_id, &response).expect("encodes");
            let joined: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.iter().copied()).collect();
            prop_assert_eq!(joined, reference(version, correlation_id, &response));
        }
    }

    #[test]
    fn records_are_not_copied() {
        let records = Bytes::from(vec![7u8; 64 * 1024]);
        let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("events")))
            .with_partitions(vec![PartitionData::default().with_records(Some(records.clone()))])]);
        let chunks = encode_fetch_response(12, 1, &response).expect("encodes");
        let shared = chunks
            .iter()
            .any(|chunk| chunk.as_ptr() == records.as_ptr() && chunk.len() == records.len());
        assert!(shared, "the records chunk is the storage engine's buffer");
    }

    #[test]
    fn unserved_version_rejected() {
        assert!(encode_fetch_response(13, 1, &FetchResponse::default()).is_err());
        assert!(encode_fetch_response(3, 1, &FetchResponse::default()).is_err());
    }
}
