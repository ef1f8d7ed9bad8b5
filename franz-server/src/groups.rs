//! Consumer groups: the coordinator state machine from franz-core, fed by request
//! handlers and a 100 ms timer, and committed offsets stored in `__consumer_offsets`.
//!
//! A commit is appended to the group's partition of `__consumer_offsets`, synced (the
//! topic flushes every append, so a commit survives a crash once acknowledged), and only
//! then applied to the in-memory [`OffsetStore`] that OffsetFetch reads. At start the
//! store is rebuilt by reading that topic from the beginning.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use franz_core::batch::{self, KeyValue};
use franz_core::group::offsets::{self, OffsetAndMetadata, OffsetStore};
use franz_core::group::{GroupConfig, GroupCoordinator, JoinResult, Reply, SyncResult};
use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::broker::{partition::scan_batches, Broker, Topic, TopicError, OFFSETS_TOPIC};
use crate::shutdown::Shutdown;

/// How often session timeouts and join and sync deadlines are checked.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Kafka's `offset.metadata.max.bytes`: longer commit metadata is rejected.
pub const MAX_METADATA_BYTES: usize = 4096;

/// The result a waiting JoinGroup or SyncGroup receives.
#[derive(Debug)]
pub enum Completion {
    Join(JoinResult),
    Sync(SyncResult),
}

pub type Waiter = oneshot::Sender<Completion>;

struct GroupsState {
    coordinator: GroupCoordinator<Waiter>,
    offsets: OffsetStore,
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct PendingCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: OffsetAndMetadata,
}

pub struct GroupService<D: Disk> {
    broker: Arc<Broker<D>>,
    state: Mutex<GroupsState>,
    /// Serializes writes to `__consumer_offsets` with the store update that follows, so
    /// that the store applies commits in log order.
    commit_lock: tokio::sync::Mutex<()>,
}

/// Java's `String.hashCode`, which Kafka uses to place a group on a partition of
/// `__consumer_offsets`.
fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16()
        .fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

impl<D: Disk> GroupService<D> {
    /// Builds the service and rebuilds committed offsets from `__consumer_offsets`.
    pub async fn open(broker: Arc<Broker<D>>) -> Result<Arc<GroupService<D>>, String> {
        let config = GroupConfig {
            min_session_timeout_ms: broker.config.group_min_session_timeout_ms,
            max_session_timeout_ms: broker.config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: broker.config.group_initial_rebalance_delay_ms,
            ..GroupConfig::default()
        };
        let mut coordinator = GroupCoordinator::new(config, madsim::rand::random());
        let mut store = OffsetStore::new();
        if let Some(topic) = broker.topic(OFFSETS_TOPIC) {
            let mut invalid = 0u64;
            for partition in &topic.partitions {
                let scanned = scan_batches(&partition.log, |_, bytes| {
                    let read = batch::for_each_record(bytes, |_, key, value| {
                        match key.map(|key| offsets::decode_record(key, value)) {
                            Some(Ok(record)) => store.apply(record),
                            _ => invalid += 1,
                        }
                    });
                    if read.is_err() {
                        invalid += 1;
                    }
                })
                .await;
                scanned.map_err(|error| format!("reading {OFFSETS_TOPIC}-{} failed: {error}", partition.index))?;
            }
            if invalid > 0 {
                warn!(records = invalid, "skipped unreadable records in {OFFSETS_TOPIC}");
            }
        }
        let groups = store.groups();
        for group in &groups {
            coordinator.ensure_known(group, "consumer");
        }
        info!(groups = groups.len(), "loaded committed offsets");
        Ok(Arc::new(GroupService {
            broker,
            state: Mutex::new(GroupsState {
                coordinator,
                offsets: store,
            }),
            commit_lock: tokio::sync::Mutex::new(()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, GroupsState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Calls the coordinator with the current time and sends the replies it returns.
    pub fn with_coordinator<T>(
        &self,
        call: impl FnOnce(&mut GroupCoordinator<Waiter>, i64) -> (T, Vec<Reply<Waiter>>),
    ) -> T {
        let now = self.broker.clock().now_ms();
        let (value, replies) = {
            let mut state = self.lock();
            call(&mut state.coordinator, now)
        };
        send_replies(replies);
        value
    }

    /// Reads the coordinator without changing it.
    pub fn read_coordinator<T>(&self, read: impl FnOnce(&GroupCoordinator<Waiter>) -> T) -> T {
        read(&self.lock().coordinator)
    }

    /// Reads the committed offsets.
    pub fn read_offsets<T>(&self, read: impl FnOnce(&OffsetStore) -> T) -> T {
        read(&self.lock().offsets)
    }

    /// Runs the coordinator's timers until shutdown.
    pub async fn run_ticks(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(TICK_INTERVAL) => {}
            }
            self.with_coordinator(|coordinator, now| ((), coordinator.tick(now)));
        }
    }

    /// Returns `__consumer_offsets`, creating it on first use with one partition per
    /// `offsets.topic.num.partitions`, no time retention and a sync on every append.
    pub async fn offsets_topic(&self) -> Result<Arc<Topic<D>>, TopicError> {
        if let Some(topic) = self.broker.topic(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("segment.bytes".to_string(), (100 * 1024 * 1024).to_string());
        configs.insert("flush.messages".to_string(), "1".to_string());
        let partitions = self.broker.config.offsets_topic_num_partitions;
        match self
            .broker
            .create_topic(OFFSETS_TOPIC, partitions, configs, false)
            .await
        {
            Ok(topic) => Ok(topic),
            Err(TopicError::AlreadyExists(_)) => self
                .broker
                .topic(OFFSETS_TOPIC)
                .ok_or_else(|| TopicError::NotFound(OFFSETS_TOPIC.to_string())),
            Err(error) => Err(error),
        }
    }

    /// Writes commits (or, with `offset: None`, deletions) of one group durably, then
    /// applies them to the store.
    pub async fn write_offsets(
        &self,
        group: &str,
        changes: Vec<(String, i32, Option<OffsetAndMetadata>)>,
    ) -> Result<(), ResponseError> {
        if changes.is_empty() {
            return Ok(());
        }
        let topic = self.offsets_topic().await.map_err(|error| {
            warn!(%error, "creating {OFFSETS_TOPIC} failed");
            ResponseError::CoordinatorNotAvailable
        })?;
        let index = (java_string_hash(group) & i32::MAX) % topic.partitions.len() as i32;
        let partition = topic
            .partition(index)
            .ok_or(ResponseError::CoordinatorNotAvailable)?
            .clone();

        let encoded: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = changes
            .iter()
            .map(|(topic, partition, offset)| {
                (
                    offsets::encode_offset_key(group, topic, *partition),
                    offset.as_ref().map(offsets::encode_offset_value),
                )
            })
            .collect();
        let records: Vec<KeyValue<'_>> = encoded
            .iter()
            .map(|(key, value)| (Some(&key[..]), value.as_deref()))
            .collect();
        let batch = batch::build_batch(&records, self.broker.clock().now_ms());

        let _writing = self.commit_lock.lock().await;
        if let Err(error) = partition.append(batch).await {
            warn!(group, %error, "writing to {OFFSETS_TOPIC} failed");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let written: Vec<(&str, i32, Option<i64>)> = changes
            .iter()
            .map(|(topic, partition, offset)| (topic.as_str(), *partition, offset.as_ref().map(|offset| offset.offset)))
            .collect();
        debug!(group, offsets = ?written, "committed offsets written");
        let mut state = self.lock();
        for (topic, partition, offset) in changes {
            match offset {
                Some(offset) => state.offsets.commit(group, &topic, partition, offset),
                None => {
                    state.offsets.delete(group, &topic, partition);
                }
            }
        }
        Ok(())
    }

    /// Deletes a group and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), ResponseError> {
        self.with_coordinator(|coordinator, _| (coordinator.delete(group), Vec::new()))?;
        let removed: Vec<(String, i32)> = self.read_offsets(|offsets| {
            offsets
                .fetch_all(group)
                .into_iter()
                .map(|(topic, partition, _)| (topic, partition))
                .collect()
        });
        let tombstones = removed
            .into_iter()
            .map(|(topic, partition)| (topic, partition, None))
            .collect();
        self.write_offsets(group, tombstones).await
    }
}

/// Sends every reply to its waiting request. A waiter whose request is gone (the client
/// disconnected) is skipped.
fn send_replies(replies: Vec<Reply<Waiter>>) {
    for reply in replies {
        let _ = match reply {
            Reply::Join(waiter, result) => waiter.send(Completion::Join(result)),
            Reply::Sync(waiter, result) => waiter.send(Completion::Sync(result)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::java_string_hash;

    #[test]
    fn group_hash_matches_java() {
        // String.hashCode is s[0]*31^(n-1) + ... + s[n-1] in wrapping 32-bit arithmetic.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
    }
}
