//! The server's settings: defaults, then a TOML file, then `FRANZ_*` environment variables
//! and flags, each overriding the one before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::topic_config;

/// Settings of one broker node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the Kafka listener binds, `host:port`.
    pub listener: String,
    /// Address given to clients in Metadata responses; the listener's
    /// address when unset.
    pub advertised_listener: Option<String>,
    /// Address the gRPC listener binds, `host:port`.
    pub grpc_listener: String,
    /// Folder of the partition logs and the cluster metadata.
    pub data_dir: PathBuf,
    /// This broker's id in Metadata and DescribeCluster responses.
    pub node_id: i32,
    /// `auto.create.topics.enable`: a Metadata or Produce request for an unknown topic
    /// creates it.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an automatically created topic.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`: larger request frames close the connection.
    pub socket_request_max_bytes: usize,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval_ms: u64,
    /// Topic settings that apply to every topic without its own value, by Kafka name.
    pub topic_defaults: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listener: "127.0.0.1:9092".to_string(),
            advertised_listener: None,
            grpc_listener: "127.0.0.1:9093".to_string(),
            data_dir: PathBuf::from("./franz-data"),
            node_id: 1,
            auto_create_topics: true,
            num_partitions: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_topic_num_partitions: 50,
            retention_check_interval_ms: 300_000,
            topic_defaults: BTreeMap::new(),
        }
    }
}

/// The TOML file's layout: every field optional, named as in [`ServerConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listener: Option<String>,
    pub advertised_listener: Option<String>,
    pub grpc_listener: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub node_id: Option<i32>,
    pub auto_create_topics: Option<bool>,
    pub num_partitions: Option<i32>,
    pub socket_request_max_bytes: Option<usize>,
    pub group_initial_rebalance_delay_ms: Option<i64>,
    pub group_min_session_timeout_ms: Option<i32>,
    pub group_max_session_timeout_ms: Option<i32>,
    pub offsets_topic_num_partitions: Option<i32>,
    pub retention_check_interval_ms: Option<u64>,
    /// Kafka topic setting names, quoted, for example `"retention.ms" = "86400000"`.
    #[serde(default)]
    pub topic_defaults: BTreeMap<String, toml::Value>,
}

impl FileConfig {
    /// Reads and parses the TOML file at `path`.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        #[allow(clippy::disallowed_methods)] // Read once at start-up, before any simulated IO.
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("reading the config file {} failed: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("invalid config file {}: {error}", path.display()))
    }
}

impl ServerConfig {
    /// Applies the values set in a TOML file over the current ones.
    pub fn apply_file(&mut self, file: FileConfig) -> Result<(), String> {
        macro_rules! take {
            ($field:ident) => {
                if let Some(value) = file.$field {
                    self.$field = value;
                }
            };
        }
        take!(listener);
        take!(grpc_listener);
        take!(data_dir);
        take!(node_id);
        take!(auto_create_topics);
        take!(num_partitions);
        take!(socket_request_max_bytes);
        take!(group_initial_rebalance_delay_ms);
        take!(group_min_session_timeout_ms);
        take!(group_max_session_timeout_ms);
        take!(offsets_topic_num_partitions);
        take!(retention_check_interval_ms);
        if file.advertised_listener.is_some() {
            self.advertised_listener = file.advertised_listener;
        }
        for (name, value) in file.topic_defaults {
            let value = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                other => {
                    return Err(format!(
                        "topic_defaults.{name}: {other} is not a string, integer or boolean"
                    ))
                }
            };
            self.topic_defaults.insert(name, value);
        }
        Ok(())
    }

    /// Checks every value and returns a message naming the first invalid one.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_partitions < 1 {
            return Err(format!("num_partitions {} must be at least 1", self.num_partitions));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(format!(
                "offsets_topic_num_partitions {} must be at least 1",
                self.offsets_topic_num_partitions
            ));
        }
        if self.socket_request_max_bytes < 1024 {
            return Err(format!(
                "socket_request_max_bytes {} must be at least 1024",
                self.socket_request_max_bytes
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(format!(
                "group_min_session_timeout_ms {} is above group_max_session_timeout_ms {}",
                self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
            ));
        }
        for (name, value) in &self.topic_defaults {
            topic_config::validate(name, value).map_err(|reason| format!("topic_defaults: {reason}"))?;
        }
        Ok(())
    }

    /// Returns the `host:port` that Metadata responses advertise.
    pub fn advertised(&self) -> &str {
        self.advertised_listener.as_deref().unwrap_or(&self.listener)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            listener = "127.0.0.1:19092"
            num_partitions = 3
            [topic_defaults]
            "retention.ms" = 86400000
            "message.timestamp.type" = "LogAppendTime"
            "#,
        )
        .expect("parses");
        let mut config = ServerConfig::default();
        config.apply_file(file).expect("applies");
        assert_eq!(config.listener, "127.0.0.1:19092");
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.topic_defaults["retention.ms"], "86400000");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let parsed: Result<FileConfig, _> = toml::from_str("listen = \"x\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn invalid_topic_default_is_rejected() {
        let mut config = ServerConfig::default();
        config.topic_defaults.insert("retention.ms".into(), "forever".into());
        assert!(config.validate().is_err());
    }
}
