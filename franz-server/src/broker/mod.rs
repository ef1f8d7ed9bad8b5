//! The broker's state: topics and their partitions, the cluster metadata file, topic
//! settings and producer id allocation. Request handlers in [`crate::kafka`] call it; it
//! does not touch the wire format.

pub mod partition;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use franz_core::metadata::{ClusterMetadata, MetadataError, TopicRecord};
use franz_core::{Clock, Disk, Log, LogError};
use tokio::sync::Mutex;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::topic_config::{self, TopicConfigs};
pub use partition::{AppendError, Appended, Partition};

/// Name of the internal topic that stores committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Maximum topic name length Kafka allows: 249 characters, so that `<topic>-<partition>` and
/// the suffixes of a deletion still fit a 255-byte file name.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Producer ids are reserved in blocks of this many, one metadata write per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// A failed topic operation. Each variant maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    NotFound(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("replication factor {0} is not possible on a single node; use 1 or -1")]
    InvalidReplicationFactor(i16),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// A topic: its id, settings and partitions. Replaced whole when its settings or
/// partition count change; the partitions themselves are shared.
pub struct Topic<D: Disk> {
    pub name: String,
    pub id: Uuid,
    pub configs: TopicConfigs,
    pub partitions: Vec<Arc<Partition<D>>>,
}

impl<D: Disk> Topic<D> {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition<D>>> {
        usize::try_from(index).ok().and_then(|index| self.partitions.get(index))
    }

    pub fn is_internal(&self) -> bool {
        self.name == OFFSETS_TOPIC
    }
}

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason: &str| TopicError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid("the name is longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
    {
        return Err(invalid("only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// Producer ids handed out from the current reserved block.
struct ProducerIds {
    next: i64,
    /// First id beyond the reserved block.
    reserved_until: i64,
}

pub struct Broker<D: Disk> {
    pub config: ServerConfig,
    disk: D,
    clock: Arc<dyn Clock>,
    /// The persisted metadata; held while a change is written, so changes are serialized.
    metadata: Mutex<ClusterMetadata>,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic<D>>>>,
    producer_ids: Mutex<ProducerIds>,
}

impl<D: Disk> Broker<D> {
    /// Opens the data folder: reads the cluster metadata (creating it on first use) and
    /// opens and recovers every partition log it lists.
    pub async fn open(config: ServerConfig, disk: D, clock: Arc<dyn Clock>) -> Result<Arc<Broker<D>>, TopicError> {
        let data_dir = config.data_dir.clone();
        let metadata = match ClusterMetadata::read(&disk, &data_dir).await? {
            Some(metadata) => metadata,
            None => {
                let metadata = ClusterMetadata::new(madsim::rand::random());
                metadata.write(&disk, &data_dir).await?;
                info!(data_dir = %data_dir.display(), cluster_id = %metadata.cluster_id_text(), "created a new cluster");
                metadata
            }
        };

        let mut topics = BTreeMap::new();
        for (name, record) in &metadata.topics {
            let configs = TopicConfigs {
                broker_defaults: config.topic_defaults.clone(),
                overrides: record.configs.clone(),
            };
            let mut partitions = Vec::new();
            for index in 0..record.partitions {
                partitions.push(open_partition(&disk, &clock, &data_dir, name, index, &configs).await?);
            }
            let topic = Topic {
                name: name.clone(),
                id: Uuid::from_bytes(record.id),
                configs,
                partitions,
            };
            topics.insert(name.clone(), Arc::new(topic));
        }
        info!(data_dir = %data_dir.display(), topics = topics.len(), "opened the data folder");

        let next_producer_id = metadata.next_producer_id;
        Ok(Arc::new(Broker {
            cluster_id: metadata.cluster_id_text(),
            config,
            disk,
            clock,
            metadata: Mutex::new(metadata),
            topics: RwLock::new(topics),
            producer_ids: Mutex::new(ProducerIds {
                next: next_producer_id,
                reserved_until: next_producer_id,
            }),
        }))
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic<D>>> {
        self.read_topics().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic<D>>> {
        self.read_topics().values().find(|topic| topic.id == id).cloned()
    }

    /// Returns every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic<D>>> {
        self.read_topics().values().cloned().collect()
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic<D>>>> {
        self.topics.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic<D>>>> {
        self.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the topic, creating it with the broker's defaults when it does not exist
    /// and `auto.create.topics.enable` is on. `None` when it does not exist and may not
    /// be created.
    pub async fn topic_or_create(&self, name: &str) -> Result<Option<Arc<Topic<D>>>, TopicError> {
        if let Some(topic) = self.topic(name) {
            return Ok(Some(topic));
        }
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        match self
            .create_topic(name, self.config.num_partitions, BTreeMap::new(), false)
            .await
        {
            Ok(topic) => Ok(Some(topic)),
            // Another request created it first.
            Err(TopicError::AlreadyExists(_)) => Ok(self.topic(name)),
            Err(error) => Err(error),
        }
    }

    /// Creates a topic, or only checks that it could be created when `validate_only`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic<D>>, TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions}; a topic needs at least 1 partition"
            )));
        }
        for (key, value) in &overrides {
            topic_config::validate(key, value).map_err(TopicError::InvalidConfig)?;
        }
        let configs = TopicConfigs {
            broker_defaults: self.config.topic_defaults.clone(),
            overrides,
        };
        configs.log_config().validate().map_err(TopicError::InvalidConfig)?;

        let mut metadata = self.metadata.lock().await;
        if metadata.topics.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let collides = metadata
            .topics
            .keys()
            .any(|existing| existing.replace('.', "_") == name.replace('.', "_"));
        if collides {
            return Err(TopicError::InvalidName {
                name: name.to_string(),
                reason: "it collides with an existing topic once '.' and '_' are treated alike".to_string(),
            });
        }
        let id = Uuid::from_bytes(madsim::rand::random());
        let topic = Topic {
            name: name.to_string(),
            id,
            configs: configs.clone(),
            partitions: Vec::new(),
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }

        // The partition folders exist before the metadata names them, so a crash in
        // between leaves unused folders, never a topic without its logs.
        let mut opened = Vec::new();
        for index in 0..partitions {
            opened.push(open_partition(&self.disk, &self.clock, &self.config.data_dir, name, index, &configs).await?);
        }
        let mut updated = metadata.clone();
        updated.topics.insert(
            name.to_string(),
            TopicRecord {
                id: *id.as_bytes(),
                partitions,
                configs: configs.overrides.clone(),
            },
        );
        self.persist(&mut metadata, updated).await?;

        let topic = Arc::new(Topic {
            partitions: opened,
            ..topic
        });
        self.write_topics().insert(name.to_string(), topic.clone());
        info!(topic = name, partitions, topic_id = %id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its partition logs.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if name == OFFSETS_TOPIC {
            return Err(TopicError::InvalidRequest(format!(
                "{OFFSETS_TOPIC} is internal and cannot be deleted"
            )));
        }
        let mut metadata = self.metadata.lock().await;
        if !metadata.topics.contains_key(name) {
            return Err(TopicError::NotFound(name.to_string()));
        }
        let mut updated = metadata.clone();
        updated.topics.remove(name);
        self.persist(&mut metadata, updated).await?;
        let removed = self.write_topics().remove(name);
        if let Some(topic) = removed {
            for partition in &topic.partitions {
                partition.wake_waiters();
                if let Err(error) = partition.log.delete().await {
                    warn!(topic = name, partition = partition.index, %error, "removing a deleted partition's files failed; remove the folder by hand");
                }
            }
        }
        info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count to `count`.
    pub async fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), TopicError> {
        if name == OFFSETS_TOPIC {
            // A group's partition is chosen by its hash modulo the partition count, so
            // more partitions would move groups away from their committed offsets.
            return Err(TopicError::InvalidRequest(format!(
                "{OFFSETS_TOPIC} keeps the partition count it was created with"
            )));
        }
        let mut metadata = self.metadata.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::NotFound(name.to_string()));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name:?} has {current} partitions; the new count {count} must be larger"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        for index in current..count {
            partitions.push(
                open_partition(
                    &self.disk,
                    &self.clock,
                    &self.config.data_dir,
                    name,
                    index,
                    &topic.configs,
                )
                .await?,
            );
        }
        let mut updated = metadata.clone();
        if let Some(record) = updated.topics.get_mut(name) {
            record.partitions = count;
        }
        self.persist(&mut metadata, updated).await?;
        let replaced = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs: topic.configs.clone(),
            partitions,
        });
        self.write_topics().insert(name.to_string(), replaced);
        info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's setting overrides with `overrides` and applies them to its logs.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (key, value) in &overrides {
            topic_config::validate(key, value).map_err(TopicError::InvalidConfig)?;
        }
        let mut metadata = self.metadata.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::NotFound(name.to_string()));
        };
        let configs = TopicConfigs {
            broker_defaults: self.config.topic_defaults.clone(),
            overrides,
        };
        let log_config = configs.log_config();
        log_config.validate().map_err(TopicError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let mut updated = metadata.clone();
        if let Some(record) = updated.topics.get_mut(name) {
            record.configs = configs.overrides.clone();
        }
        self.persist(&mut metadata, updated).await?;
        for partition in &topic.partitions {
            partition.log.set_config(log_config.clone())?;
        }
        let replaced = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs,
            partitions: topic.partitions.clone(),
        });
        self.write_topics().insert(name.to_string(), replaced);
        info!(topic = name, "changed topic settings");
        Ok(())
    }

    /// Hands out a new producer id, reserving a new block in the metadata when needed.
    pub async fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.next >= ids.reserved_until {
            let mut metadata = self.metadata.lock().await;
            let mut updated = metadata.clone();
            updated.next_producer_id = ids.next + PRODUCER_ID_BLOCK;
            self.persist(&mut metadata, updated).await?;
            ids.reserved_until = ids.next + PRODUCER_ID_BLOCK;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Writes `updated` durably, then makes it the current metadata.
    async fn persist(&self, current: &mut ClusterMetadata, updated: ClusterMetadata) -> Result<(), TopicError> {
        if let Err(error) = updated.write(&self.disk, &self.config.data_dir).await {
            error!(%error, "writing the cluster metadata failed");
            return Err(error.into());
        }
        *current = updated;
        Ok(())
    }

    /// Runs retention on every partition once.
    pub async fn enforce_retention(&self) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(error) = partition.log.enforce_retention().await {
                    warn!(topic = %topic.name, partition = partition.index, %error, "retention failed");
                }
            }
        }
    }

    /// Syncs what the flush policies ask for and writes each partition's checkpoint.
    pub async fn flush_and_checkpoint(&self, checkpoint: bool) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(error) = partition.log.flush_if_due().await {
                    warn!(topic = %topic.name, partition = partition.index, %error, "scheduled flush failed");
                }
                if checkpoint {
                    if let Err(error) = partition.log.checkpoint().await {
                        warn!(topic = %topic.name, partition = partition.index, %error, "writing the checkpoint failed");
                    }
                }
            }
        }
    }

    /// Wakes every waiting fetch, so that shutdown does not wait for their timeouts.
    pub fn wake_all_fetches(&self) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                partition.wake_waiters();
            }
        }
    }

    /// Closes every partition log cleanly. Called once, after the listener stopped.
    pub async fn close(&self) -> Result<(), LogError> {
        let topics: Vec<_> = std::mem::take(&mut *self.write_topics()).into_values().collect();
        let mut first_error = None;
        for topic in topics {
            for partition in &topic.partitions {
                if let Err(error) = partition.log.close().await {
                    error!(topic = %topic.name, partition = partition.index, %error, "closing the partition failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Returns the folder of one partition, `<data>/<topic>-<partition>` as in Kafka.
pub fn partition_dir(data_dir: &std::path::Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

async fn open_partition<D: Disk>(
    disk: &D,
    clock: &Arc<dyn Clock>,
    data_dir: &std::path::Path,
    topic: &str,
    index: i32,
    configs: &TopicConfigs,
) -> Result<Arc<Partition<D>>, TopicError> {
    let dir = partition_dir(data_dir, topic, index);
    let log = Log::open(disk.clone(), clock.clone(), dir, configs.log_config()).await?;
    Ok(Partition::new(topic.to_string(), index, log).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name("slash/name").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
    }
}
