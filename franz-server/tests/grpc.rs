//! The gRPC API over real loopback HTTP/2, spoken to with the generated tonic client:
//! produce, subscribe (from earliest, latest, a timestamp, following new records),
//! offsets by time, topic administration, status codes, and records shared with the
//! Kafka listener.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{run, start_node, start_node_with, Client, TestNode};
use franz_net::grpc::franz_client::FranzClient;
use franz_net::grpc::subscribe_request::Start;
use franz_net::grpc::*;
use franz_net::partitioner::partition_for_key;
use kafka_protocol::messages::{fetch_request, BrokerId, FetchRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Maximum wait for any one call or stream message, so that a test fails rather than hangs.
const WAIT: Duration = Duration::from_secs(10);

async fn connect(node: &TestNode) -> FranzClient<Channel> {
    let address = format!("http://{}", node.node.grpc_local_addr);
    tokio::time::timeout(WAIT, FranzClient::connect(address))
        .await
        .expect("connecting timed out")
        .expect("connect to the gRPC listener")
}

fn record(key: Option<&str>, value: &str, timestamp_ms: Option<i64>) -> ProduceRecord {
    ProduceRecord {
        key: key.map(|key| key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp_ms,
    }
}

async fn create_topic(client: &mut FranzClient<Channel>, name: &str, partitions: i32) {
    let request = CreateTopicRequest {
        name: name.to_string(),
        partitions,
        configs: HashMap::new(),
    };
    tokio::time::timeout(WAIT, client.create_topic(request))
        .await
        .expect("CreateTopic timed out")
        .expect("CreateTopic succeeds");
}

async fn produce(
    client: &mut FranzClient<Channel>,
    topic: &str,
    partition: Option<i32>,
    records: Vec<ProduceRecord>,
) -> Result<ProduceResponse, tonic::Status> {
    let request = ProduceRequest {
        topic: topic.to_string(),
        partition,
        records,
    };
    tokio::time::timeout(WAIT, client.produce(request))
        .await
        .expect("Produce timed out")
        .map(|response| response.into_inner())
}

async fn subscribe(
    client: &mut FranzClient<Channel>,
    topic: &str,
    partitions: Vec<i32>,
    start: Start,
) -> Result<Streaming<SubscribeResponse>, tonic::Status> {
    let request = SubscribeRequest {
        topic: topic.to_string(),
        partitions,
        start: Some(start),
    };
    tokio::time::timeout(WAIT, client.subscribe(request))
        .await
        .expect("Subscribe timed out")
        .map(|response| response.into_inner())
}

/// Reads the next record of a subscription, failing after [`WAIT`].
async fn next_record(stream: &mut Streaming<SubscribeResponse>) -> SubscribeResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("no record within the wait")
        .expect("the stream has no error")
        .expect("the stream is still open")
}

/// Asserts that the subscription sends nothing for a while.
async fn assert_quiet(stream: &mut Streaming<SubscribeResponse>) {
    let next = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(next.is_err(), "expected no record, got {next:?}");
}

fn value_text(record: &SubscribeResponse) -> String {
    String::from_utf8(record.value.clone().expect("a value")).expect("UTF-8 value")
}

#[test]
fn produce_then_subscribe_from_earliest() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "events", 1).await;

        let mut first = record(Some("k1"), "first", Some(1_000));
        first.headers = vec![
            Header {
                key: "trace".into(),
                value: Some(b"abc".to_vec()),
            },
            Header {
                key: "empty".into(),
                value: None,
            },
        ];
        let records = vec![
            first,
            record(Some("k2"), "second", Some(1_001)),
            record(None, "third", None),
        ];
        let produced = produce(&mut client, "events", Some(0), records)
            .await
            .expect("Produce succeeds");
        assert_eq!(
            produced.batches,
            vec![ProducedBatch {
                partition: 0,
                base_offset: 0,
                record_count: 3
            }]
        );

        let mut stream = subscribe(&mut client, "events", vec![], Start::Earliest(StartEarliest {}))
            .await
            .expect("Subscribe succeeds");
        let first = next_record(&mut stream).await;
        assert_eq!(first.partition, 0);
        assert_eq!(first.offset, 0);
        assert_eq!(first.timestamp_ms, 1_000);
        assert_eq!(first.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(value_text(&first), "first");
        assert_eq!(first.headers.len(), 2);
        assert_eq!(first.headers[0].key, "trace");
        assert_eq!(first.headers[0].value.as_deref(), Some(&b"abc"[..]));
        assert_eq!(first.headers[1].key, "empty");
        assert_eq!(first.headers[1].value, None);

        let second = next_record(&mut stream).await;
        assert_eq!(second.offset, 1);
        assert_eq!(second.key.as_deref(), Some(&b"k2"[..]));
        assert_eq!(value_text(&second), "second");

        let third = next_record(&mut stream).await;
        assert_eq!(third.offset, 2);
        assert_eq!(third.key, None);
        assert_eq!(value_text(&third), "third");
        assert!(
            third.timestamp_ms > 1_001,
            "the default timestamp is the broker's clock"
        );
        assert_quiet(&mut stream).await;

        drop(stream);
        node.node.stop().await.expect("clean stop");
    });
}

#[test]
fn keyed_produce_uses_partition_for_key() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "keyed", 4).await;

        let keys: Vec<String> = (0..12).map(|index| format!("key-{index}")).collect();
        for key in &keys {
            let produced = produce(&mut client, "keyed", None, vec![record(Some(key), "v", None)])
                .await
                .expect("Produce succeeds");
            assert_eq!(produced.batches.len(), 1);
            assert_eq!(
                produced.batches[0].partition,
                partition_for_key(key.as_bytes(), 4),
                "partition of {key}"
            );
        }

        // One request with many keys is split into one batch per partition.
        let records = keys.iter().map(|key| record(Some(key), "w", None)).collect();
        let produced = produce(&mut client, "keyed", None, records)
            .await
            .expect("Produce succeeds");
        let mut expected: HashMap<i32, i32> = HashMap::new();
        for key in &keys {
            *expected.entry(partition_for_key(key.as_bytes(), 4)).or_default() += 1;
        }
        let found: HashMap<i32, i32> = produced
            .batches
            .iter()
            .map(|batch| (batch.partition, batch.record_count))
            .collect();
        assert_eq!(found, expected);
        let partitions: Vec<i32> = produced.batches.iter().map(|batch| batch.partition).collect();
        let mut sorted = partitions.clone();
        sorted.sort();
        assert_eq!(partitions, sorted, "batches come in partition order");
    });
}

#[test]
fn unkeyed_records_share_one_partition_per_request() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "spread", 3).await;

        let mut used = Vec::new();
        for _ in 0..3 {
            let records = vec![record(None, "a", None), record(None, "b", None)];
            let produced = produce(&mut client, "spread", None, records)
                .await
                .expect("Produce succeeds");
            assert_eq!(
                produced.batches.len(),
                1,
                "all unkeyed records of a request go together"
            );
            assert_eq!(produced.batches[0].record_count, 2);
            used.push(produced.batches[0].partition);
        }
        used.sort();
        assert_eq!(
            used,
            vec![0, 1, 2],
            "consecutive requests take turns over the partitions"
        );
    });
}

#[test]
fn subscribe_from_latest_follows_new_records() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "live", 2).await;
        produce(&mut client, "live", Some(0), vec![record(None, "old", None)])
            .await
            .expect("Produce succeeds");

        let mut stream = subscribe(&mut client, "live", vec![], Start::Latest(StartLatest {}))
            .await
            .expect("Subscribe succeeds");
        assert_quiet(&mut stream).await;

        produce(&mut client, "live", Some(1), vec![record(None, "new-1", None)])
            .await
            .expect("Produce succeeds");
        let received = next_record(&mut stream).await;
        assert_eq!((received.partition, received.offset), (1, 0));
        assert_eq!(value_text(&received), "new-1");

        produce(&mut client, "live", Some(0), vec![record(None, "new-0", None)])
            .await
            .expect("Produce succeeds");
        let received = next_record(&mut stream).await;
        assert_eq!((received.partition, received.offset), (0, 1));
        assert_eq!(value_text(&received), "new-0");
        assert_quiet(&mut stream).await;
    });
}

#[test]
fn subscribe_to_chosen_partition_only() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "chosen", 2).await;
        produce(&mut client, "chosen", Some(0), vec![record(None, "zero", None)])
            .await
            .expect("Produce succeeds");
        produce(&mut client, "chosen", Some(1), vec![record(None, "one", None)])
            .await
            .expect("Produce succeeds");

        let mut stream = subscribe(&mut client, "chosen", vec![1], Start::Offset(0))
            .await
            .expect("Subscribe succeeds");
        let received = next_record(&mut stream).await;
        assert_eq!(received.partition, 1);
        assert_eq!(value_text(&received), "one");
        assert_quiet(&mut stream).await;
    });
}

/// Produces four records with timestamps 2, 4, 6 and 8 to partition 0 of `topic`.
async fn produce_timestamps(client: &mut FranzClient<Channel>, topic: &str) {
    create_topic(client, topic, 1).await;
    let records = [2, 4, 6, 8]
        .into_iter()
        .map(|timestamp| record(None, &format!("at-{timestamp}"), Some(timestamp)))
        .collect();
    produce(client, topic, Some(0), records)
        .await
        .expect("Produce succeeds");
}

#[test]
fn subscribe_from_timestamp() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        produce_timestamps(&mut client, "timed").await;

        let mut stream = subscribe(&mut client, "timed", vec![], Start::TimestampMs(5))
            .await
            .expect("Subscribe succeeds");
        let first = next_record(&mut stream).await;
        assert_eq!((first.offset, first.timestamp_ms), (2, 6));
        let second = next_record(&mut stream).await;
        assert_eq!((second.offset, second.timestamp_ms), (3, 8));
        assert_quiet(&mut stream).await;

        // Past every record: starts at the end and follows.
        let mut stream = subscribe(&mut client, "timed", vec![], Start::TimestampMs(100))
            .await
            .expect("Subscribe succeeds");
        assert_quiet(&mut stream).await;
        produce(&mut client, "timed", Some(0), vec![record(None, "later", Some(200))])
            .await
            .expect("Produce succeeds");
        assert_eq!(next_record(&mut stream).await.offset, 4);
    });
}

#[test]
fn offsets_for_time_first_at_or_after() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        produce_timestamps(&mut client, "timed").await;

        let query = |timestamp_ms| OffsetsForTimeRequest {
            topic: "timed".to_string(),
            timestamp_ms,
        };
        let found = client
            .offsets_for_time(query(3))
            .await
            .expect("OffsetsForTime succeeds");
        assert_eq!(
            found.into_inner().partitions,
            vec![PartitionOffset {
                partition: 0,
                offset: Some(1),
                timestamp_ms: Some(4)
            }]
        );

        let found = client
            .offsets_for_time(query(4))
            .await
            .expect("OffsetsForTime succeeds");
        assert_eq!(
            found.into_inner().partitions[0].offset,
            Some(1),
            "an exact match counts"
        );

        let found = client
            .offsets_for_time(query(9))
            .await
            .expect("OffsetsForTime succeeds");
        assert_eq!(
            found.into_inner().partitions,
            vec![PartitionOffset {
                partition: 0,
                offset: None,
                timestamp_ms: None
            }]
        );

        let negative = client.offsets_for_time(query(-1)).await.expect_err("negative time");
        assert_eq!(negative.code(), Code::InvalidArgument);
    });
}

#[test]
fn create_list_and_delete_topic() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;

        let request = CreateTopicRequest {
            name: "orders".to_string(),
            partitions: 3,
            configs: HashMap::from([("retention.ms".to_string(), "86400000".to_string())]),
        };
        let created = client.create_topic(request).await.expect("CreateTopic succeeds");
        let created = created.into_inner().topic.expect("the new topic");
        assert_eq!(created.name, "orders");
        assert_eq!(created.partitions.len(), 3);
        assert_eq!(created.configs["retention.ms"], "86400000");

        produce(&mut client, "orders", Some(2), vec![record(None, "x", None)])
            .await
            .expect("Produce succeeds");
        let listed = client
            .list_topics(ListTopicsRequest {})
            .await
            .expect("ListTopics succeeds")
            .into_inner();
        let orders = listed
            .topics
            .iter()
            .find(|topic| topic.name == "orders")
            .expect("orders is listed");
        assert_eq!(orders.id, created.id);
        assert!(!orders.internal);
        assert_eq!(
            orders.partitions[2],
            PartitionInfo {
                partition: 2,
                log_start_offset: 0,
                high_watermark: 1
            }
        );

        // A partition count of 0 takes the broker's num_partitions, 1 in tests.
        create_topic(&mut client, "defaults", 0).await;
        let listed = client
            .list_topics(ListTopicsRequest {})
            .await
            .expect("ListTopics succeeds");
        let names: Vec<String> = listed.into_inner().topics.into_iter().map(|topic| topic.name).collect();
        assert_eq!(names, vec!["defaults".to_string(), "orders".to_string()]);

        client
            .delete_topic(DeleteTopicRequest { name: "orders".into() })
            .await
            .expect("DeleteTopic succeeds");
        let listed = client
            .list_topics(ListTopicsRequest {})
            .await
            .expect("ListTopics succeeds");
        let names: Vec<String> = listed.into_inner().topics.into_iter().map(|topic| topic.name).collect();
        assert_eq!(names, vec!["defaults".to_string()]);
    });
}

#[test]
fn errors_map_to_status_codes() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "exists", 2).await;

        let missing = subscribe(&mut client, "missing", vec![], Start::Earliest(StartEarliest {}))
            .await
            .expect_err("unknown topic");
        assert_eq!(missing.code(), Code::NotFound);
        assert!(missing.message().contains("\"missing\""), "{}", missing.message());

        let missing = client
            .offsets_for_time(OffsetsForTimeRequest {
                topic: "missing".into(),
                timestamp_ms: 0,
            })
            .await
            .expect_err("unknown topic");
        assert_eq!(missing.code(), Code::NotFound);

        let missing = client
            .delete_topic(DeleteTopicRequest { name: "missing".into() })
            .await
            .expect_err("unknown topic");
        assert_eq!(missing.code(), Code::NotFound);

        let request = CreateTopicRequest {
            name: "has space".into(),
            partitions: 1,
            configs: HashMap::new(),
        };
        let invalid = client.create_topic(request).await.expect_err("invalid name");
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert!(invalid.message().contains("has space"), "{}", invalid.message());

        let invalid = produce(&mut client, "bad/name", None, vec![record(None, "v", None)])
            .await
            .expect_err("invalid name");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let request = CreateTopicRequest {
            name: "exists".into(),
            partitions: 1,
            configs: HashMap::new(),
        };
        let exists = client.create_topic(request).await.expect_err("existing topic");
        assert_eq!(exists.code(), Code::AlreadyExists);

        let request = CreateTopicRequest {
            name: "configured".into(),
            partitions: 1,
            configs: HashMap::from([("retention.ms".to_string(), "forever".to_string())]),
        };
        let invalid = client.create_topic(request).await.expect_err("invalid setting");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let request = CreateTopicRequest {
            name: "negative".into(),
            partitions: -2,
            configs: HashMap::new(),
        };
        let invalid = client
            .create_topic(request)
            .await
            .expect_err("negative partition count");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let invalid = produce(&mut client, "exists", Some(2), vec![record(None, "v", None)])
            .await
            .expect_err("no partition 2");
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert!(invalid.message().contains("partition 2"), "{}", invalid.message());

        let invalid = produce(&mut client, "exists", None, vec![])
            .await
            .expect_err("no records");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let mut doubled = record(None, "v", None);
        doubled.headers = vec![
            Header {
                key: "h".into(),
                value: None,
            },
            Header {
                key: "h".into(),
                value: None,
            },
        ];
        let invalid = produce(&mut client, "exists", None, vec![doubled])
            .await
            .expect_err("repeated header key");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let invalid = subscribe(&mut client, "exists", vec![5], Start::Earliest(StartEarliest {}))
            .await
            .expect_err("no partition 5");
        assert_eq!(invalid.code(), Code::InvalidArgument);

        let out_of_range = subscribe(&mut client, "exists", vec![], Start::Offset(7))
            .await
            .expect_err("offset past the end");
        assert_eq!(out_of_range.code(), Code::OutOfRange);
    });
}

#[test]
fn produce_without_auto_create_is_not_found() {
    run(async {
        let node = start_node_with(|config| config.auto_create_topics = false).await;
        let mut client = connect(&node).await;
        let missing = produce(&mut client, "missing", None, vec![record(None, "v", None)])
            .await
            .expect_err("unknown topic");
        assert_eq!(missing.code(), Code::NotFound);
    });
}

#[test]
fn deleting_topic_ends_subscription() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "doomed", 1).await;
        let mut stream = subscribe(&mut client, "doomed", vec![], Start::Latest(StartLatest {}))
            .await
            .expect("Subscribe succeeds");

        client
            .delete_topic(DeleteTopicRequest { name: "doomed".into() })
            .await
            .expect("DeleteTopic succeeds");
        let ended = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("the stream ends within the wait");
        assert_eq!(ended.expect_err("the stream fails").code(), Code::NotFound);
    });
}

#[test]
fn stop_ends_open_subscription() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "open", 1).await;
        let mut stream = subscribe(&mut client, "open", vec![], Start::Latest(StartLatest {}))
            .await
            .expect("Subscribe succeeds");

        tokio::time::timeout(WAIT, node.node.stop())
            .await
            .expect("stop does not wait for the subscriber")
            .expect("clean stop");
        let ended = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("the stream ends within the wait");
        assert!(matches!(ended, Ok(None)), "expected a clean end, got {ended:?}");
    });
}

#[test]
fn grpc_record_is_readable_over_kafka() {
    run(async {
        let node = start_node().await;
        let mut client = connect(&node).await;
        create_topic(&mut client, "shared", 1).await;
        let mut sent = record(Some("user-7"), "hello kafka", Some(42));
        sent.headers = vec![Header {
            key: "origin".into(),
            value: Some(b"grpc".to_vec()),
        }];
        produce(&mut client, "shared", Some(0), vec![sent])
            .await
            .expect("Produce succeeds");

        let mut kafka = Client::connect(&node.address()).await;
        let partition = fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1024 * 1024);
        let topic = fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("shared")))
            .with_partitions(vec![partition]);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1024 * 1024)
            .with_topics(vec![topic]);
        let ResponseKind::Fetch(response) = kafka.send(12, RequestKind::Fetch(request)).await else {
            panic!("expected a Fetch response");
        };
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        let mut records = data.records.clone().expect("records");
        let batch = RecordBatchDecoder::decode(&mut records).expect("a valid batch");
        assert_eq!(batch.records.len(), 1);
        let stored = &batch.records[0];
        assert_eq!(stored.offset, 0);
        assert_eq!(stored.timestamp, 42);
        assert_eq!(stored.key.as_deref(), Some(&b"user-7"[..]));
        assert_eq!(stored.value.as_deref(), Some(&b"hello kafka"[..]));
        let origin = stored.headers.get(&b"origin"[..]).expect("the origin header");
        assert_eq!(origin.as_deref(), Some(&b"grpc"[..]));
    });
}
