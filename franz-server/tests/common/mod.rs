//! A node started in the test process on a temporary data folder and a loopback port,
//! and a raw Kafka client that speaks through kafka-protocol's encoder and decoder.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use franz_core::{RealDisk, SystemClock};
use franz_net::frame;
use franz_server::{Node, ServerConfig};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::net::TcpStream;

/// A running node and the folder it keeps its data in.
pub struct TestNode {
    pub node: Node<RealDisk>,
    pub data_dir: tempfile::TempDir,
}

impl TestNode {
    pub fn address(&self) -> String {
        self.node.local_addr.to_string()
    }
}

/// Settings for a test node: ephemeral loopback ports for the Kafka and gRPC listeners and
/// the given data folder.
pub fn test_config(data_dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        listener: "127.0.0.1:0".to_string(),
        grpc_listener: "127.0.0.1:0".to_string(),
        data_dir: data_dir.to_path_buf(),
        group_initial_rebalance_delay_ms: 0,
        offsets_topic_num_partitions: 3,
        ..ServerConfig::default()
    }
}

pub async fn start_node() -> TestNode {
    start_node_with(|_| {}).await
}

pub async fn start_node_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestNode {
    let data_dir = tempfile::tempdir().expect("temporary folder");
    let mut config = test_config(data_dir.path());
    adjust(&mut config);
    let node = franz_server::start(config, RealDisk, Arc::new(SystemClock))
        .await
        .expect("node starts");
    TestNode { node, data_dir }
}

/// A connection that sends one request at a time.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub async fn connect(address: &str) -> Client {
        let stream = TcpStream::connect(address).await.expect("connect to the node");
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn send(&mut self, version: i16, request: RequestKind) -> ResponseKind {
        self.try_send(version, request).await.expect("a response")
    }

    /// Like [`Client::send`], but `None` when the broker closed the connection instead.
    pub async fn try_send(&mut self, version: i16, request: RequestKind) -> Option<ResponseKind> {
        let api_key = api_key_of(&request);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("franz-test")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, api_key.request_header_version(version))
            .expect("encode header");
        request.encode(&mut payload, version).expect("encode request");

        let mut response = self.send_raw(&payload).await?;
        let header = ResponseHeader::decode(&mut response, api_key.response_header_version(version))
            .expect("decode response header");
        assert_eq!(header.correlation_id, correlation_id, "responses come back in order");
        let body = ResponseKind::decode(api_key, &mut response, version).expect("decode response");
        assert!(
            !response.has_remaining(),
            "{api_key:?} v{version}: bytes left after the response"
        );
        Some(body)
    }

    /// Sends a raw frame payload; returns the response payload, or `None` when the broker
    /// closed the connection.
    pub async fn send_raw(&mut self, payload: &[u8]) -> Option<Bytes> {
        frame::write_frame(&mut self.stream, payload).await.ok()?;
        self.read_raw().await
    }

    pub async fn read_raw(&mut self) -> Option<Bytes> {
        match frame::read_frame(&mut self.stream, 64 * 1024 * 1024).await {
            Ok(Some(payload)) => Some(payload.freeze()),
            Ok(None) | Err(_) => None,
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

pub fn api_key_of(request: &RequestKind) -> ApiKey {
    match request {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
        RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::DescribeGroups(_) => ApiKey::DescribeGroups,
        RequestKind::ListGroups(_) => ApiKey::ListGroups,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::DeleteRecords(_) => ApiKey::DeleteRecords,
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        RequestKind::AlterConfigs(_) => ApiKey::AlterConfigs,
        RequestKind::CreatePartitions(_) => ApiKey::CreatePartitions,
        RequestKind::DeleteGroups(_) => ApiKey::DeleteGroups,
        RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        RequestKind::OffsetDelete(_) => ApiKey::OffsetDelete,
        RequestKind::DescribeCluster(_) => ApiKey::DescribeCluster,
        other => panic!("the test client does not send {other:?}"),
    }
}

/// Encodes one batch of records with the given values; the producer id, epoch and base
/// sequence are set when `producer` is given.
pub fn batch(values: &[&[u8]], producer: Option<(i64, i16, i32)>) -> Bytes {
    let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(index, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: if base_sequence < 0 {
                index as i32 - 1
            } else {
                base_sequence + index as i32
            },
            timestamp: 1_000 + index as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.freeze()
}

/// Runs a test body on a current-thread runtime with the IO and time drivers.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}
