//! Settings of one partition log, named and defaulted as Kafka's topic settings.

use std::time::Duration;

use crate::batch::TimestampType;

/// When the log forces appended data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append is synced before it returns. Appends that arrive together share one
    /// fsync.
    EveryAppend,
    /// An append syncs once this many messages are unsynced (Kafka's `flush.messages`).
    EveryMessages(u64),
    /// An append syncs once this much time passed since the last sync (Kafka's
    /// `flush.ms`); [`crate::Log::flush_if_due`] lets a timer do the same.
    Interval(Duration),
    /// The log never syncs on its own and leaves write-back to the OS, Kafka's default;
    /// replication protects the data. Rolls, truncation and close still sync.
    Os,
}

/// Settings of one partition log. [`LogConfig::default`] gives Kafka's defaults.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: a segment rolls before it would grow past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: a non-empty segment rolls once its first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: maximum size of each index file; a full index rolls the segment.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between two offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: segments whose newest record is older than this are deleted;
    /// `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: the oldest segments are deleted while the log is larger than
    /// this; `None` for no size limit.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest record batch an append accepts.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`: CreateTime keeps the producer's timestamps, LogAppendTime
    /// stamps each batch with the broker's clock.
    pub timestamp_type: TimestampType,
    /// When appended data is synced.
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::Os,
        }
    }
}

/// Smallest `segment.index.bytes`: room for a few entries of either index.
const MIN_INDEX_BYTES: u64 = 4 * 12;

impl LogConfig {
    /// Checks the settings against the limits of the on-disk format.
    pub fn validate(&self) -> Result<(), String> {
        // Index entries store positions as u32, and Kafka caps segment.bytes at i32::MAX.
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(format!(
                "segment.bytes {} is outside [14, {}]",
                self.segment_bytes,
                i32::MAX
            ));
        }
        if self.segment_index_bytes < MIN_INDEX_BYTES || self.segment_index_bytes > i32::MAX as u64 {
            return Err(format!(
                "segment.index.bytes {} is outside [{MIN_INDEX_BYTES}, {}]",
                self.segment_index_bytes,
                i32::MAX
            ));
        }
        if self.segment_ms < 1 {
            return Err(format!("segment.ms {} must be at least 1", self.segment_ms));
        }
        if self.max_message_bytes == 0 {
            return Err("max.message.bytes must be at least 1".to_string());
        }
        if self.flush == FlushPolicy::EveryMessages(0) {
            return Err("flush.messages must be at least 1".to_string());
        }
        Ok(())
    }
}
