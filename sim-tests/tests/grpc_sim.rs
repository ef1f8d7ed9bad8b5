//! The gRPC API of the real broker on a madsim node, called from another node through
//! madsim-tonic: create a topic, produce, subscribe from earliest and follow a record
//! produced while the stream is open. madsim-tonic passes messages as values, so this
//! checks the service and its waits, not the protobuf encoding.
//!
//! Run: `RUSTFLAGS="--cfg madsim" cargo test -p sim-tests --test grpc_sim`.

#![cfg(madsim)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use franz_core::SimDisk;
use franz_net::grpc::franz_client::FranzClient;
use franz_net::grpc::subscribe_request::Start;
use franz_net::grpc::{CreateTopicRequest, ProduceRecord, ProduceRequest, StartEarliest, SubscribeRequest};
use franz_server::ServerConfig;
use sim_tests::SimClock;

const BROKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1));
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2));
/// Maximum simulated wait for one stream message.
const WAIT: Duration = Duration::from_secs(5);

fn value_record(value: &str) -> ProduceRecord {
    ProduceRecord {
        key: None,
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

fn produce_request(value: &str) -> ProduceRequest {
    ProduceRequest {
        topic: "events".into(),
        partition: Some(0),
        records: vec![value_record(value)],
    }
}

#[madsim::test]
async fn grpc_subscribe_follows_produce() {
    let handle = madsim::runtime::Handle::current();
    let disk = SimDisk::new(madsim::rand::random());
    handle
        .create_node()
        .name("broker")
        .ip(BROKER_IP)
        .init(move || {
            let disk = disk.clone();
            async move {
                let config = ServerConfig {
                    listener: "10.0.1.1:9092".into(),
                    grpc_listener: "10.0.1.1:9093".into(),
                    data_dir: "/data".into(),
                    ..ServerConfig::default()
                };
                let node = franz_server::start(config, disk, Arc::new(SimClock::new()))
                    .await
                    .expect("the broker starts");
                std::future::pending::<()>().await;
                drop(node);
            }
        })
        .build();

    let client = handle.create_node().name("client").ip(CLIENT_IP).build();
    let values = client
        .spawn(async {
            madsim::time::sleep(Duration::from_millis(100)).await;
            let mut client = FranzClient::connect("http://10.0.1.1:9093").await.expect("connect");
            let create = CreateTopicRequest {
                name: "events".into(),
                partitions: 1,
                configs: HashMap::new(),
            };
            client.create_topic(create).await.expect("CreateTopic succeeds");
            for value in ["a", "b"] {
                client.produce(produce_request(value)).await.expect("Produce succeeds");
            }

            let request = SubscribeRequest {
                topic: "events".into(),
                partitions: vec![],
                start: Some(Start::Earliest(StartEarliest {})),
            };
            let mut stream = client
                .subscribe(request)
                .await
                .expect("Subscribe succeeds")
                .into_inner();
            let mut values = Vec::new();
            for expected_offset in 0..3 {
                if expected_offset == 2 {
                    client.produce(produce_request("c")).await.expect("Produce succeeds");
                }
                let record = madsim::time::timeout(WAIT, stream.message())
                    .await
                    .expect("a record within the wait")
                    .expect("no stream error")
                    .expect("the stream is open");
                assert_eq!(record.offset, expected_offset);
                values.push(String::from_utf8(record.value.expect("a value")).expect("UTF-8"));
            }
            values
        })
        .await
        .expect("client task");
    assert_eq!(values, vec!["a", "b", "c"]);
}
