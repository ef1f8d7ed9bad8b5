//! Committed offsets of consumer groups, and their record format in the internal topic
//! `__consumer_offsets`.
//!
//! [`OffsetStore`] is the in-memory view that OffsetFetch reads. The server appends one
//! record per committed partition to `__consumer_offsets` and rebuilds the store at startup
//! by passing every record of that topic, in offset order, to [`OffsetStore::apply`]. This
//! module does no IO.
//!
//! # Record format
//!
//! The format is Franz's own, not Kafka's. Every integer is big-endian, and every string
//! is a `u32` byte length followed by that many bytes of UTF-8.
//!
//! Key, version 1 (an offset commit of one partition):
//!
//! ```text
//! version: i16 = 1 | group: string | topic: string | partition: i32
//! ```
//!
//! Value, version 1:
//!
//! ```text
//! version: i16 = 1 | offset: i64 | leader_epoch: i32 | commit_timestamp_ms: i64 | metadata: string
//! ```
//!
//! A null value is a tombstone: the partition's committed offset was deleted. Compaction
//! keeps the last record per key, so the same key always names the same partition.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

/// Version of the key layout that [`encode_offset_key`] writes.
const KEY_VERSION: i16 = 1;

/// Version of the value layout that [`encode_offset_value`] writes.
const VALUE_VERSION: i16 = 1;

/// The committed position of a group on one partition, as OffsetCommit stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1 when the client did not send it.
    pub leader_epoch: i32,
    /// Free text from the client, returned unchanged by OffsetFetch.
    pub metadata: String,
    /// Broker time of the commit, in milliseconds since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

/// One decoded record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetRecord {
    /// A committed offset for one partition.
    Commit {
        /// Consumer group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The committed offset and its metadata.
        offset: OffsetAndMetadata,
    },
    /// A tombstone: the committed offset of this partition was deleted.
    Delete {
        /// Consumer group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
}

/// Encodes the record key of a committed offset (see the module documentation).
pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 4 + group.len() + 4 + topic.len() + 4);
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// Encodes the record value of a committed offset (see the module documentation).
pub fn encode_offset_value(offset: &OffsetAndMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 8 + 4 + 8 + 4 + offset.metadata.len());
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(offset.offset);
    buf.put_i32(offset.leader_epoch);
    buf.put_i64(offset.commit_timestamp_ms);
    put_string(&mut buf, &offset.metadata);
    buf.freeze()
}

/// Decodes one record of `__consumer_offsets`; a `None` value is a tombstone.
///
/// Returns an error that names the field when the input is truncated, has trailing
/// bytes, contains invalid UTF-8 or has an unknown version. It never panics.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<OffsetRecord, String> {
    let mut key_reader = Reader::new(key);
    let key_version = key_reader.i16("key version")?;
    if key_version != KEY_VERSION {
        return Err(format!(
            "unknown offset key version {key_version}, expected {KEY_VERSION}"
        ));
    }
    let group = key_reader.string("group")?;
    let topic = key_reader.string("topic")?;
    let partition = key_reader.i32("partition")?;
    key_reader.finish("key")?;

    let Some(value) = value else {
        return Ok(OffsetRecord::Delete {
            group,
            topic,
            partition,
        });
    };

    let mut value_reader = Reader::new(value);
    let value_version = value_reader.i16("value version")?;
    if value_version != VALUE_VERSION {
        return Err(format!(
            "unknown offset value version {value_version} for group {group:?}, topic {topic:?}, \
             partition {partition}; expected {VALUE_VERSION}"
        ));
    }
    let offset = value_reader.i64("offset")?;
    let leader_epoch = value_reader.i32("leader epoch")?;
    let commit_timestamp_ms = value_reader.i64("commit timestamp")?;
    let metadata = value_reader.string("metadata")?;
    value_reader.finish("value")?;

    Ok(OffsetRecord::Commit {
        group,
        topic,
        partition,
        offset: OffsetAndMetadata {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        },
    })
}

fn put_string(buf: &mut BytesMut, value: &str) {
    // Strings longer than 4 GiB cannot reach this point: Kafka's request strings have an
    // i16 length, and OffsetCommit metadata is limited to a few KiB.
    let len = u32::try_from(value.len()).expect("string shorter than 4 GiB");
    buf.put_u32(len);
    buf.put_slice(value.as_bytes());
}

/// A bounds-checked cursor over a record's key or value.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < len {
            return Err(format!(
                "truncated {field}: needs {len} bytes, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn i16(&mut self, field: &str) -> Result<i16, String> {
        let bytes = self.take(2, field)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self, field: &str) -> Result<i32, String> {
        let bytes = self.take(4, field)?;
        Ok(i32::from_be_bytes(bytes.try_into().expect("take returned 4 bytes")))
    }

    fn i64(&mut self, field: &str) -> Result<i64, String> {
        let bytes = self.take(8, field)?;
        Ok(i64::from_be_bytes(bytes.try_into().expect("take returned 8 bytes")))
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        let len_bytes = self.take(4, field)?;
        let len = u32::from_be_bytes(len_bytes.try_into().expect("take returned 4 bytes")) as usize;
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|err| format!("invalid UTF-8 in {field}: {err}"))
    }

    fn finish(&self, part: &str) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} trailing bytes after the offset record {part}",
                self.rest.len()
            ))
        }
    }
}

/// Committed offsets of every group, kept in sorted order so that listings are
/// deterministic.
#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    /// Group id to (topic, partition) to the committed offset. A group with no offsets
    /// left has no entry.
    groups: BTreeMap<String, BTreeMap<(String, i32), OffsetAndMetadata>>,
}

impl OffsetStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        OffsetStore::default()
    }

    /// Stores `offset` as the committed offset of `group` on one partition, replacing any
    /// earlier commit.
    pub fn commit(&mut self, group: &str, topic: &str, partition: i32, offset: OffsetAndMetadata) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), offset);
    }

    /// Returns the committed offset of `group` on one partition.
    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetAndMetadata> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Returns every committed offset of `group`, sorted by topic and partition.
    pub fn fetch_all(&self, group: &str) -> Vec<(String, i32, OffsetAndMetadata)> {
        let Some(offsets) = self.groups.get(group) else {
            return Vec::new();
        };
        offsets
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, offset.clone()))
            .collect()
    }

    /// Deletes the committed offset of `group` on one partition. Returns whether there
    /// was one.
    pub fn delete(&mut self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(offsets) = self.groups.get_mut(group) else {
            return false;
        };
        let removed = offsets.remove(&(topic.to_string(), partition)).is_some();
        if offsets.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    /// Deletes every committed offset of `group` and returns the partitions removed,
    /// sorted by topic and partition, so that the caller can write their tombstones.
    pub fn delete_group(&mut self, group: &str) -> Vec<(String, i32)> {
        match self.groups.remove(group) {
            Some(offsets) => offsets.into_keys().collect(),
            None => Vec::new(),
        }
    }

    /// Returns the ids of the groups that have at least one committed offset, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Applies one record read back from `__consumer_offsets`, in log order.
    pub fn apply(&mut self, record: OffsetRecord) {
        match record {
            OffsetRecord::Commit {
                group,
                topic,
                partition,
                offset,
            } => {
                self.commit(&group, &topic, partition, offset);
            }
            OffsetRecord::Delete {
                group,
                topic,
                partition,
            } => {
                self.delete(&group, &topic, partition);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn offset(value: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset: value,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
        }
    }

    #[test]
    fn store_commit_then_fetch() {
        let mut store = OffsetStore::new();
        store.commit("g", "t", 0, offset(5));
        store.commit("g", "t", 0, offset(7));

        assert_eq!(store.fetch("g", "t", 0), Some(&offset(7)));
        assert_eq!(store.fetch("g", "t", 1), None);
        assert_eq!(store.fetch("other", "t", 0), None);
    }

    #[test]
    fn store_fetch_all_sorted() {
        let mut store = OffsetStore::new();
        store.commit("g", "b", 1, offset(1));
        store.commit("g", "a", 2, offset(2));
        store.commit("g", "a", 0, offset(3));

        let all = store.fetch_all("g");

        let keys: Vec<(String, i32)> = all.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        assert_eq!(keys, vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)]);
    }

    #[test]
    fn store_delete_partition() {
        let mut store = OffsetStore::new();
        store.commit("g", "t", 0, offset(5));

        assert!(store.delete("g", "t", 0));
        assert!(!store.delete("g", "t", 0));
        assert!(store.groups().is_empty());
    }

    #[test]
    fn store_delete_group() {
        let mut store = OffsetStore::new();
        store.commit("g", "t", 1, offset(5));
        store.commit("g", "t", 0, offset(5));
        store.commit("h", "t", 0, offset(5));

        let removed = store.delete_group("g");

        assert_eq!(removed, vec![("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(store.groups(), vec!["h".to_string()]);
        assert!(store.delete_group("g").is_empty());
    }

    #[test]
    fn store_apply_replays_log() {
        let mut store = OffsetStore::new();
        let records = [
            (encode_offset_key("g", "t", 0), Some(encode_offset_value(&offset(1)))),
            (encode_offset_key("g", "t", 1), Some(encode_offset_value(&offset(2)))),
            (encode_offset_key("g", "t", 0), None),
        ];

        for (key, value) in &records {
            store.apply(decode_record(key, value.as_deref()).unwrap());
        }

        assert_eq!(store.fetch("g", "t", 0), None);
        assert_eq!(store.fetch("g", "t", 1), Some(&offset(2)));
    }

    #[test]
    fn decode_tombstone() {
        let key = encode_offset_key("g", "t", 4);

        let record = decode_record(&key, None).unwrap();

        assert_eq!(
            record,
            OffsetRecord::Delete {
                group: "g".into(),
                topic: "t".into(),
                partition: 4
            }
        );
    }

    #[test]
    fn decode_rejects_unknown_key_version() {
        let mut key = encode_offset_key("g", "t", 0).to_vec();
        key[1] = 9;

        let err = decode_record(&key, None).unwrap_err();

        assert!(err.contains("key version 9"), "{err}");
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let key = encode_offset_key("g", "t", 0);
        let mut value = encode_offset_value(&offset(1)).to_vec();
        value.push(0);

        let err = decode_record(&key, Some(&value)).unwrap_err();

        assert!(err.contains("trailing"), "{err}");
    }

    #[test]
    fn decode_rejects_truncated_value() {
        let key = encode_offset_key("g", "t", 0);
        let value = encode_offset_value(&offset(1));

        let err = decode_record(&key, Some(&value[..value.len() - 1])).unwrap_err();

        assert!(err.contains("truncated metadata"), "{err}");
    }

    proptest! {
        #[test]
        fn record_roundtrip(
            group in ".{0,20}",
            topic in ".{0,20}",
            partition in any::<i32>(),
            offset in any::<i64>(),
            leader_epoch in any::<i32>(),
            metadata in ".{0,40}",
            commit_timestamp_ms in any::<i64>(),
        ) {
            let value = OffsetAndMetadata { offset, leader_epoch, metadata, commit_timestamp_ms };
            let key_bytes = encode_offset_key(&group, &topic, partition);
            let value_bytes = encode_offset_value(&value);

            let record = decode_record(&key_bytes, Some(&value_bytes)).unwrap();

            prop_assert_eq!(record, OffsetRecord::Commit { group, topic, partition, offset: value });
        }

        #[test]
        fn decode_arbitrary_bytes_never_panics(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let _ = decode_record(&key, value.as_deref());
        }

        #[test]
        fn decode_mutated_record_never_panics(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let key = encode_offset_key("group", "topic", 1);
            let mut value = encode_offset_value(&offset(9)).to_vec();
            let at = index.index(value.len());
            value[at] = byte;
            value.truncate(cut.index(value.len() + 1));

            let _ = decode_record(&key, Some(&value));
        }
    }
}
