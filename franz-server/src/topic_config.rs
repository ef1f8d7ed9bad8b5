//! Topic settings under Kafka's names: which ones Franz supports, their types and defaults,
//! validation of new values, and their translation into a [`LogConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use franz_core::batch::TimestampType;
use franz_core::{FlushPolicy, LogConfig};

/// Kafka's `Long.MAX_VALUE`, the "never" of flush.messages and flush.ms.
const NEVER: i64 = i64::MAX;

/// The type of a setting, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

/// A topic setting Franz supports.
pub struct TopicSetting {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    pub documentation: &'static str,
    /// Checks a value and returns why it is invalid.
    validate: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |value| match value.parse::<i64>() {
        Ok(number) if number >= min => Ok(()),
        Ok(number) => Err(format!("{number} is below the minimum {min}")),
        Err(_) => Err(format!("{value:?} is not an integer")),
    }
}

fn int_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |value| match value.parse::<i32>() {
        Ok(number) if i64::from(number) >= min => Ok(()),
        Ok(number) => Err(format!("{number} is below the minimum {min}")),
        Err(_) => Err(format!("{value:?} is not a 32-bit integer")),
    }
}

fn one_of(allowed: &'static [&'static str]) -> impl Fn(&str) -> Result<(), String> {
    move |value| {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(format!("{value:?} is not one of {}", allowed.join(", ")))
        }
    }
}

/// Every topic setting Franz accepts. Others are rejected with INVALID_CONFIG, as Kafka
/// rejects unknown names.
pub static TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        default: "delete",
        documentation: "delete: old segments are removed by retention.ms and retention.bytes. compact is stored but not applied yet.",
        validate: |value| {
            for policy in value.split(',') {
                one_of(&["delete", "compact"])(policy.trim())?;
            }
            Ok(())
        },
    },
    TopicSetting {
        name: "compression.type",
        config_type: ConfigType::String,
        default: "producer",
        documentation: "Only producer: batches are stored as the producer compressed them.",
        validate: |value| one_of(&["producer"])(value).map_err(|reason| format!("{reason}; Franz does not recompress")),
    },
    TopicSetting {
        name: "flush.messages",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        documentation: "Sync the log after this many messages; 1 syncs every append before it is acknowledged.",
        validate: |value| long_at_least(1)(value),
    },
    TopicSetting {
        name: "flush.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        documentation: "Sync the log once this many milliseconds passed since the last sync.",
        validate: |value| long_at_least(0)(value),
    },
    TopicSetting {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        default: "4096",
        documentation: "Bytes of batches between two offset index entries.",
        validate: |value| int_at_least(0)(value),
    },
    TopicSetting {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        default: "1048588",
        documentation: "Largest record batch, in bytes, that a produce may append.",
        validate: |value| int_at_least(1)(value),
    },
    TopicSetting {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        default: "CreateTime",
        documentation: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
        validate: |value| one_of(&["CreateTime", "LogAppendTime"])(value),
    },
    TopicSetting {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        default: "1",
        documentation: "Replicas that must have a write before acks=all returns; a single node has one.",
        validate: |value| int_at_least(1)(value),
    },
    TopicSetting {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        default: "-1",
        documentation: "Size in bytes above which the oldest segments of a partition are deleted; -1 for no limit.",
        validate: |value| long_at_least(-1)(value),
    },
    TopicSetting {
        name: "retention.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        documentation: "Age in milliseconds after which a segment's records are deleted; -1 keeps them forever.",
        validate: |value| long_at_least(-1)(value),
    },
    TopicSetting {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        default: "1073741824",
        documentation: "Size in bytes at which a partition rolls to a new segment file.",
        validate: |value| int_at_least(14)(value),
    },
    TopicSetting {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        default: "10485760",
        documentation: "Maximum size in bytes of each segment's offset and time index.",
        validate: |value| int_at_least(48)(value),
    },
    TopicSetting {
        name: "segment.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        documentation: "Milliseconds after which a non-empty segment rolls.",
        validate: |value| long_at_least(1)(value),
    },
];

/// Returns the setting named `name`.
pub fn setting(name: &str) -> Option<&'static TopicSetting> {
    TOPIC_SETTINGS.iter().find(|setting| setting.name == name)
}

/// Checks one setting's name and value. The error is the message for INVALID_CONFIG.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let setting = setting(name).ok_or_else(|| format!("unknown topic config {name:?}"))?;
    if value.contains('\n') {
        return Err(format!("{name} value contains a line break"));
    }
    (setting.validate)(value).map_err(|reason| format!("invalid value for {name}: {reason}"))
}

/// A topic's effective settings: the broker's defaults overlaid with its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfigs {
    /// Defaults set in the server configuration, by name.
    pub broker_defaults: BTreeMap<String, String>,
    /// Values set on the topic, by name.
    pub overrides: BTreeMap<String, String>,
}

/// The source of a setting's value, numbered as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic = 1,
    StaticBroker = 4,
    Default = 5,
}

impl TopicConfigs {
    /// Returns the value in force for a known setting and where it comes from.
    pub fn value(&self, setting: &TopicSetting) -> (String, ConfigSource) {
        if let Some(value) = self.overrides.get(setting.name) {
            return (value.clone(), ConfigSource::Topic);
        }
        if let Some(value) = self.broker_defaults.get(setting.name) {
            return (value.clone(), ConfigSource::StaticBroker);
        }
        (setting.default.to_string(), ConfigSource::Default)
    }

    fn long(&self, name: &str) -> i64 {
        let setting = setting(name).expect("a known setting");
        let (value, _) = self.value(setting);
        value.parse().expect("settings are validated before they are stored")
    }

    /// Translates the settings into the storage engine's.
    pub fn log_config(&self) -> LogConfig {
        let retention_ms = self.long("retention.ms");
        let retention_bytes = self.long("retention.bytes");
        let flush_messages = self.long("flush.messages");
        let flush_ms = self.long("flush.ms");
        let flush = if flush_messages == 1 {
            FlushPolicy::EveryAppend
        } else if flush_messages != NEVER {
            FlushPolicy::EveryMessages(flush_messages as u64)
        } else if flush_ms != NEVER {
            FlushPolicy::Interval(Duration::from_millis(flush_ms as u64))
        } else {
            FlushPolicy::Os
        };
        let (timestamp_type, _) = self.value(setting("message.timestamp.type").expect("a known setting"));
        LogConfig {
            segment_bytes: self.long("segment.bytes") as u64,
            segment_ms: self.long("segment.ms"),
            segment_index_bytes: self.long("segment.index.bytes") as u64,
            index_interval_bytes: self.long("index.interval.bytes") as u64,
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            max_message_bytes: self.long("max.message.bytes") as usize,
            timestamp_type: if timestamp_type == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            flush,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_log_defaults() {
        let config = TopicConfigs::default().log_config();
        let expected = LogConfig::default();
        assert_eq!(config.segment_bytes, expected.segment_bytes);
        assert_eq!(config.retention_ms, expected.retention_ms);
        assert_eq!(config.max_message_bytes, expected.max_message_bytes);
        assert_eq!(config.flush, FlushPolicy::Os);
    }

    #[test]
    fn flush_messages_one_syncs_every_append() {
        let mut configs = TopicConfigs::default();
        configs.overrides.insert("flush.messages".into(), "1".into());
        assert_eq!(configs.log_config().flush, FlushPolicy::EveryAppend);
    }

    #[test]
    fn override_beats_broker_default() {
        let mut configs = TopicConfigs::default();
        configs.broker_defaults.insert("retention.ms".into(), "1000".into());
        configs.overrides.insert("retention.ms".into(), "-1".into());
        assert_eq!(configs.log_config().retention_ms, None);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("no.such.setting", "1").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("compression.type", "gzip").is_err());
    }
}
