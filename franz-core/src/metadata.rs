//! The broker's cluster metadata: the cluster id, every topic with its id, partition
//! count and setting overrides, and the next producer id to hand out. One text file,
//! `cluster.metadata` in the data folder, replaced atomically on every change.
//!
//! ```text
//! franz-cluster-metadata 1
//! cluster_id 3c1f8a0e6b7d4e2a9f10c5b8d7e6a4f2
//! next_producer_id 4000
//! topic orders 9b2e61c7a04d4f0e8d3c2b1a09f8e7d6 6
//! config orders retention.ms=86400000
//! crc32c 1a2b3c4d
//! ```
//!
//! The CRC covers every line above it. Unlike a partition checkpoint, this file cannot be
//! rebuilt from the logs, so a damaged file fails the broker's start with the path and
//! the reason. A single node keeps it here; a cluster will keep the same state in its
//! metadata quorum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskFile};

pub const METADATA_FILE: &str = "cluster.metadata";
const TEMPORARY_FILE: &str = "cluster.metadata.tmp";
const HEADER: &str = "franz-cluster-metadata 1";

/// A topic as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// The topic id (a UUID), fixed at creation.
    pub id: [u8; 16],
    pub partitions: i32,
    /// Topic settings set for this topic, by Kafka name; unset ones take the broker's
    /// defaults.
    pub configs: BTreeMap<String, String>,
}

/// Everything the broker must remember that the partition logs do not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// 16 random bytes drawn when the data folder is first used.
    pub cluster_id: [u8; 16],
    /// Producer ids below this one were handed out. The broker reserves them in blocks,
    /// so it writes this file once per block, not once per producer.
    pub next_producer_id: i64,
    pub topics: BTreeMap<String, TopicRecord>,
}

/// A failure to read or write the metadata file.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{operation} {path}: {source}; check the data folder's permissions and free space")]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}; restore the file from a backup or move the data folder away to start empty")]
    Invalid { path: PathBuf, reason: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(bytes)
}

impl ClusterMetadata {
    /// Returns empty metadata for a new data folder.
    pub fn new(cluster_id: [u8; 16]) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id,
            next_producer_id: 0,
            topics: BTreeMap::new(),
        }
    }

    /// Returns the cluster id as 32 hex digits.
    pub fn cluster_id_text(&self) -> String {
        hex(&self.cluster_id)
    }

    fn body(&self) -> String {
        let mut body = format!(
            "{HEADER}\ncluster_id {}\nnext_producer_id {}\n",
            hex(&self.cluster_id),
            self.next_producer_id
        );
        for (name, topic) in &self.topics {
            body.push_str(&format!("topic {name} {} {}\n", hex(&topic.id), topic.partitions));
            for (key, value) in &topic.configs {
                body.push_str(&format!("config {name} {key}={value}\n"));
            }
        }
        body
    }

    /// Encodes the file's text.
    pub fn encode(&self) -> String {
        let body = self.body();
        let crc = crc32c::crc32c(body.as_bytes());
        format!("{body}crc32c {crc:08x}\n")
    }

    /// Decodes the file's text, checking its CRC.
    pub fn decode(text: &str) -> Result<ClusterMetadata, String> {
        let (body, crc_line) = match text.trim_end_matches('\n').rsplit_once('\n') {
            Some((body, crc_line)) => (format!("{body}\n"), crc_line),
            None => return Err("the file has a single line".to_string()),
        };
        let stored = crc_line
            .strip_prefix("crc32c ")
            .ok_or_else(|| format!("last line {crc_line:?} is not a crc32c line"))?;
        let computed = format!("{:08x}", crc32c::crc32c(body.as_bytes()));
        if stored != computed {
            return Err(format!("crc32c mismatch: stored {stored}, computed {computed}"));
        }

        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not {HEADER:?}"));
        }
        let mut metadata = ClusterMetadata::new([0; 16]);
        for line in lines {
            let (kind, rest) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {line:?} has no value"))?;
            match kind {
                "cluster_id" => {
                    metadata.cluster_id = parse_hex16(rest).ok_or_else(|| format!("invalid cluster id {rest:?}"))?;
                }
                "next_producer_id" => {
                    metadata.next_producer_id =
                        rest.parse().map_err(|_| format!("invalid next_producer_id {rest:?}"))?;
                }
                "topic" => {
                    let fields: Vec<&str> = rest.split(' ').collect();
                    let [name, id, partitions] = fields[..] else {
                        return Err(format!("topic line {line:?} does not have 3 fields"));
                    };
                    let id = parse_hex16(id).ok_or_else(|| format!("invalid topic id in {line:?}"))?;
                    let partitions = partitions
                        .parse()
                        .map_err(|_| format!("invalid partition count in {line:?}"))?;
                    let topic = TopicRecord {
                        id,
                        partitions,
                        configs: BTreeMap::new(),
                    };
                    metadata.topics.insert(name.to_string(), topic);
                }
                "config" => {
                    let (name, setting) = rest
                        .split_once(' ')
                        .ok_or_else(|| format!("config line {line:?} has no setting"))?;
                    let (key, value) = setting
                        .split_once('=')
                        .ok_or_else(|| format!("config line {line:?} has no '='"))?;
                    let topic = metadata
                        .topics
                        .get_mut(name)
                        .ok_or_else(|| format!("config line {line:?} names an unknown topic"))?;
                    topic.configs.insert(key.to_string(), value.to_string());
                }
                _ => return Err(format!("unknown line {line:?}")),
            }
        }
        Ok(metadata)
    }

    /// Reads the metadata of the data folder `dir`; `None` when the file does not exist.
    pub async fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<ClusterMetadata>, MetadataError> {
        let path = dir.join(METADATA_FILE);
        let io_error = |operation, source| MetadataError::Io {
            operation,
            path: path.clone(),
            source,
        };
        let file = match disk.open(&path, false).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("open", source)),
        };
        let len = file.len().await.map_err(|source| io_error("read", source))?;
        let bytes = file
            .read_at(0, len as usize)
            .await
            .map_err(|source| io_error("read", source))?;
        let invalid = |reason: String| MetadataError::Invalid {
            path: path.clone(),
            reason,
        };
        let text = std::str::from_utf8(&bytes).map_err(|error| invalid(error.to_string()))?;
        ClusterMetadata::decode(text).map(Some).map_err(invalid)
    }

    /// Replaces the file durably: a temporary file is written and synced, renamed over the
    /// old one, and the folder is synced. A failed sync is returned as an error, and the
    /// caller must treat it as fatal.
    pub async fn write<D: Disk>(&self, disk: &D, dir: &Path) -> Result<(), MetadataError> {
        let path = dir.join(METADATA_FILE);
        let temporary = dir.join(TEMPORARY_FILE);
        let io_error = |operation, path: &Path, source| MetadataError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        };
        disk.create_dir_all(dir)
            .await
            .map_err(|source| io_error("create", dir, source))?;
        let file = disk
            .open(&temporary, true)
            .await
            .map_err(|source| io_error("create", &temporary, source))?;
        let text = self.encode();
        file.set_len(0)
            .await
            .map_err(|source| io_error("write", &temporary, source))?;
        file.write_at(0, text.as_bytes())
            .await
            .map_err(|source| io_error("write", &temporary, source))?;
        file.sync()
            .await
            .map_err(|source| io_error("sync", &temporary, source))?;
        disk.rename(&temporary, &path)
            .await
            .map_err(|source| io_error("replace", &path, source))?;
        disk.sync_dir(dir)
            .await
            .map_err(|source| io_error("sync folder", dir, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterMetadata {
        let mut metadata = ClusterMetadata::new([0xab; 16]);
        metadata.next_producer_id = 2000;
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "86400000".to_string());
        configs.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        metadata.topics.insert(
            "orders".to_string(),
            TopicRecord {
                id: [7; 16],
                partitions: 6,
                configs,
            },
        );
        metadata.topics.insert(
            "logs.v1".to_string(),
            TopicRecord {
                id: [9; 16],
                partitions: 1,
                configs: BTreeMap::new(),
            },
        );
        metadata
    }

    #[test]
    fn metadata_round_trips() {
        let metadata = sample();
        let decoded = ClusterMetadata::decode(&metadata.encode()).expect("decodes");
        assert_eq!(decoded, metadata);
    }

    #[test]
    fn changed_byte_fails_crc() {
        let text = sample().encode().replace("orders 0707", "orders 0708");
        let error = ClusterMetadata::decode(&text).unwrap_err();
        assert!(error.contains("crc32c mismatch"), "{error}");
    }

    #[test]
    fn missing_crc_line_is_rejected() {
        let text = sample().body();
        assert!(ClusterMetadata::decode(&text).is_err());
    }
}
