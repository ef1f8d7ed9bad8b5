//! The broker over real loopback sockets, spoken to with raw Kafka requests: every
//! advertised API version, bad input, idempotent producers, long polling and restarts.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, run, start_node, start_node_with, test_config, Client};
use franz_core::{RealDisk, SystemClock};
use franz_server::kafka::versions::SUPPORTED;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

// The broker's binary guards against requests that declare huge arrays; the test process
// needs the same allocator for the test that sends one.
#[global_allocator]
static ALLOCATOR: franz_net::alloc::GuardedAllocator = franz_net::alloc::GuardedAllocator;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn produce_request(topic: &str, records: Bytes) -> RequestKind {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let topic = produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![partition]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![topic]),
    )
}

fn produce_partition(response: ResponseKind) -> produce_response::PartitionProduceResponse {
    let ResponseKind::Produce(response) = response else {
        panic!("expected a Produce response, got {response:?}");
    };
    response.responses[0].partition_responses[0].clone()
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> RequestKind {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1024 * 1024);
    let topic = fetch_request::FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![partition]);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 * 1024 * 1024)
            .with_topics(vec![topic]),
    )
}

fn fetch_partition(response: ResponseKind) -> fetch_response::PartitionData {
    let ResponseKind::Fetch(response) = response else {
        panic!("expected a Fetch response, got {response:?}");
    };
    response.responses[0].partitions[0].clone()
}

fn latest_offset_request(topic: &str) -> RequestKind {
    let partition = list_offsets_request::ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    let topic = list_offsets_request::ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![partition]);
    RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic]),
    )
}

async fn latest_offset(client: &mut Client, topic: &str) -> i64 {
    let ResponseKind::ListOffsets(response) = client.send(1, latest_offset_request(topic)).await else {
        panic!("expected a ListOffsets response");
    };
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

fn create_topic_request(topic: &str, partitions: i32, configs: &[(&str, &str)]) -> RequestKind {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(text(key))
                .with_value(Some(text(value)))
        })
        .collect();
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs);
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5000),
    )
}

/// A minimal valid request of `api_key` at `version`; `tag` keeps names unique per version.
fn sample_request(api_key: ApiKey, version: i16, tag: &str) -> RequestKind {
    let group = GroupId(text(&format!("group-{tag}")));
    match api_key {
        ApiKey::Produce => produce_request("sample", batch(&[b"value"], None)),
        ApiKey::Fetch => fetch_request("sample", 0, 0),
        ApiKey::ListOffsets => latest_offset_request("sample"),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("sample"))),
        ]))),
        ApiKey::OffsetCommit => {
            let partition = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1);
            let topic = offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("sample"))
                .with_partitions(vec![partition]);
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(group)
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![topic]),
            )
        }
        ApiKey::OffsetFetch if version >= 8 => {
            let topic = offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(name("sample"))
                .with_partition_indexes(vec![0]);
            let group = offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group)
                .with_topics(Some(vec![topic]));
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![group]))
        }
        ApiKey::OffsetFetch => {
            let topic = offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name("sample"))
                .with_partition_indexes(vec![0]);
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(group)
                    .with_topics(Some(vec![topic])),
            )
        }
        ApiKey::FindCoordinator if version >= 4 => {
            RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_coordinator_keys(vec![group.0.clone()]))
        }
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(group.0)),
        ApiKey::JoinGroup => {
            let protocol = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0\0\0"));
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(group)
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(text("consumer"))
                    .with_protocols(vec![protocol]),
            )
        }
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group)
                .with_member_id(text("nobody")),
        ),
        ApiKey::LeaveGroup if version >= 3 => {
            RequestKind::LeaveGroup(LeaveGroupRequest::default().with_group_id(group).with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(text("nobody")),
            ]))
        }
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(group)
                .with_member_id(text("nobody")),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group)
                .with_member_id(text("nobody")),
        ),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![group]))
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => create_topic_request(&format!("created-{tag}"), 2, &[]),
        ApiKey::DeleteTopics if version >= 6 => {
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name("nope"))),
            ]))
        }
        ApiKey::DeleteTopics => {
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topic_names(vec![name("nope")]))
        }
        ApiKey::DeleteRecords => {
            let partition = delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(0);
            let topic = delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("sample"))
                .with_partitions(vec![partition]);
            RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![topic]))
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        ),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("sample")),
        ]))
        }
        ApiKey::AlterConfigs => {
            let config = alter_configs_request::AlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_value(Some(text("3600000")));
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text("sample"))
                    .with_configs(vec![config]),
            ]))
        }
        ApiKey::IncrementalAlterConfigs => {
            let config = incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(text("7200000")));
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text("sample"))
                    .with_configs(vec![config]),
            ]))
        }
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(&format!("created-{tag}")))
                .with_count(3),
        ]))
        }
        ApiKey::DeleteGroups => {
            RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![group]))
        }
        ApiKey::OffsetDelete => {
            RequestKind::OffsetDelete(OffsetDeleteRequest::default().with_group_id(group).with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(name("sample"))
                    .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default()]),
            ]))
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        other => panic!("no sample request for {other:?}"),
    }
}

#[test]
fn every_advertised_version_answers() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        // CreatePartitions grows the topic that CreateTopics made with the same tag, so
        // CreateTopics must come first; SUPPORTED lists it first.
        for (api_key, min, max) in SUPPORTED {
            for version in *min..=*max {
                let tag = format!("v{version}");
                let request = sample_request(*api_key, version, &tag);
                let response = client.try_send(version, request).await;
                assert!(response.is_some(), "{api_key:?} v{version} closed the connection");
            }
        }
        node.node.stop().await.expect("clean stop");
    });
}

#[test]
fn api_versions_lists_supported_apis() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let ResponseKind::ApiVersions(response) = client.send(3, RequestKind::ApiVersions(Default::default())).await
        else {
            panic!("expected ApiVersions");
        };
        assert_eq!(response.error_code, 0);
        assert_eq!(response.api_keys.len(), SUPPORTED.len());
        let produce = response
            .api_keys
            .iter()
            .find(|key| key.api_key == ApiKey::Produce as i16);
        // Produce is listed from v0 for old librdkafka, but v0-v2 requests are rejected.
        assert_eq!(produce.map(|key| (key.min_version, key.max_version)), Some((0, 12)));
    });
}

/// Builds a raw request payload: header v1 (key, version, correlation id, client id)
/// followed by `body`.
fn raw_request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> BytesMut {
    let mut payload = BytesMut::new();
    payload.put_i16(api_key);
    payload.put_i16(version);
    payload.put_i32(correlation_id);
    payload.put_i16(-1); // null client id
    payload.extend_from_slice(body);
    payload
}

#[test]
fn api_versions_unknown_version_answers_v0() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let response = client
            .send_raw(&raw_request(ApiKey::ApiVersions as i16, 99, 7, &[]))
            .await
            .expect("a response");
        let mut body = response.clone();
        let header = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).expect("header");
        assert_eq!(header.correlation_id, 7);
        let decoded =
            <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).expect("v0 body");
        assert_eq!(decoded.error_code, ResponseError::UnsupportedVersion.code());
        assert!(!decoded.api_keys.is_empty());
    });
}

#[test]
fn unknown_api_key_gets_unsupported_version() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let response = client
            .send_raw(&raw_request(9999, 0, 11, &[]))
            .await
            .expect("a response");
        let mut expected = BytesMut::new();
        expected.put_i32(11);
        expected.put_i16(ResponseError::UnsupportedVersion.code());
        assert_eq!(&response[..], &expected[..]);

        // The connection stays usable.
        let next = client.try_send(0, RequestKind::ApiVersions(Default::default())).await;
        assert!(next.is_some());
    });
}

#[test]
fn unsupported_version_answers_then_closes() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let response = client
            .send_raw(&raw_request(ApiKey::Produce as i16, 2, 5, &[0; 16]))
            .await
            .expect("a response");
        assert_eq!(&response[4..6], &ResponseError::UnsupportedVersion.code().to_be_bytes());
        assert!(client.read_raw().await.is_none(), "the connection is closed");
    });
}

#[test]
fn malformed_requests_close_only_their_connection() {
    run(async {
        let node = start_node_with(|config| config.socket_request_max_bytes = 4096).await;
        let bad_requests: Vec<BytesMut> = vec![
            // Shorter than a header.
            BytesMut::from(&[0u8, 3, 0][..]),
            // Metadata v1 whose topic array runs past the end.
            raw_request(ApiKey::Metadata as i16, 1, 1, &[0, 0, 0, 5, 0]),
            // Metadata v0 that declares 2^31 - 1 topics in five bytes.
            raw_request(ApiKey::Metadata as i16, 0, 1, &[0x7f, 0xff, 0xff, 0xff, 0]),
            // Produce v9 with a compact array that declares 2^32 - 2 topics.
            raw_request(ApiKey::Produce as i16, 9, 1, &[0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for payload in bad_requests {
            let mut client = Client::connect(&node.address()).await;
            assert!(client.send_raw(&payload).await.is_none(), "closed after {payload:?}");
        }

        // A frame over socket.request.max.bytes closes the connection before its body.
        let mut client = Client::connect(&node.address()).await;
        use tokio::io::AsyncWriteExt;
        client
            .stream()
            .write_all(&100_000i32.to_be_bytes())
            .await
            .expect("write size");
        assert!(client.read_raw().await.is_none(), "closed after an oversized frame");

        // The broker still serves new connections.
        let mut client = Client::connect(&node.address()).await;
        let response = client.try_send(3, RequestKind::ApiVersions(Default::default())).await;
        assert!(response.is_some());
    });
}

#[test]
fn invalid_topic_name_is_rejected() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let partition = produce_partition(client.send(9, produce_request("bad name!", batch(&[b"v"], None))).await);
        assert_eq!(partition.error_code, ResponseError::InvalidTopicException.code());

        let ResponseKind::CreateTopics(created) = client.send(7, create_topic_request("a/b", 1, &[])).await else {
            panic!("expected CreateTopics");
        };
        assert_eq!(
            created.topics[0].error_code,
            ResponseError::InvalidTopicException.code()
        );
    });
}

#[test]
fn corrupt_batch_is_not_appended() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let mut records = BytesMut::from(&batch(&[b"first"], None)[..]);
        let last = records.len() - 1;
        records[last] ^= 0x01;
        let partition = produce_partition(client.send(9, produce_request("crc", records.freeze())).await);
        assert_eq!(partition.error_code, ResponseError::CorruptMessage.code());
        assert_eq!(latest_offset(&mut client, "crc").await, 0);
    });
}

#[test]
fn max_message_bytes_is_enforced() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let at_limit = batch(&[&[7u8; 500]], None);
        let limit = at_limit.len().to_string();
        let ResponseKind::CreateTopics(created) = client
            .send(7, create_topic_request("limited", 1, &[("max.message.bytes", &limit)]))
            .await
        else {
            panic!("expected CreateTopics");
        };
        assert_eq!(created.topics[0].error_code, 0);

        let accepted = produce_partition(client.send(9, produce_request("limited", at_limit)).await);
        assert_eq!(accepted.error_code, 0);
        let over = batch(&[&[7u8; 501]], None);
        let rejected = produce_partition(client.send(9, produce_request("limited", over)).await);
        assert_eq!(rejected.error_code, ResponseError::MessageTooLarge.code());
        assert_eq!(latest_offset(&mut client, "limited").await, 1);
    });
}

#[test]
fn idempotent_retry_is_stored_once() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let ResponseKind::InitProducerId(init) = client.send(4, RequestKind::InitProducerId(request)).await else {
            panic!("expected InitProducerId");
        };
        assert_eq!(init.error_code, 0);
        let producer = (init.producer_id.0, init.producer_epoch);

        let first = batch(&[b"a", b"b", b"c"], Some((producer.0, producer.1, 0)));
        let stored = produce_partition(client.send(9, produce_request("idem", first.clone())).await);
        assert_eq!((stored.error_code, stored.base_offset), (0, 0));
        let retried = produce_partition(client.send(9, produce_request("idem", first)).await);
        assert_eq!((retried.error_code, retried.base_offset), (0, 0));
        assert_eq!(latest_offset(&mut client, "idem").await, 3);

        let gap = batch(&[b"e"], Some((producer.0, producer.1, 5)));
        let rejected = produce_partition(client.send(9, produce_request("idem", gap)).await);
        assert_eq!(rejected.error_code, ResponseError::OutOfOrderSequenceNumber.code());

        let next = batch(&[b"d"], Some((producer.0, producer.1, 3)));
        let accepted = produce_partition(client.send(9, produce_request("idem", next)).await);
        assert_eq!((accepted.error_code, accepted.base_offset), (0, 3));
    });
}

#[test]
fn waiting_fetch_wakes_on_produce() {
    run(async {
        let node = start_node().await;
        let address = node.address();
        let mut producer = Client::connect(&address).await;
        let created = produce_partition(producer.send(9, produce_request("poll", batch(&[b"zero"], None))).await);
        assert_eq!(created.error_code, 0);

        let fetcher = tokio::spawn(async move {
            let mut consumer = Client::connect(&address).await;
            fetch_partition(consumer.send(12, fetch_request("poll", 1, 60_000)).await)
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let appended = produce_partition(producer.send(9, produce_request("poll", batch(&[b"one"], None))).await);
        assert_eq!(appended.base_offset, 1);

        let data = fetcher.await.expect("fetch task");
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 2);
        assert!(
            !data.records.unwrap_or_default().is_empty(),
            "the waiting fetch returned the new record"
        );
    });
}

#[test]
fn data_and_commits_survive_restart() {
    run(async {
        let node = start_node().await;
        let data_dir = node.data_dir;
        let mut client = Client::connect(&node.node.local_addr.to_string()).await;
        let produced = produce_partition(
            client
                .send(9, produce_request("kept", batch(&[b"a", b"b"], None)))
                .await,
        );
        assert_eq!(produced.error_code, 0);
        let ResponseKind::OffsetCommit(committed) = client
            .send(
                8,
                RequestKind::OffsetCommit(
                    OffsetCommitRequest::default()
                        .with_group_id(GroupId(text("keeper")))
                        .with_generation_id_or_member_epoch(-1)
                        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(name("kept"))
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(1)
                                    .with_committed_metadata(Some(text("note"))),
                            ])]),
                ),
            )
            .await
        else {
            panic!("expected OffsetCommit");
        };
        assert_eq!(committed.topics[0].partitions[0].error_code, 0);
        drop(client);
        node.node.stop().await.expect("clean stop");

        let config = test_config(data_dir.path());
        let restarted = franz_server::start(config, RealDisk, Arc::new(SystemClock))
            .await
            .expect("restart");
        let mut client = Client::connect(&restarted.local_addr.to_string()).await;
        assert_eq!(latest_offset(&mut client, "kept").await, 2);
        let ResponseKind::OffsetFetch(fetched) = client
            .send(
                7,
                RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(text("keeper")))
                        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(name("kept"))
                            .with_partition_indexes(vec![0])])),
                ),
            )
            .await
        else {
            panic!("expected OffsetFetch");
        };
        let partition = &fetched.topics[0].partitions[0];
        assert_eq!(partition.committed_offset, 1);
        assert_eq!(partition.metadata.as_ref().map(|m| m.as_str()), Some("note"));
        restarted.stop().await.expect("clean stop");
    });
}

#[test]
fn acks_zero_gets_no_response() {
    run(async {
        let node = start_node().await;
        let mut client = Client::connect(&node.address()).await;
        let RequestKind::Produce(request) = produce_request("quiet", batch(&[b"a", b"b"], None)) else {
            unreachable!("produce_request builds a Produce request");
        };
        let mut payload = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(100);
        use kafka_protocol::protocol::Encodable;
        header
            .encode(&mut payload, ApiKey::Produce.request_header_version(9))
            .expect("header");
        request.with_acks(0).encode(&mut payload, 9).expect("body");
        franz_net::frame::write_frame(client.stream(), &payload)
            .await
            .expect("send");

        // The next response on the connection belongs to the next request: the produce
        // had none. Client::send checks the correlation id.
        assert_eq!(latest_offset(&mut client, "quiet").await, 2);
    });
}
