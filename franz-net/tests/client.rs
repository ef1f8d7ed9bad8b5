//! The client library against a real broker started in the test process on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franz_core::batch::BatchHeader;
use franz_core::{RealDisk, SystemClock};
use franz_net::client::admin::{Admin, ConfigChange, EARLIEST, LATEST};
use franz_net::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use franz_net::client::producer::{Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::{ClientConfig, Cluster};
use franz_server::ServerConfig;

struct TestBroker {
    node: franz_server::Node<RealDisk>,
    _data_dir: tempfile::TempDir,
}

async fn start_broker() -> TestBroker {
    let data_dir = tempfile::tempdir().expect("temporary folder");
    let config = ServerConfig {
        listener: "127.0.0.1:0".to_string(),
        grpc_listener: "127.0.0.1:0".to_string(),
        data_dir: data_dir.path().to_path_buf(),
        group_initial_rebalance_delay_ms: 0,
        offsets_topic_num_partitions: 3,
        ..ServerConfig::default()
    };
    let node = franz_server::start(config, RealDisk, Arc::new(SystemClock))
        .await
        .expect("broker starts");
    TestBroker {
        node,
        _data_dir: data_dir,
    }
}

async fn cluster(broker: &TestBroker) -> Arc<Cluster> {
    Cluster::connect(ClientConfig::new([broker.node.local_addr.to_string()]))
        .await
        .expect("client connects")
}

fn record(key: Option<&str>, value: &str) -> ProducerRecord {
    ProducerRecord {
        key: key.map(|key| Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Vec::new(),
        timestamp: None,
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Reads the stored batch headers of one partition from its first offset.
async fn stored_batches(cluster: &Arc<Cluster>, topic: &str, partition: i32) -> Vec<BatchHeader> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let leader = cluster.leader(topic, partition).await.expect("leader");
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(64 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_partition_max_bytes(64 * 1024 * 1024)])]);
    let (response, _) = cluster.send_to(&leader, request, 4, 12).await.expect("fetch");
    let records = response.responses[0].partitions[0].records.clone().unwrap_or_default();
    let mut headers = Vec::new();
    let mut position = 0;
    while position < records.len() {
        let header = BatchHeader::parse(&records[position..]).expect("batch header");
        position += header.size();
        headers.push(header);
    }
    headers
}

#[test]
fn producer_batches_within_linger() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("batched", 1, &BTreeMap::new())
            .await
            .expect("create");
        let config = ProducerConfig {
            linger: Duration::from_millis(50),
            batch_size: 1024 * 1024,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(cluster.clone(), config).await.expect("producer");
        let mut deliveries = Vec::new();
        for n in 0..1_000 {
            deliveries.push(
                producer
                    .send("batched", None, record(None, &format!("m{n}")))
                    .await
                    .expect("queued"),
            );
        }
        let mut offsets = Vec::new();
        for delivery in deliveries {
            offsets.push(delivery.wait().await.expect("delivered").offset);
        }
        assert_eq!(offsets, (0..1_000).collect::<Vec<i64>>());
        producer.close().await;

        let batches = stored_batches(&cluster, "batched", 0).await;
        assert!(
            batches.len() < 20,
            "1,000 records queued at once became {} batches",
            batches.len()
        );
        // Idempotence is on by default: one producer id, sequences follow the offsets.
        let producer_id = batches[0].producer_id;
        assert!(producer_id >= 0);
        for batch in &batches {
            assert_eq!(batch.producer_id, producer_id);
            assert_eq!(i64::from(batch.base_sequence), batch.base_offset);
        }
    });
}

#[test]
fn producer_splits_at_batch_size() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        let config = ProducerConfig {
            linger: Duration::from_secs(10),
            batch_size: 1_000,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(cluster.clone(), config).await.expect("producer");
        let value = "x".repeat(100);
        let mut deliveries = Vec::new();
        for _ in 0..50 {
            deliveries.push(
                producer
                    .send("sized", Some(0), record(None, &value))
                    .await
                    .expect("queued"),
            );
        }
        // A full batch is sent without waiting for the 10 s linger.
        let first = tokio::time::timeout(Duration::from_secs(5), deliveries.remove(0).wait()).await;
        assert!(first.is_ok(), "a full batch was not sent before the linger expired");
        producer.close().await;
        let batches = stored_batches(&cluster, "sized", 0).await;
        assert!(
            batches.len() >= 5,
            "50 records of 100 bytes in 1,000-byte batches became {}",
            batches.len()
        );
    });
}

#[test]
fn keyed_records_follow_the_java_partitioner() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("keyed", 6, &BTreeMap::new())
            .await
            .expect("create");
        let producer = Producer::new(cluster.clone(), ProducerConfig::default())
            .await
            .expect("producer");
        for key in ["21", "foobar", "abc"] {
            let delivery = producer
                .send("keyed", None, record(Some(key), "v"))
                .await
                .expect("queued");
            let stored = delivery.wait().await.expect("delivered");
            assert_eq!(
                stored.partition,
                franz_net::partitioner::partition_for_key(key.as_bytes(), 6)
            );
        }
        producer.close().await;
    });
}

#[test]
fn consumer_seeks_by_offset_and_time() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        let producer = Producer::new(cluster.clone(), ProducerConfig::default())
            .await
            .expect("producer");
        for (n, timestamp) in [2i64, 4, 6, 8].iter().enumerate() {
            let mut message = record(None, &format!("at-{timestamp}"));
            message.timestamp = Some(*timestamp);
            let delivery = producer.send("times", Some(0), message).await.expect("queued");
            assert_eq!(delivery.wait().await.expect("delivered").offset, n as i64);
        }
        producer.close().await;

        let admin = Admin::new(cluster.clone());
        assert_eq!(admin.list_offsets("times", 3).await.expect("by time")[&0], 1);
        assert_eq!(admin.list_offsets("times", 9).await.expect("past the end")[&0], -1);
        assert_eq!(admin.list_offsets("times", EARLIEST).await.expect("earliest")[&0], 0);
        assert_eq!(admin.list_offsets("times", LATEST).await.expect("latest")[&0], 4);

        let mut consumer = Consumer::new(cluster.clone(), ConsumerConfig::default());
        consumer.assign(&[("times".to_string(), 0)]);
        consumer.seek_to_time("times", 5).await.expect("seek to time");
        let messages = consumer.poll(Duration::from_secs(2)).await.expect("poll");
        let values: Vec<_> = messages
            .iter()
            .map(|message| message.record.value.clone().unwrap())
            .collect();
        assert_eq!(values, vec![Bytes::from_static(b"at-6"), Bytes::from_static(b"at-8")]);

        consumer.seek("times", 0, 3);
        let messages = consumer.poll(Duration::from_secs(2)).await.expect("poll");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].record.offset, 3);
    });
}

#[test]
fn group_members_share_and_commit() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        let admin = Admin::new(cluster.clone());
        admin.create_topic("shared", 4, &BTreeMap::new()).await.expect("create");
        let producer = Producer::new(cluster.clone(), ProducerConfig::default())
            .await
            .expect("producer");
        for partition in 0..4 {
            for n in 0..10 {
                let delivery = producer
                    .send("shared", Some(partition), record(None, &format!("{partition}-{n}")))
                    .await
                    .expect("queued");
                delivery.wait().await.expect("delivered");
            }
        }
        producer.close().await;

        let config = ConsumerConfig {
            group_id: Some("sharers".to_string()),
            offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut first = Consumer::new(cluster.clone(), config.clone());
        first.subscribe(&["shared".to_string()]).expect("subscribe");
        let mut seen = Vec::new();
        // Alone in the group, the first member gets every partition.
        for _ in 0..20 {
            seen.extend(first.poll(Duration::from_millis(200)).await.expect("poll"));
            if seen.len() == 40 {
                break;
            }
        }
        assert_eq!(seen.len(), 40);
        assert_eq!(first.assignment().len(), 4);
        first.commit_async().await.expect("commit task").expect("async commit");
        first.close().await.expect("close");

        let committed = admin.committed_offsets("sharers", None).await.expect("offsets");
        for partition in 0..4 {
            assert_eq!(committed.get(&("shared".to_string(), partition)), Some(&10));
        }
        let description = admin.describe_group("sharers").await.expect("describe");
        assert_eq!(description.state, "Empty");

        admin
            .alter_topic_configs("shared", &[ConfigChange::Set("retention.ms".into(), "60000".into())])
            .await
            .expect("alter");
        let configs = admin.describe_topic_configs("shared").await.expect("configs");
        let retention = configs
            .iter()
            .find(|config| config.name == "retention.ms")
            .expect("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert!(retention.is_override);
    });
}

#[test]
fn failed_join_is_retried() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("rejoin", 2, &BTreeMap::new())
            .await
            .expect("create");
        let member = |assignor: &str| ConsumerConfig {
            group_id: Some("rejoiners".to_string()),
            offset_reset: OffsetReset::Earliest,
            assignors: vec![assignor.to_string()],
            ..ConsumerConfig::default()
        };
        let mut first = Consumer::new(cluster.clone(), member("range"));
        first.subscribe(&["rejoin".to_string()]).expect("subscribe");
        let (first, _) = poll_until(first, |assigned| assigned.len() == 2).await;
        assert_eq!(first.assignment().len(), 2);

        // The group uses range, which the second member does not offer: its join fails.
        let mut second = Consumer::new(cluster.clone(), member("cooperative-sticky"));
        second.subscribe(&["rejoin".to_string()]).expect("subscribe");
        let error = second
            .poll(Duration::from_millis(50))
            .await
            .expect_err("no protocol in common");
        assert_eq!(
            error.kafka_error(),
            Some(kafka_protocol::error::ResponseError::InconsistentGroupProtocol),
            "{error}"
        );
        assert_eq!(second.membership(), None);

        // Once the group is empty, the second member's next polls join it.
        first.close().await.expect("close");
        for _ in 0..100 {
            if second.assignment().len() == 2 {
                break;
            }
            let _ = second.poll(Duration::from_millis(50)).await;
        }
        assert_eq!(second.assignment().len(), 2, "the second member never joined again");
        assert!(second.membership().is_some());
    });
}

#[test]
fn lost_membership_drops_positions() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("lost", 1, &BTreeMap::new())
            .await
            .expect("create");
        let producer = Producer::new(cluster.clone(), ProducerConfig::default())
            .await
            .expect("producer");
        for n in 0..10 {
            let delivery = producer
                .send("lost", Some(0), record(None, &n.to_string()))
                .await
                .expect("queued");
            delivery.wait().await.expect("delivered");
        }
        producer.close().await;

        let config = ConsumerConfig {
            group_id: Some("losers".to_string()),
            offset_reset: OffsetReset::Earliest,
            auto_commit: false,
            assignors: vec!["cooperative-sticky".to_string()],
            ..ConsumerConfig::default()
        };
        let mut member = Consumer::new(cluster.clone(), config);
        member.subscribe(&["lost".to_string()]).expect("subscribe");
        let (mut member, values) = poll_until(member, |assigned| assigned.len() == 1).await;
        let mut read = values.len();
        for _ in 0..100 {
            if read == 10 {
                break;
            }
            read += member.poll(Duration::from_millis(50)).await.expect("poll").len();
        }
        assert_eq!(read, 10);
        member.commit().await.expect("commit");
        // The member's position now lies behind the group's commit, as a position does
        // when others committed the partition after the membership ended.
        member.seek("lost", 0, 3);

        // The coordinator removes the member, as a restarted coordinator loses it.
        let old = member.membership().expect("joined").0.to_string();
        let leave = kafka_protocol::messages::LeaveGroupRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId("losers".into()))
            .with_members(vec![
                kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                    .with_member_id(old.clone().into()),
            ]);
        let coordinator = cluster.coordinator("losers").await.expect("coordinator");
        let (left, _) = cluster.send_to(&coordinator, leave, 3, 4).await.expect("leave");
        assert_eq!(left.error_code, 0);

        // The rejected commit marks the membership as ended, so the member's next poll
        // joins again before it fetches.
        let rejected = member.commit().await.expect_err("the coordinator forgot the member");
        assert_eq!(
            rejected.kafka_error(),
            Some(kafka_protocol::error::ResponseError::UnknownMemberId),
            "{rejected}"
        );
        let mut reread = Vec::new();
        for _ in 0..100 {
            if member.membership().is_some_and(|(id, _)| id != old) {
                break;
            }
            if let Ok(messages) = member.poll(Duration::from_millis(50)).await {
                reread.extend(messages.into_iter().map(|message| message.record.offset));
            }
        }
        assert!(
            member.membership().is_some_and(|(id, _)| id != old),
            "the member never joined again"
        );
        assert_eq!(
            reread,
            Vec::<i64>::new(),
            "a new membership starts from the committed offset, not the old position"
        );
        assert_eq!(member.position("lost", 0), Some(10));
    });
}

#[test]
fn cancelled_join_is_retried() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("cancel", 2, &BTreeMap::new())
            .await
            .expect("create");
        let config = ConsumerConfig {
            group_id: Some("cancellers".to_string()),
            offset_reset: OffsetReset::Earliest,
            heartbeat_interval: Duration::from_millis(100),
            // The broker's minimum, because the cancelled join's member leaves the group
            // only when its session times out.
            session_timeout: Duration::from_secs(6),
            rebalance_timeout: Duration::from_secs(10),
            ..ConsumerConfig::default()
        };
        let mut first = Consumer::new(cluster.clone(), config.clone());
        first.subscribe(&["cancel".to_string()]).expect("subscribe");
        let (first, _) = poll_until(first, |assigned| assigned.len() == 2).await;

        // The coordinator delays the second member's JoinGroup until the first member
        // rejoins, which it does only when it polls, so the timeout drops the join.
        let mut second = Consumer::new(cluster.clone(), config);
        second.subscribe(&["cancel".to_string()]).expect("subscribe");
        let cancelled = tokio::time::timeout(Duration::from_millis(300), second.poll(Duration::from_millis(50))).await;
        assert!(cancelled.is_err(), "the join should wait for the first member");

        let counts = Arc::new(std::sync::Mutex::new([0usize; 2]));
        let poll_both = |mut consumer: Consumer, slot: usize, counts: Arc<std::sync::Mutex<[usize; 2]>>| async move {
            for _ in 0..200 {
                let _ = consumer.poll(Duration::from_millis(50)).await;
                let mut shared = counts.lock().unwrap();
                shared[slot] = consumer.assignment().len();
                if *shared == [1, 1] {
                    break;
                }
            }
            consumer
        };
        let first_task = tokio::spawn(poll_both(first, 0, counts.clone()));
        let second_task = tokio::spawn(poll_both(second, 1, counts.clone()));
        let first = first_task.await.expect("first member");
        let second = second_task.await.expect("second member");
        assert_eq!(first.assignment().len(), 1);
        assert_eq!(second.assignment().len(), 1, "the second member never joined again");
    });
}

#[test]
fn unreachable_broker_is_reported() {
    run(async {
        let config = ClientConfig {
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::new(["127.0.0.1:1"])
        };
        let error = Cluster::connect(config)
            .await
            .err()
            .expect("no broker listens on port 1");
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    });
}

/// Polls `consumer` until `done` holds for its assignment or 200 polls passed, and returns
/// it with the values it read.
async fn poll_until(mut consumer: Consumer, done: impl Fn(&[(String, i32)]) -> bool) -> (Consumer, Vec<String>) {
    let mut values = Vec::new();
    for _ in 0..200 {
        for message in consumer.poll(Duration::from_millis(50)).await.expect("poll") {
            values.push(String::from_utf8_lossy(&message.record.value.unwrap_or_default()).into_owned());
        }
        if done(&consumer.assignment()) {
            break;
        }
    }
    (consumer, values)
}

#[test]
fn cooperative_rebalance_moves_half() {
    run(async {
        let broker = start_broker().await;
        let cluster = cluster(&broker).await;
        Admin::new(cluster.clone())
            .create_topic("coop", 4, &BTreeMap::new())
            .await
            .expect("create");
        let config = ConsumerConfig {
            group_id: Some("cooperators".to_string()),
            offset_reset: OffsetReset::Earliest,
            assignors: vec!["cooperative-sticky".to_string()],
            heartbeat_interval: Duration::from_millis(100),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            ..ConsumerConfig::default()
        };

        let mut first = Consumer::new(cluster.clone(), config.clone());
        first.subscribe(&["coop".to_string()]).expect("subscribe");
        let (first, _) = poll_until(first, |assignment| assignment.len() == 4).await;
        let before: Vec<(String, i32)> = first.assignment();
        assert_eq!(before.len(), 4);

        let mut second = Consumer::new(cluster.clone(), config);
        second.subscribe(&["coop".to_string()]).expect("subscribe");
        // Both members keep polling until each owns two partitions, because the first
        // one must rejoin after revoking for the second one to get its share.
        let counts = Arc::new(std::sync::Mutex::new([0usize; 2]));
        let poll_both = |mut consumer: Consumer, slot: usize, counts: Arc<std::sync::Mutex<[usize; 2]>>| async move {
            for _ in 0..400 {
                consumer.poll(Duration::from_millis(50)).await.expect("poll");
                let mut shared = counts.lock().unwrap();
                shared[slot] = consumer.assignment().len();
                if *shared == [2, 2] {
                    break;
                }
            }
            consumer
        };
        let first_task = tokio::spawn(poll_both(first, 0, counts.clone()));
        let second_task = tokio::spawn(poll_both(second, 1, counts.clone()));
        let first = first_task.await.expect("first member");
        let second = second_task.await.expect("second member");

        let kept = first.assignment();
        let moved = second.assignment();
        assert_eq!(kept.len(), 2, "the first member keeps two partitions");
        assert_eq!(moved.len(), 2, "the second member gets two");
        assert!(
            kept.iter().all(|partition| before.contains(partition)),
            "kept partitions were owned before"
        );
        assert!(
            moved.iter().all(|partition| !kept.contains(partition)),
            "no partition is owned twice"
        );
        first.close().await.expect("close");
        second.close().await.expect("close");
    });
}
