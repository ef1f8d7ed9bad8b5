//! The client's view of the cluster: brokers and partition leaders from Metadata,
//! and one connection per broker, reopened after a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::connection::Connection;
use super::error::{check, ClientError, Result};

/// Settings every client shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers to learn the cluster from.
    pub bootstrap: Vec<String>,
    /// Sent with every request, for the broker's logs and quotas.
    pub client_id: String,
    /// Maximum wait for one response.
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(bootstrap: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            client_id: "franz".to_string(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub index: i32,
    /// Node id of the leader, -1 when it has none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Default)]
struct Snapshot {
    cluster_id: Option<String>,
    controller: i32,
    brokers: BTreeMap<i32, String>,
    topics: BTreeMap<String, TopicInfo>,
    /// The error code of the last Metadata response for topics that failed.
    topic_errors: BTreeMap<String, i16>,
}

/// A shared connection to one broker.
pub type SharedConnection = Arc<Mutex<Connection>>;

pub struct Cluster {
    config: ClientConfig,
    snapshot: std::sync::Mutex<Snapshot>,
    connections: Mutex<BTreeMap<String, SharedConnection>>,
}

/// Metadata versions this client speaks.
const METADATA_VERSIONS: (i16, i16) = (1, 12);

impl Cluster {
    /// Connects to the first reachable bootstrap broker and reads the cluster's brokers.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument("no bootstrap broker given".to_string()));
        }
        let cluster = Arc::new(Cluster {
            config,
            snapshot: std::sync::Mutex::new(Snapshot::default()),
            connections: Mutex::new(BTreeMap::new()),
        });
        cluster.refresh(Some(&[]), false).await?;
        Ok(cluster)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn snapshot(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.snapshot().cluster_id.clone()
    }

    pub fn controller(&self) -> i32 {
        self.snapshot().controller
    }

    /// Returns the known brokers: node id and `host:port`.
    pub fn brokers(&self) -> Vec<(i32, String)> {
        self.snapshot()
            .brokers
            .iter()
            .map(|(id, address)| (*id, address.clone()))
            .collect()
    }

    /// Returns the connection to `address`, opening it when needed.
    pub async fn connection(&self, address: &str) -> Result<SharedConnection> {
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections.get(address) {
            return Ok(connection.clone());
        }
        let connection = Arc::new(Mutex::new(Connection::connect(address, &self.config.client_id).await?));
        connections.insert(address.to_string(), connection.clone());
        Ok(connection)
    }

    /// Forgets a connection after a failure, so that the next request reconnects.
    pub async fn drop_connection(&self, address: &str) {
        self.connections.lock().await.remove(address);
    }

    /// Sends a request to `address` within the request timeout. A connection error drops
    /// the connection.
    pub async fn send_to<R: Request>(
        &self,
        address: &str,
        request: R,
        min: i16,
        max: i16,
    ) -> Result<(R::Response, i16)> {
        let connection = self.connection(address).await?;
        let timeout = self.config.request_timeout;
        let sent = {
            let mut connection = connection.lock().await;
            tokio::time::timeout(timeout, connection.send(request, min, max)).await
        };
        let result = match sent {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                operation: format!("{} to {address}", super::connection::api_name(R::KEY)),
                timeout_ms: timeout.as_millis() as u64,
            }),
        };
        if matches!(
            result,
            Err(ClientError::Io { .. } | ClientError::Protocol { .. } | ClientError::Timeout { .. })
        ) {
            self.drop_connection(address).await;
        }
        result
    }

    /// Sends a request to `address` and reads no response (Produce with acks=0).
    pub async fn send_without_response<R: Request>(&self, address: &str, request: R, min: i16, max: i16) -> Result<()> {
        let connection = self.connection(address).await?;
        let sent = connection.lock().await.send_without_response(request, min, max).await;
        if sent.is_err() {
            self.drop_connection(address).await;
        }
        sent
    }

    /// Sends a request to any reachable broker: known brokers first, then the bootstrap list.
    pub async fn send_any<R: Request + Clone>(&self, request: R, min: i16, max: i16) -> Result<(R::Response, i16)> {
        let mut candidates: Vec<String> = self.brokers().into_iter().map(|(_, address)| address).collect();
        candidates.extend(self.config.bootstrap.iter().cloned());
        let mut last_error = None;
        for address in &candidates {
            match self.send_to(address, request.clone(), min, max).await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_retriable() => {
                    debug!(address, %error, "broker unreachable; trying the next one");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(ClientError::NoBroker {
            bootstrap: self.config.bootstrap.clone(),
            last_error: last_error.map(|error| error.to_string()).unwrap_or_default(),
        })
    }

    /// Reads Metadata for `topics` (`None`: every topic) and updates the snapshot.
    pub async fn refresh(&self, topics: Option<&[String]>, allow_auto_create: bool) -> Result<()> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let (response, _) = self.send_any(request, METADATA_VERSIONS.0, METADATA_VERSIONS.1).await?;

        let mut snapshot = self.snapshot();
        snapshot.cluster_id = response.cluster_id.map(|id| id.as_str().to_string());
        snapshot.controller = response.controller_id.0;
        snapshot.brokers = response
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host.as_str(), broker.port)))
            .collect();
        for topic in response.topics {
            let Some(name) = topic.name.map(|name| name.0.as_str().to_string()) else {
                continue;
            };
            if topic.error_code != 0 {
                snapshot.topics.remove(&name);
                snapshot.topic_errors.insert(name, topic.error_code);
                continue;
            }
            snapshot.topic_errors.remove(&name);
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|partition| PartitionInfo {
                    index: partition.partition_index,
                    leader: partition.leader_id.0,
                    replicas: partition.replica_nodes.iter().map(|id| id.0).collect(),
                    isr: partition.isr_nodes.iter().map(|id| id.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|partition| partition.index);
            let info = TopicInfo {
                name: name.clone(),
                id: topic.topic_id,
                internal: topic.is_internal,
                partitions,
            };
            snapshot.topics.insert(name, info);
        }
        Ok(())
    }

    /// Returns a topic's metadata, reading it from a broker when it is not known yet.
    /// Fails with [`ClientError::UnknownTopic`] when the topic does not exist (and
    /// `allow_auto_create` did not create it).
    pub async fn topic(&self, name: &str, allow_auto_create: bool) -> Result<TopicInfo> {
        if let Some(topic) = self.snapshot().topics.get(name) {
            return Ok(topic.clone());
        }
        self.refresh(Some(&[name.to_string()]), allow_auto_create).await?;
        let snapshot = self.snapshot();
        if let Some(topic) = snapshot.topics.get(name) {
            return Ok(topic.clone());
        }
        match snapshot.topic_errors.get(name) {
            // UNKNOWN_TOPIC_OR_PARTITION, or no entry for the topic in the response.
            Some(3) | None => Err(ClientError::UnknownTopic(name.to_string())),
            Some(code) => Err(ClientError::broker(format!("looking up topic {name:?}"), *code, None)),
        }
    }

    /// Returns how many partitions a topic has, like [`Cluster::topic`] but without copying
    /// the topic's metadata, because a producer calls it for every record.
    pub async fn partition_count(&self, name: &str, allow_auto_create: bool) -> Result<usize> {
        if let Some(topic) = self.snapshot().topics.get(name) {
            return Ok(topic.partitions.len());
        }
        Ok(self.topic(name, allow_auto_create).await?.partitions.len())
    }

    /// Returns every topic the cluster has, read fresh.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.refresh(None, false).await?;
        Ok(self.snapshot().topics.values().cloned().collect())
    }

    /// Forgets what is known of a topic, so that the next use reads it again (after
    /// NOT_LEADER_OR_FOLLOWER or UNKNOWN_TOPIC_OR_PARTITION).
    pub fn invalidate(&self, topic: &str) {
        self.snapshot().topics.remove(topic);
    }

    /// Returns the address of the leader of one partition.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<String> {
        let info = self.topic(topic, false).await?;
        let leader = info
            .partitions
            .iter()
            .find(|candidate| candidate.index == partition)
            .map(|candidate| candidate.leader)
            .ok_or_else(|| ClientError::InvalidArgument(format!("topic {topic:?} has no partition {partition}")))?;
        self.broker_address(leader)
            .ok_or_else(|| ClientError::broker(format!("finding the leader of {topic}-{partition}"), 5, None))
    }

    pub fn broker_address(&self, node_id: i32) -> Option<String> {
        self.snapshot().brokers.get(&node_id).cloned()
    }

    /// Returns the address of the coordinator of `group`.
    pub async fn coordinator(&self, group: &str) -> Result<String> {
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
        let (response, _) = self.send_any(request, 0, 3).await?;
        check(
            || format!("finding the coordinator of group {group:?}"),
            response.error_code,
            response.error_message.map(|message| message.as_str().to_string()),
        )?;
        let address = format!("{}:{}", response.host.as_str(), response.port);
        if address == ":0" {
            warn!(group, "FindCoordinator returned no address");
        }
        Ok(address)
    }
}
