//! The real broker on a madsim node with the simulated disk: producers on another node
//! send with acks=all to a topic that syncs every append, the broker node is killed at a
//! random moment, its disk loses what was not synced, and the node restarts. Every
//! produce that was acknowledged must then be readable at its offset with its value.
//!
//! Run: `RUSTFLAGS="--cfg madsim" cargo test -p sim-tests --test broker_crash`. Replay one
//! seed with `MADSIM_TEST_SEED=<seed>` in front of that command.

#![cfg(madsim)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use franz_core::{SimDisk, SimDiskFaults};
use franz_server::ServerConfig;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sim_tests::kafka::Connection;
use sim_tests::SimClock;

const BROKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const BROKER_ADDRESS: &str = "10.0.0.1:9092";
const TOPIC: &str = "events";
const PRODUCERS: u64 = 3;
const SENDS_PER_PRODUCER: u64 = 200;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn one_value_batch(value: u64) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::copy_from_slice(&value.to_be_bytes())),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).expect("encode batch");
    buf.freeze()
}

fn produce(value: u64) -> RequestKind {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(one_value_batch(value)));
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![partition])]),
    )
}

fn fetch(offset: i64) -> RequestKind {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1024 * 1024);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1024 * 1024)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(vec![partition])]),
    )
}

/// Sends values until done, reconnecting after errors. Returns nothing: acknowledged
/// `(value, offset)` pairs go into `acknowledged` as they arrive.
async fn run_producer(producer: u64, acknowledged: Arc<Mutex<Vec<(u64, i64)>>>) {
    let mut connection = None;
    for sequence in 0..SENDS_PER_PRODUCER {
        let value = producer << 32 | sequence;
        for _attempt in 0..50 {
            if connection.is_none() {
                connection = Connection::connect(BROKER_ADDRESS).await.ok();
            }
            let Some(open) = connection.as_mut() else {
                madsim::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            match open.send(ApiKey::Produce, 9, &produce(value)).await {
                Ok(ResponseKind::Produce(response)) => {
                    let partition = &response.responses[0].partition_responses[0];
                    if partition.error_code == 0 {
                        acknowledged.lock().unwrap().push((value, partition.base_offset));
                        break;
                    }
                    madsim::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    // Unknown outcome: the value may or may not be stored; only
                    // acknowledged values are checked.
                    connection = None;
                    madsim::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Reads the whole partition and returns the value stored at each offset.
async fn read_everything(seed: u64) -> BTreeMap<i64, u64> {
    let mut stored = BTreeMap::new();
    let mut connection = None;
    let mut offset = 0;
    for _round in 0..10_000 {
        if connection.is_none() {
            connection = Connection::connect(BROKER_ADDRESS).await.ok();
            if connection.is_none() {
                madsim::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let response = connection
            .as_mut()
            .unwrap()
            .send(ApiKey::Fetch, 12, &fetch(offset))
            .await;
        let Ok(ResponseKind::Fetch(response)) = response else {
            connection = None;
            continue;
        };
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "seed {seed}: fetch at offset {offset} failed");
        let mut records = partition.records.clone().unwrap_or_default();
        if records.is_empty() {
            assert_eq!(
                offset, partition.high_watermark,
                "seed {seed}: empty fetch below the high watermark"
            );
            return stored;
        }
        for batch in RecordBatchDecoder::decode_all(&mut records).expect("stored batches decode") {
            for record in batch.records {
                let value = record.value.expect("every record has a value");
                let value = u64::from_be_bytes(value[..].try_into().expect("8-byte values"));
                stored.insert(record.offset, value);
                offset = record.offset + 1;
            }
        }
    }
    panic!("seed {seed}: reading the partition did not finish");
}

#[madsim::test]
async fn acknowledged_produces_survive_broker_crash() {
    let seed: u64 = madsim::rand::random();
    let handle = madsim::runtime::Handle::current();
    let faults = SimDiskFaults {
        max_io_delay: Duration::from_micros(500),
        ..SimDiskFaults::default()
    };
    let disk = SimDisk::with_faults(seed, faults);

    let broker_disk = disk.clone();
    let broker = handle
        .create_node()
        .name("broker")
        .ip(BROKER_IP)
        .init(move || {
            let disk = broker_disk.clone();
            async move {
                let mut config = ServerConfig {
                    listener: BROKER_ADDRESS.to_string(),
                    data_dir: "/data".into(),
                    ..ServerConfig::default()
                };
                config.topic_defaults.insert("flush.messages".into(), "1".into());
                config.topic_defaults.insert("segment.bytes".into(), "8192".into());
                // The simulated disk keeps files in memory, and an active segment's
                // indexes are as large as segment.index.bytes (10 MiB by default).
                config
                    .topic_defaults
                    .insert("segment.index.bytes".into(), "4096".into());
                let node = franz_server::start(config, disk, Arc::new(SimClock::new()))
                    .await
                    .expect("the broker starts");
                std::future::pending::<()>().await;
                drop(node);
            }
        })
        .build();

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let client = handle.create_node().name("client").ip(CLIENT_IP).build();
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let acknowledged = acknowledged.clone();
        producers.push(client.spawn(run_producer(producer, acknowledged)));
    }

    let crash_after = Duration::from_millis(20 + madsim::rand::random::<u64>() % 400);
    madsim::time::sleep(crash_after).await;
    handle.kill(broker.id());
    disk.crash();
    let acknowledged_at_crash = acknowledged.lock().unwrap().len();
    madsim::time::sleep(Duration::from_millis(100)).await;
    handle.restart(broker.id());

    for producer in producers {
        producer.await.expect("producer task");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored = client.spawn(read_everything(seed)).await.expect("reader task");

    for (value, offset) in &acknowledged {
        assert_eq!(
            stored.get(offset),
            Some(value),
            "seed {seed}: acknowledged value {value:#x} at offset {offset} is lost or replaced"
        );
    }
    tracing::info!(
        seed,
        acknowledged = acknowledged.len(),
        acknowledged_at_crash,
        stored = stored.len(),
        "broker crash check passed"
    );
}
