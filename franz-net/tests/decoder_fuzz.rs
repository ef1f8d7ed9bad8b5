//! Fuzzing of the request decoder with proptest: arbitrary frames and mutations of valid
//! requests must decode or fail with an error, never panic or abort.
//!
//! `tests/corpus/` contains the seed frames: valid requests of many APIs and versions, and
//! frames that once aborted the process. Every run replays them and mutates them.
//! Failures proptest finds are kept in `decoder_fuzz.proptest-regressions` and replayed
//! first. Regenerate the seeds with `FRANZ_WRITE_CORPUS=1 cargo test -p franz-net --test
//! decoder_fuzz write_corpus`.
//!
//! More cases: `PROPTEST_CASES=100000 cargo test -p franz-net --release --test decoder_fuzz`.

#![allow(clippy::disallowed_methods)] // The corpus is test data read with std::fs.

use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};
use franz_net::codec::{self, DecodeError};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

// kafka-protocol sizes arrays from the declared count before decoding them; without the
// guard a frame of a few bytes aborts the test process.
#[global_allocator]
static ALLOCATOR: franz_net::alloc::GuardedAllocator = franz_net::alloc::GuardedAllocator;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Decodes a frame payload the way the broker does. Returns the decoder's panic message,
/// if it panicked.
fn decode(payload: &[u8]) -> Option<String> {
    let frame = match codec::decode_header(Bytes::copy_from_slice(payload)) {
        Ok(frame) => frame,
        Err(DecodeError::MalformedHeader { message, .. }) if message.contains("panicked") => return Some(message),
        Err(_) => return None,
    };
    let version = frame.header.request_api_version;
    match codec::decode_body(frame.api_key, version, frame.body) {
        Err(DecodeError::MalformedBody { message, .. }) if message.contains("panicked") => Some(message),
        _ => None,
    }
}

fn encode(api_key: ApiKey, version: i16, request: &RequestKind) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, api_key.request_header_version(version))
        .expect("encode header");
    request.encode(&mut payload, version).expect("encode body");
    payload.to_vec()
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// Valid requests of the APIs with the deepest structures, at several versions.
fn seed_frames() -> Vec<(String, Vec<u8>)> {
    let records = Bytes::from_static(&[0u8; 70]);
    let produce = RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(records))]),
        ]));
    let fetch = RequestKind::Fetch(FetchRequest::default().with_replica_id(BrokerId(-1)).with_topics(
        vec![fetch_request::FetchTopic::default()
                .with_topic(name("orders"))
                .with_partitions(vec![fetch_request::FetchPartition::default().with_fetch_offset(10)])],
    ));
    let metadata = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name("orders"))),
    ])));
    let join = RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("group")))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders"))]),
    );
    let commit = RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("group")))
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("orders"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default(),
                ])]),
    );
    let create = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name("orders"))
            .with_num_partitions(6)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))]),
    ]));
    let seeds = [
        (ApiKey::Produce, [3, 9, 12], produce),
        (ApiKey::Fetch, [4, 11, 12], fetch),
        (ApiKey::Metadata, [1, 9, 12], metadata),
        (ApiKey::JoinGroup, [1, 5, 9], join),
        (ApiKey::OffsetCommit, [2, 7, 8], commit),
        (ApiKey::CreateTopics, [2, 5, 7], create),
    ];
    let mut frames = Vec::new();
    for (api_key, versions, request) in seeds {
        for version in versions {
            frames.push((format!("{api_key:?}-v{version}"), encode(api_key, version, &request)));
        }
    }
    frames
}

/// Frames that aborted the process before the allocator guard existed.
fn known_aborts() -> Vec<(String, Vec<u8>)> {
    let mut metadata = BytesMut::new();
    metadata.put_i16(ApiKey::Metadata as i16);
    metadata.put_i16(0);
    metadata.put_i32(1);
    metadata.put_i16(-1);
    metadata.put_i32(i32::MAX);
    let mut produce = BytesMut::new();
    produce.put_i16(ApiKey::Produce as i16);
    produce.put_i16(9);
    produce.put_i32(1);
    produce.put_i16(-1);
    produce.put_u8(0);
    produce.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    vec![
        ("abort-metadata-v0-topic-count".to_string(), metadata.to_vec()),
        ("abort-produce-v9-compact-count".to_string(), produce.to_vec()),
    ]
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            (name, std::fs::read(&path).expect("read corpus file"))
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn write_corpus() {
    if std::env::var_os("FRANZ_WRITE_CORPUS").is_none() {
        return;
    }
    for (name, frame) in seed_frames().into_iter().chain(known_aborts()) {
        std::fs::write(corpus_dir().join(format!("{name}.bin")), frame).expect("write corpus file");
    }
}

#[test]
fn corpus_replays_without_panic() {
    let corpus = corpus();
    assert!(corpus.len() >= 20, "tests/corpus has {} frames", corpus.len());
    for (name, frame) in corpus {
        assert_eq!(decode(&frame), None, "corpus frame {name} panicked the decoder");
    }
}

#[test]
fn valid_seeds_decode() {
    for (name, frame) in seed_frames() {
        let decoded = codec::decode_header(Bytes::from(frame)).expect("header decodes");
        let version = decoded.header.request_api_version;
        let body = codec::decode_body(decoded.api_key, version, decoded.body);
        assert!(body.is_ok(), "seed {name}: {body:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_frames_never_panic(
        api_key in 0i16..80,
        version in -1i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut frame = BytesMut::new();
        frame.put_i16(api_key);
        frame.put_i16(version);
        frame.put_i32(7);
        frame.put_i16(-1);
        frame.extend_from_slice(&body);
        prop_assert_eq!(decode(&frame), None);
    }

    #[test]
    fn mutated_corpus_never_panics(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let corpus = corpus();
        let (_, seed) = &corpus[pick.index(corpus.len())];
        let mut frame = seed.clone();
        for (at, value) in flips {
            let at = at.index(frame.len());
            frame[at] = value;
        }
        if let Some(cut) = cut {
            frame.truncate(cut.index(frame.len() + 1));
        }
        prop_assert_eq!(decode(&frame), None);
    }
}
