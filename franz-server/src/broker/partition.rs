//! One partition as the broker serves it: its log, its idempotent producer state, and
//! the wake-up for fetches that wait for data.

use std::sync::Arc;

use bytes::BytesMut;
use franz_core::batch::BatchHeader;
use franz_core::producer::{ProducerStateTable, SequenceCheck, SequenceError};
use franz_core::{Disk, FlushPolicy, Log, LogError, ReadInfo};
use tokio::sync::{Mutex, Notify};

/// A failed produce to this partition.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("transactional batches are not supported yet")]
    Transactional,
}

/// The outcome of a produce to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    pub log: Log<D>,
    /// Held across the sequence check and the write, so that two batches of one producer
    /// cannot both pass the check. Syncs happen after it is released.
    producers: Mutex<ProducerStateTable>,
    /// Woken after every append that moves the high watermark.
    appended: Notify,
}

impl<D: Disk> Partition<D> {
    /// Wraps an opened log and rebuilds the producer state by reading every stored batch.
    pub async fn new(topic: String, index: i32, log: Log<D>) -> Result<Arc<Partition<D>>, LogError> {
        let mut producers = ProducerStateTable::new();
        // TODO: snapshot the producer state like Kafka does, so that a start does not read
        // the whole log.
        scan_batches(&log, |header, _| producers.record(header)).await?;
        Ok(Arc::new(Partition {
            topic,
            index,
            log,
            producers: Mutex::new(producers),
            appended: Notify::new(),
        }))
    }

    /// Appends the batches of one produce request. An idempotent batch that repeats one of
    /// its producer's last five is acknowledged with its original offsets and not stored
    /// again. Returns once the write is synced when the flush policy requires it.
    pub async fn append(&self, records: BytesMut) -> Result<Appended, AppendError> {
        let header = BatchHeader::parse(&records).map_err(|source| LogError::InvalidBatch { index: 0, source })?;
        if header.is_transactional() {
            return Err(AppendError::Transactional);
        }

        let mut producers = self.producers.lock().await;
        if let SequenceCheck::Duplicate {
            base_offset,
            last_offset,
        } = check_sequence(&mut producers, &header)?
        {
            drop(producers);
            // The first attempt may still be waiting for its sync, or its sync may have
            // failed: a retry is acknowledged only once the original batch is durable.
            if self.log.config().flush == FlushPolicy::EveryAppend {
                self.log.sync_to(last_offset + 1).await?;
            }
            return Ok(Appended {
                base_offset,
                log_append_time: -1,
                log_start_offset: self.log.log_start_offset().await,
            });
        }
        let pending = self.log.append_unsynced(records, 0).await?;
        if header.producer_id >= 0 {
            let stored = BatchHeader {
                base_offset: pending.info.base_offset,
                ..header
            };
            producers.record(&stored);
        }
        drop(producers);

        if pending.sync_due && !cfg!(feature = "planted-ack-before-fsync") {
            self.log.sync_to(pending.info.last_offset + 1).await?;
        }
        self.appended.notify_waiters();
        Ok(Appended {
            base_offset: pending.info.base_offset,
            log_append_time: pending.info.log_append_time,
            log_start_offset: pending.info.log_start_offset,
        })
    }

    /// Returns the high watermark: the offset below which consumers may read. A single node
    /// is the only replica, so it is the log end offset, except under flush.messages=1,
    /// where it is the synced end so that no consumer reads a record a crash can undo.
    pub async fn high_watermark(&self) -> i64 {
        if self.log.config().flush == FlushPolicy::EveryAppend {
            self.log.recovery_point().await.min(self.log.log_end_offset().await)
        } else {
            self.log.log_end_offset().await
        }
    }

    /// Reads whole batches from `offset` up to `max_bytes`, stopping at the high watermark.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<(ReadInfo, i64), LogError> {
        let high_watermark = self.high_watermark().await;
        // The planted bug serves what was appended but not yet synced.
        let read_limit = if cfg!(feature = "planted-fetch-past-high-watermark") {
            self.log.log_end_offset().await
        } else {
            high_watermark
        };
        let mut info = self.log.read(offset, max_bytes).await?;
        let mut kept = 0;
        while kept < info.records.len() {
            let Ok(header) = BatchHeader::parse(&info.records[kept..]) else {
                break;
            };
            if header.base_offset >= read_limit {
                break;
            }
            kept += header.size();
        }
        info.records.truncate(kept);
        Ok((info, high_watermark))
    }

    /// Returns a future that completes after the next append. Call
    /// `enable()` on it before checking for data, so that no append is missed.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }

    /// Wakes every waiting fetch, for example at shutdown.
    pub fn wake_waiters(&self) {
        self.appended.notify_waiters();
    }
}

/// Checks an idempotent batch against its producer's state. The planted bug skips the check,
/// so that a retry is stored twice.
fn check_sequence(producers: &mut ProducerStateTable, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
    if cfg!(feature = "planted-skip-sequence-check") {
        return Ok(SequenceCheck::Append);
    }
    producers.check(header)
}

/// Calls `visit` with the header and bytes of every batch of `log`, oldest first.
pub async fn scan_batches<D: Disk>(log: &Log<D>, mut visit: impl FnMut(&BatchHeader, &[u8])) -> Result<(), LogError> {
    const SCAN_BYTES: usize = 1024 * 1024;
    let mut offset = log.log_start_offset().await;
    loop {
        let info = log.read(offset, SCAN_BYTES).await?;
        if info.records.is_empty() {
            return Ok(());
        }
        let mut position = 0;
        while position < info.records.len() {
            let header = BatchHeader::parse(&info.records[position..])
                .map_err(|source| LogError::InvalidBatch { index: 0, source })?;
            let end = (position + header.size()).min(info.records.len());
            visit(&header, &info.records[position..end]);
            offset = header.next_offset();
            position = end;
        }
    }
}
