//! A partition log: an ordered set of segments with appends, reads by offset and by
//! timestamp, rolling, retention, truncation, flushing and crash recovery.
//!
//! A [`Log`] is shared between tasks (`&self` methods). Appends and reads take an async
//! read-write lock on the segments. Syncs run outside it, under a separate flush lock, so
//! appends that arrive while one fsync runs share the next one (group commit).
//!
//! The log never touches the OS directly: files go through [`Disk`], time through
//! [`Clock`].

mod checkpoint;
mod config;
mod index;
mod segment;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{Mutex, RwLock};
use tracing::{debug, error, info, warn};

use crate::batch::{self, BatchError, BatchHeader, TimestampType};
use crate::clock::Clock;
use crate::disk::{Disk, DiskFile};
use checkpoint::{Checkpoint, CHECKPOINT_FILE};
pub use config::{FlushPolicy, LogConfig};
use segment::{ScanEnd, Segment, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// Error of a log operation. [`LogError::is_fatal`] separates errors that take the log
/// offline from those the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("batch {index} of the append is invalid: {source}")]
    InvalidBatch { index: usize, source: BatchError },
    #[error(
        "batch {index} is {size} bytes, over max.message.bytes ({max}); \
         send smaller batches or raise the topic's max.message.bytes"
    )]
    RecordTooLarge { index: usize, size: usize, max: usize },
    #[error(
        "offset {offset} is out of range: the log contains offsets {log_start_offset} to {log_end_offset} (exclusive)"
    )]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(
        "{} is corrupt at byte {position}: {reason}; restore the partition from a replica, \
         or move this segment and the later ones out of the folder to drop their data",
        path.display()
    )]
    Corruption {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("{operation} failed on {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the log is offline and accepts no writes: {reason}; restart the broker once the disk is healthy")]
    Offline { reason: Arc<str> },
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

impl LogError {
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Builds the error of a failure that takes the log offline.
    pub(crate) fn fatal(reason: String) -> LogError {
        LogError::Offline { reason: reason.into() }
    }

    pub(crate) fn fatal_io(operation: &'static str, path: &Path, source: io::Error) -> LogError {
        LogError::fatal(LogError::io(operation, path, source).to_string())
    }

    /// Returns whether the error took the log offline or keeps it from opening.
    pub fn is_fatal(&self) -> bool {
        matches!(self, LogError::Offline { .. } | LogError::Corruption { .. })
    }
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// The broker's timestamp for a LogAppendTime topic, -1 for CreateTime, as Kafka's
    /// produce response has it.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// An append that is written but maybe not yet synced; see [`Log::append_unsynced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAppend {
    pub info: AppendInfo,
    /// The flush policy wants a sync before the write is acknowledged.
    pub sync_due: bool,
}

/// The outcome of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    /// Whole batches, exactly as stored; empty at the end of the log.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// Result of a retention pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub log_start_offset: i64,
}

/// One partition's log. See the module documentation.
pub struct Log<D: Disk> {
    dir: PathBuf,
    disk: D,
    clock: Arc<dyn Clock>,
    /// Replaced whole by [`Log::set_config`]; each operation reads one consistent copy.
    config: std::sync::RwLock<Arc<LogConfig>>,
    state: RwLock<LogState<D>>,
    /// Held by the one task that syncs; others wait and usually find their data synced.
    flush_lock: Mutex<()>,
}

struct LogState<D: Disk> {
    /// Segments by base offset; the last one is the active segment.
    segments: BTreeMap<i64, Segment<D>>,
    log_start_offset: i64,
    /// Every offset below this one is synced.
    recovery_point: i64,
    /// Messages appended since the log opened, for `flush.messages`.
    messages_appended: u64,
    /// `messages_appended` as of the last sync.
    messages_synced: u64,
    last_sync_ms: i64,
    /// Counts creations and removals in the folder; compared with `folder_changes_synced`
    /// to know whether the folder needs a sync.
    folder_changes: u64,
    folder_changes_synced: u64,
    /// Reason the log went offline, after a failed fsync or a failed rollback.
    offline: Option<Arc<str>>,
}

impl<D: Disk> LogState<D> {
    fn active(&self) -> &Segment<D> {
        self.segments
            .values()
            .next_back()
            .expect("a log has at least one segment")
    }

    fn active_mut(&mut self) -> &mut Segment<D> {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log has at least one segment")
    }

    fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    fn check_online(&self) -> Result<(), LogError> {
        match &self.offline {
            Some(reason) => Err(LogError::Offline { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Takes the log offline when `error` is fatal, and returns the error for the caller.
    fn fail(&mut self, dir: &Path, error: LogError) -> LogError {
        if let LogError::Offline { reason } = &error {
            if self.offline.is_none() {
                error!(dir = %dir.display(), %reason, "taking the log offline");
            }
            self.offline = Some(reason.clone());
        }
        error
    }

    fn checkpoint(&self, clean_shutdown: bool) -> Checkpoint {
        Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: self.recovery_point,
            clean_shutdown,
        }
    }
}

/// Parses `00000000000000000042.log` into 42.
fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

impl<D: Disk> Log<D> {
    /// Opens the log in the folder `dir`, creating it when missing, and recovers it.
    ///
    /// After a clean close the indexes are trusted and nothing is scanned. Otherwise every
    /// segment from the one containing the recovery point onwards is scanned batch by
    /// batch. An incomplete or zero-filled tail is cut. An invalid batch with valid data
    /// after it, or anywhere below the recovery point, fails the open with
    /// [`LogError::Corruption`]. Index files that are missing or inconsistent are rebuilt.
    pub async fn open(
        disk: D,
        clock: Arc<dyn Clock>,
        dir: impl Into<PathBuf>,
        config: LogConfig,
    ) -> Result<Log<D>, LogError> {
        let dir = dir.into();
        config.validate().map_err(LogError::InvalidConfig)?;
        disk.create_dir_all(&dir)
            .await
            .map_err(|source| LogError::io("create partition folder", &dir, source))?;

        let checkpoint = Checkpoint::read(&disk, &dir).await?;
        let base_offsets = Self::list_segments(&disk, &dir).await?;
        let log = Log {
            dir,
            disk,
            clock,
            config: std::sync::RwLock::new(Arc::new(config)),
            state: RwLock::new(LogState {
                segments: BTreeMap::new(),
                log_start_offset: 0,
                recovery_point: 0,
                messages_appended: 0,
                messages_synced: 0,
                last_sync_ms: 0,
                folder_changes: 0,
                folder_changes_synced: 0,
                offline: None,
            }),
            flush_lock: Mutex::new(()),
        };
        log.recover(checkpoint, base_offsets).await?;
        Ok(log)
    }

    /// Lists the base offsets of the folder's segments, removing leftovers: temporary
    /// checkpoint files and index files without a log file.
    async fn list_segments(disk: &D, dir: &Path) -> Result<Vec<i64>, LogError> {
        let entries = disk
            .list_dir(dir)
            .await
            .map_err(|source| LogError::io("list partition folder", dir, source))?;
        let mut logs = Vec::new();
        let mut indexes = Vec::new();
        for path in entries {
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                warn!(path = %path.display(), "ignoring a file whose name is not UTF-8");
                continue;
            };
            match parse_segment_name(name) {
                Some((base, LOG_SUFFIX)) => logs.push(base),
                Some((base, OFFSET_INDEX_SUFFIX | TIME_INDEX_SUFFIX)) => indexes.push((base, path.clone())),
                _ if name == CHECKPOINT_FILE => {}
                _ if Checkpoint::is_temporary(name) => {
                    debug!(path = %path.display(), "removing a checkpoint left over from an interrupted write");
                    disk.remove_file(&path)
                        .await
                        .map_err(|source| LogError::io("remove leftover", &path, source))?;
                }
                _ => warn!(path = %path.display(), "ignoring an unknown file in the partition folder"),
            }
        }
        logs.sort_unstable();
        for (base, path) in indexes {
            if logs.binary_search(&base).is_err() {
                info!(path = %path.display(), "removing an index file whose segment is gone");
                disk.remove_file(&path)
                    .await
                    .map_err(|source| LogError::io("remove orphan index", &path, source))?;
            }
        }
        Ok(logs)
    }

    async fn recover(&self, checkpoint: Option<Checkpoint>, base_offsets: Vec<i64>) -> Result<(), LogError> {
        let mut state = self.state.write().await;
        let now = self.clock.now_ms();
        let clean = checkpoint.is_some_and(|checkpoint| checkpoint.clean_shutdown);
        let recovery_point = checkpoint.map_or(0, |checkpoint| checkpoint.recovery_point);
        let checkpoint_start = checkpoint.map_or(0, |checkpoint| checkpoint.log_start_offset);
        let index_bytes = self.config().segment_index_bytes;
        let interval = self.config().index_interval_bytes;

        // The scan starts at the segment that contains the recovery point.
        let scan_from = base_offsets
            .iter()
            .copied()
            .rfind(|base| *base <= recovery_point)
            .unwrap_or(i64::MIN);
        let mut rebuilt = Vec::new();
        for (position, &base) in base_offsets.iter().enumerate() {
            let next_base = base_offsets.get(position + 1).copied();
            let mut segment = Segment::open(&self.disk, &self.dir, base).await?;
            let must_scan = !clean && base >= scan_from;
            let index_problem = if must_scan {
                None
            } else {
                segment.check_indexes(next_base.unwrap_or(i64::MAX)).err()
            };
            if !must_scan && index_problem.is_none() {
                segment.load_tail().await?;
                state.segments.insert(base, segment);
                continue;
            }
            if let Some(problem) = &index_problem {
                warn!(segment = %segment.log_path.display(), %problem, "rebuilding the indexes of a segment");
            }

            rebuilt.push(base);
            segment.activate(index_bytes)?;
            let end = segment.rebuild(interval).await?;
            let (cut_at, reason) = match end {
                ScanEnd::Clean => (None, String::new()),
                ScanEnd::Corrupt { position, reason } => {
                    return Err(LogError::Corruption {
                        path: segment.log_path.to_path_buf(),
                        position,
                        reason,
                    })
                }
                ScanEnd::TornTail { position, reason } => (Some(position), reason),
            };
            // A segment that ends short of the next one lost its unsynced tail while a
            // later segment kept data: the later data must go too, or the log has a hole.
            let (cut_at, reason) = match (cut_at, next_base) {
                (None, Some(next_base)) if segment.next_offset < next_base => (
                    Some(segment.size),
                    format!(
                        "the segment ends at offset {} before the next segment's base offset {next_base}",
                        segment.next_offset
                    ),
                ),
                _ => (cut_at, reason),
            };
            let Some(cut_at) = cut_at else {
                state.segments.insert(base, segment);
                continue;
            };

            // A tear in data that was synced is damage at rest, not an interrupted write.
            if segment.next_offset < recovery_point || !must_scan {
                return Err(LogError::Corruption {
                    path: segment.log_path.to_path_buf(),
                    position: cut_at,
                    reason: format!("{reason} in data that was synced"),
                });
            }
            warn!(
                segment = %segment.log_path.display(),
                position = cut_at,
                dropped_bytes = segment.size - cut_at,
                %reason,
                "cutting a torn tail left by a crash"
            );
            segment.cut_at(cut_at).await?;
            state.segments.insert(base, segment);
            for &later in &base_offsets[position + 1..] {
                let later = Segment::open(&self.disk, &self.dir, later).await?;
                warn!(segment = %later.log_path.display(), "deleting a segment that follows a torn tail");
                later.delete(&self.disk, &self.dir).await?;
                state.folder_changes += 1;
            }
            break;
        }

        if state.segments.is_empty() {
            let segment = Segment::create(&self.disk, &self.dir, checkpoint_start, index_bytes, now).await?;
            state.segments.insert(checkpoint_start, segment);
            state.folder_changes += 1;
        }
        self.check_continuity(&state)?;

        // Seal the rebuilt segments but the last, which takes the appends. Client timestamps
        // may be far off, so segment.ms counts from the broker's clock: from now, after a restart.
        let last = *state.segments.keys().next_back().expect("at least one segment");
        for (base, segment) in state.segments.iter_mut() {
            segment.roll_base_ms = now;
            if *base == last {
                segment.activate(index_bytes)?;
            } else if rebuilt.contains(base) {
                segment.seal()?;
            }
        }

        let first_base = *state.segments.keys().next().expect("at least one segment");
        state.log_start_offset = checkpoint_start.max(first_base);
        if state.log_start_offset > state.log_end_offset() {
            let start = state.log_start_offset;
            warn!(
                log_start_offset = start,
                log_end_offset = state.log_end_offset(),
                "the log start offset passes the recovered end; starting an empty log there"
            );
            self.replace_all_segments(&mut state, start).await?;
        }

        // Sync what recovery kept or changed, then mark the log as running: a crash from
        // here on must be recovered.
        for segment in state.segments.values() {
            segment
                .log
                .sync()
                .await
                .map_err(|source| LogError::fatal_io("sync recovered segment", &segment.log_path, source))?;
        }
        state.recovery_point = state.log_end_offset();
        state.last_sync_ms = now;
        state.checkpoint(false).write(&self.disk, &self.dir).await?;
        state.folder_changes_synced = state.folder_changes;
        info!(
            dir = %self.dir.display(),
            clean_shutdown = clean,
            scanned_segments = rebuilt.len(),
            segments = state.segments.len(),
            log_start_offset = state.log_start_offset,
            log_end_offset = state.log_end_offset(),
            "opened partition log"
        );
        Ok(())
    }

    /// Checks that no segment's data runs into the next segment.
    fn check_continuity(&self, state: &LogState<D>) -> Result<(), LogError> {
        let mut previous: Option<&Segment<D>> = None;
        for segment in state.segments.values() {
            if let Some(previous) = previous {
                if previous.next_offset > segment.base_offset {
                    return Err(LogError::Corruption {
                        path: previous.log_path.to_path_buf(),
                        position: previous.size,
                        reason: format!(
                            "the segment ends at offset {}, past the next segment's base offset {}",
                            previous.next_offset, segment.base_offset
                        ),
                    });
                }
            }
            previous = Some(segment);
        }
        Ok(())
    }

    /// Deletes every segment and starts an empty one at `base_offset`.
    async fn replace_all_segments(&self, state: &mut LogState<D>, base_offset: i64) -> Result<(), LogError> {
        for segment in std::mem::take(&mut state.segments).into_values() {
            segment.delete(&self.disk, &self.dir).await?;
        }
        let segment = Segment::create(
            &self.disk,
            &self.dir,
            base_offset,
            self.config().segment_index_bytes,
            self.clock.now_ms(),
        )
        .await?;
        state.segments.insert(base_offset, segment);
        state.folder_changes += 1;
        state.log_start_offset = base_offset;
        state.recovery_point = base_offset;
        Ok(())
    }

    /// Returns the partition folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the settings in force.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the settings after validating them. Appends, rolls and retention passes
    /// that start afterwards use the new ones; segments already written keep their size.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.validate().map_err(LogError::InvalidConfig)?;
        *self.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
        Ok(())
    }

    pub async fn log_start_offset(&self) -> i64 {
        self.state.read().await.log_start_offset
    }

    /// Returns the offset the next appended record gets.
    pub async fn log_end_offset(&self) -> i64 {
        self.state.read().await.log_end_offset()
    }

    /// Returns the offset below which every record is synced.
    pub async fn recovery_point(&self) -> i64 {
        self.state.read().await.recovery_point
    }

    pub async fn segment_count(&self) -> usize {
        self.state.read().await.segments.len()
    }

    /// Returns the base offsets of the segments, oldest first.
    pub async fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.read().await.segments.keys().copied().collect()
    }

    /// Returns the bytes of batches stored in all segments.
    pub async fn size_bytes(&self) -> u64 {
        self.state
            .read()
            .await
            .segments
            .values()
            .map(|segment| segment.size)
            .sum()
    }

    /// Splits `records` into batches and validates each one fully. Returns their headers.
    fn validate(&self, records: &[u8], config: &LogConfig) -> Result<Vec<BatchHeader>, LogError> {
        let mut headers = Vec::new();
        let mut position = 0;
        while position < records.len() {
            let index = headers.len();
            let rest = &records[position..];
            let header = BatchHeader::parse(rest).map_err(|source| LogError::InvalidBatch { index, source })?;
            if header.size() > config.max_message_bytes {
                return Err(LogError::RecordTooLarge {
                    index,
                    size: header.size(),
                    max: config.max_message_bytes,
                });
            }
            if header.size() > rest.len() {
                let source = BatchError::Truncated {
                    available: rest.len(),
                    needed: header.size(),
                };
                return Err(LogError::InvalidBatch { index, source });
            }
            let header =
                batch::validate(&rest[..header.size()]).map_err(|source| LogError::InvalidBatch { index, source })?;
            position += header.size();
            headers.push(header);
        }
        if headers.is_empty() {
            let source = BatchError::Truncated {
                available: 0,
                needed: batch::HEADER_LEN,
            };
            return Err(LogError::InvalidBatch { index: 0, source });
        }
        Ok(headers)
    }

    /// Appends one or more record batches, all or none.
    ///
    /// Each batch is validated (magic 2, length, CRC32C, record count, offset deltas and
    /// `max.message.bytes`), then given the next offsets by rewriting its base offset, and
    /// stamped with `leader_epoch` and, on a LogAppendTime topic, the broker's time. The
    /// call returns once the data is written and, if the flush policy requires it, synced.
    pub async fn append(&self, records: BytesMut, leader_epoch: i32) -> Result<AppendInfo, LogError> {
        let pending = self.append_unsynced(records, leader_epoch).await?;
        if pending.sync_due {
            self.sync_to(pending.info.last_offset + 1).await?;
        }
        Ok(pending.info)
    }

    /// Appends like [`Log::append`] but returns before any sync, saying whether the flush
    /// policy wants one. The caller MUST then call [`Log::sync_to`] with
    /// `info.last_offset + 1` when `sync_due` is set, before acknowledging the write. This
    /// split lets a caller hold its own lock over the write alone, so that appends under
    /// that lock still share fsyncs.
    pub async fn append_unsynced(&self, mut records: BytesMut, leader_epoch: i32) -> Result<PendingAppend, LogError> {
        let config = self.config();
        let headers = self.validate(&records, &config)?;
        let record_count: u64 = headers.iter().map(|header| header.record_count as u64).sum();
        let offset_span: i64 = headers
            .iter()
            .map(|header| i64::from(header.last_offset_delta) + 1)
            .sum();
        let now = self.clock.now_ms();

        let mut state = self.state.write().await;
        state.check_online()?;
        let appended = self
            .append_locked(&mut state, &mut records, &headers, offset_span, leader_epoch, now)
            .await;
        let info = appended.map_err(|error| state.fail(&self.dir, error))?;
        state.messages_appended += record_count;
        let sync_due = match config.flush {
            FlushPolicy::EveryAppend => true,
            FlushPolicy::EveryMessages(messages) => state.messages_appended - state.messages_synced >= messages,
            FlushPolicy::Interval(interval) => now - state.last_sync_ms >= interval.as_millis() as i64,
            FlushPolicy::Os => false,
        };
        Ok(PendingAppend { info, sync_due })
    }

    /// Rolls when needed, assigns offsets and writes the batches. The caller holds the
    /// write lock and takes the log offline on a fatal error.
    async fn append_locked(
        &self,
        state: &mut LogState<D>,
        records: &mut BytesMut,
        headers: &[BatchHeader],
        offset_span: i64,
        leader_epoch: i32,
        now: i64,
    ) -> Result<AppendInfo, LogError> {
        self.maybe_roll(state, records.len() as u64, offset_span, now).await?;

        let base_offset = state.log_end_offset();
        let log_append_time = match self.config().timestamp_type {
            TimestampType::LogAppendTime => now,
            TimestampType::CreateTime => -1,
        };
        let mut assigned = Vec::with_capacity(headers.len());
        let mut position = 0;
        let mut next_offset = base_offset;
        for header in headers {
            let bytes = &mut records[position..position + header.size()];
            batch::set_base_offset(bytes, next_offset);
            batch::set_partition_leader_epoch(bytes, leader_epoch);
            if log_append_time >= 0 {
                batch::set_log_append_time(bytes, log_append_time);
            }
            assigned.push(BatchHeader::parse(bytes).expect("a validated batch parses"));
            next_offset += i64::from(header.last_offset_delta) + 1;
            position += header.size();
        }

        let interval = self.config().index_interval_bytes;
        state.active_mut().append(records, &assigned, interval, now).await?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time,
            log_start_offset: state.log_start_offset,
        })
    }

    /// Rolls to a new segment when the append would overflow the active one's size,
    /// index or relative offsets, or when the active segment is older than `segment.ms`.
    async fn maybe_roll(
        &self,
        state: &mut LogState<D>,
        append_bytes: u64,
        offset_span: i64,
        now: i64,
    ) -> Result<(), LogError> {
        let active = state.active();
        let reason = if active.size == 0 {
            None
        } else if active.size + append_bytes > self.config().segment_bytes {
            Some("segment.bytes")
        } else if now - active.roll_base_ms > self.config().segment_ms {
            Some("segment.ms")
        } else if active.indexes_full() {
            Some("full index")
        } else if active.next_offset + offset_span - 1 - active.base_offset > i64::from(u32::MAX) {
            Some("relative offset overflow")
        } else {
            None
        };
        match reason {
            Some(reason) => self.roll_locked(state, now, reason).await,
            None => Ok(()),
        }
    }

    async fn roll_locked(&self, state: &mut LogState<D>, now: i64, reason: &'static str) -> Result<(), LogError> {
        let base_offset = state.log_end_offset();
        if state.active().base_offset == base_offset {
            return Ok(());
        }
        // The old segment is synced before the new one exists, so recovery never finds a
        // later segment after a lost tail, and after a roll it scans only the newest one.
        let old = state.active_mut();
        old.seal()?;
        old.log
            .sync()
            .await
            .map_err(|source| LogError::fatal_io("sync rolled segment", &old.log_path, source))?;
        state.recovery_point = base_offset;
        let segment = Segment::create(
            &self.disk,
            &self.dir,
            base_offset,
            self.config().segment_index_bytes,
            now,
        )
        .await?;
        state.segments.insert(base_offset, segment);
        state.folder_changes += 1;
        info!(dir = %self.dir.display(), base_offset, reason, "rolled to a new segment");
        state.checkpoint(false).write(&self.disk, &self.dir).await
    }

    /// Rolls to a new segment now, unless the active one is empty.
    pub async fn roll(&self) -> Result<(), LogError> {
        let mut state = self.state.write().await;
        state.check_online()?;
        let rolled = self.roll_locked(&mut state, self.clock.now_ms(), "requested").await;
        rolled.map_err(|error| state.fail(&self.dir, error))
    }

    /// Syncs the log up to at least `target` (exclusive). Concurrent callers share one
    /// fsync: the task holding the flush lock syncs everything appended so far, and the
    /// others then find their offsets below the recovery point.
    pub async fn sync_to(&self, target: i64) -> Result<(), LogError> {
        let _flushing = self.flush_lock.lock().await;
        let (files, end, messages, folder_changes) = {
            let state = self.state.read().await;
            state.check_online()?;
            if state.recovery_point >= target {
                return Ok(());
            }
            let recovery_point = state.recovery_point;
            let files: Vec<_> = state
                .segments
                .values()
                .filter(|segment| segment.next_offset > recovery_point || segment.base_offset >= recovery_point)
                .map(|segment| (segment.log.clone(), segment.log_path.clone()))
                .collect();
            let folder_changes = (state.folder_changes > state.folder_changes_synced).then_some(state.folder_changes);
            (files, state.log_end_offset(), state.messages_appended, folder_changes)
        };

        let result = self.sync_files(&files, folder_changes.is_some()).await;
        let mut state = self.state.write().await;
        if let Err(error) = result {
            return Err(state.fail(&self.dir, error));
        }
        state.recovery_point = state.recovery_point.max(end.min(state.log_end_offset()));
        state.messages_synced = state.messages_synced.max(messages);
        state.last_sync_ms = self.clock.now_ms();
        if let Some(changes) = folder_changes {
            state.folder_changes_synced = state.folder_changes_synced.max(changes);
        }
        Ok(())
    }

    async fn sync_files(&self, files: &[(Arc<D::File>, Arc<Path>)], sync_folder: bool) -> Result<(), LogError> {
        if sync_folder {
            self.disk
                .sync_dir(&self.dir)
                .await
                .map_err(|source| LogError::fatal_io("sync folder", &self.dir, source))?;
        }
        for (file, path) in files {
            file.sync()
                .await
                .map_err(|source| LogError::fatal_io("fsync", path, source))?;
        }
        Ok(())
    }

    /// Syncs everything appended so far.
    pub async fn flush(&self) -> Result<(), LogError> {
        let end = self.log_end_offset().await;
        self.sync_to(end).await
    }

    /// Syncs when the flush policy's interval or message count is due. A broker calls
    /// this from a timer so that `flush.ms` applies when no appends arrive.
    pub async fn flush_if_due(&self) -> Result<(), LogError> {
        let due = {
            let state = self.state.read().await;
            let unsynced = state.messages_appended - state.messages_synced;
            match self.config().flush {
                FlushPolicy::Interval(interval) => {
                    self.clock.now_ms() - state.last_sync_ms >= interval.as_millis() as i64
                }
                FlushPolicy::EveryMessages(messages) => unsynced >= messages,
                FlushPolicy::EveryAppend | FlushPolicy::Os => false,
            }
        };
        if due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes`.
    /// The first batch is returned whatever its size, as Kafka does, so a consumer always
    /// makes progress. Batches come from one segment and share one buffer.
    ///
    /// Reading at the log end offset returns no records; reading below the log start
    /// offset or past the end is [`LogError::OffsetOutOfRange`].
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, LogError> {
        let state = self.state.read().await;
        let log_start_offset = state.log_start_offset;
        let log_end_offset = state.log_end_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let mut records = Bytes::new();
        let first = state
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        for segment in state.segments.range(first..).map(|(_, segment)| segment) {
            if let Some(found) = segment.read(offset, max_bytes).await? {
                records = found;
                break;
            }
        }
        Ok(ReadInfo {
            records,
            log_start_offset,
            log_end_offset,
        })
    }

    /// Finds the first record whose timestamp is at or after `timestamp`, looking at each
    /// record's own timestamp, not only at batch maxima. Returns `None` when no record is
    /// that late.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>, LogError> {
        let state = self.state.read().await;
        for segment in state.segments.values() {
            if let Some((offset, found)) = segment.find_timestamp(timestamp, state.log_start_offset).await? {
                return Ok(Some(TimestampOffset {
                    offset,
                    timestamp: found,
                }));
            }
        }
        Ok(None)
    }

    /// Finds the record with the largest timestamp (ListOffsets' MAX_TIMESTAMP). When
    /// several records share it, the one with the lowest offset wins. Returns `None` for
    /// an empty log.
    pub async fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        let max = {
            let state = self.state.read().await;
            state
                .segments
                .values()
                .filter(|segment| segment.size > 0)
                .map(|segment| segment.max_timestamp)
                .max()
        };
        match max {
            Some(timestamp) => self.offset_for_timestamp(timestamp).await,
            None => Ok(None),
        }
    }

    /// Deletes segments that retention no longer keeps, oldest first:
    /// - segments wholly below the log start offset;
    /// - segments whose newest record is older than `retention.ms`;
    /// - the oldest segments while the log is over `retention.bytes`.
    ///
    /// The active segment is rolled first when it has expired, so that it can go too.
    pub async fn enforce_retention(&self) -> Result<RetentionOutcome, LogError> {
        let now = self.clock.now_ms();
        let mut state = self.state.write().await;
        state.check_online()?;
        let outcome = self.enforce_retention_locked(&mut state, now).await;
        outcome.map_err(|error| state.fail(&self.dir, error))
    }

    async fn enforce_retention_locked(&self, state: &mut LogState<D>, now: i64) -> Result<RetentionOutcome, LogError> {
        let config = self.config();
        let expired = |segment: &Segment<D>| match config.retention_ms {
            Some(retention) => segment.size > 0 && segment.max_timestamp < now - retention,
            None => false,
        };
        if state.segments.values().all(expired) {
            self.roll_locked(state, now, "retention.ms").await?;
        }

        let mut total: u64 = state.segments.values().map(|segment| segment.size).sum();
        let mut doomed = Vec::new();
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            let segment = &state.segments[&base];
            let below_start = next_base <= state.log_start_offset;
            let over_size = config
                .retention_bytes
                .is_some_and(|limit| total.saturating_sub(segment.size) >= limit);
            if !(below_start || expired(segment) || over_size) {
                break;
            }
            total -= segment.size;
            doomed.push(base);
        }
        if doomed.is_empty() {
            return Ok(RetentionOutcome {
                deleted_segments: 0,
                log_start_offset: state.log_start_offset,
            });
        }
        self.delete_segments(state, &doomed).await?;
        Ok(RetentionOutcome {
            deleted_segments: doomed.len(),
            log_start_offset: state.log_start_offset,
        })
    }

    /// Deletes the given oldest segments and moves the log start offset past them.
    async fn delete_segments(&self, state: &mut LogState<D>, bases: &[i64]) -> Result<(), LogError> {
        for base in bases {
            let segment = state.segments.remove(base).expect("deleting a known segment");
            segment.delete(&self.disk, &self.dir).await?;
            state.folder_changes += 1;
            info!(dir = %self.dir.display(), base_offset = base, bytes = segment.size, "deleted segment");
        }
        let first_base = *state
            .segments
            .keys()
            .next()
            .expect("the active segment is never deleted");
        state.log_start_offset = state.log_start_offset.max(first_base);
        state.recovery_point = state.recovery_point.max(first_base);
        state.checkpoint(false).write(&self.disk, &self.dir).await?;
        state.folder_changes_synced = state.folder_changes;
        Ok(())
    }

    /// Moves the log start offset up to `offset` (Kafka's DeleteRecords) and deletes the
    /// segments wholly below it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut state = self.state.write().await;
        state.check_online()?;
        let deleted = self.delete_records_locked(&mut state, offset).await;
        deleted.map_err(|error| state.fail(&self.dir, error))
    }

    async fn delete_records_locked(&self, state: &mut LogState<D>, offset: i64) -> Result<i64, LogError> {
        let log_end_offset = state.log_end_offset();
        if offset > log_end_offset || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        state.log_start_offset = offset;
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let doomed: Vec<i64> = bases
            .windows(2)
            .take_while(|pair| pair[1] <= offset)
            .map(|pair| pair[0])
            .collect();
        if doomed.is_empty() {
            state.checkpoint(false).write(&self.disk, &self.dir).await?;
        } else {
            self.delete_segments(state, &doomed).await?;
        }
        info!(dir = %self.dir.display(), log_start_offset = offset, "moved the log start offset");
        Ok(state.log_start_offset)
    }

    /// Removes every record at `offset` and later, for a follower whose log diverged from
    /// the leader's. A batch that contains `offset` goes whole. The cut is synced before
    /// this returns. Truncating below the first segment empties the log and restarts it
    /// at `offset`.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let _flushing = self.flush_lock.lock().await;
        let mut state = self.state.write().await;
        state.check_online()?;
        let truncated = self.truncate_locked(&mut state, offset).await;
        truncated.map_err(|error| state.fail(&self.dir, error))
    }

    async fn truncate_locked(&self, state: &mut LogState<D>, offset: i64) -> Result<(), LogError> {
        if offset >= state.log_end_offset() {
            return Ok(());
        }

        let first_base = *state.segments.keys().next().expect("at least one segment");
        if offset <= first_base || offset < state.log_start_offset {
            warn!(dir = %self.dir.display(), offset, "truncating the whole log");
            self.replace_all_segments(state, offset).await?;
        } else {
            self.cut_segments(state, offset).await?;
        }

        let log_end_offset = state.log_end_offset();
        state.recovery_point = state.recovery_point.min(log_end_offset);
        state.checkpoint(false).write(&self.disk, &self.dir).await?;
        state.folder_changes_synced = state.folder_changes;
        info!(dir = %self.dir.display(), offset, log_end_offset, "truncated the log");
        Ok(())
    }

    /// Deletes the segments past `offset`, cuts the one containing it and syncs the cut.
    async fn cut_segments(&self, state: &mut LogState<D>, offset: i64) -> Result<(), LogError> {
        let later: Vec<i64> = state.segments.range(offset..).map(|(base, _)| *base).collect();
        for base in later {
            let segment = state.segments.remove(&base).expect("known segment");
            segment.delete(&self.disk, &self.dir).await?;
            state.folder_changes += 1;
        }

        let active = state.active_mut();
        active.activate(self.config().segment_index_bytes)?;
        active.truncate_to(offset, self.config().index_interval_bytes).await?;
        active
            .log
            .sync()
            .await
            .map_err(|source| LogError::fatal_io("sync truncated segment", &active.log_path, source))?;

        // The batch containing `offset` began below the log start offset: nothing the
        // log may serve is left, so it restarts empty at `offset`.
        if state.log_end_offset() < state.log_start_offset {
            self.replace_all_segments(state, offset).await?;
        }
        Ok(())
    }

    /// Writes the checkpoint with the current recovery point and log start offset, so
    /// that the next recovery after a crash scans less. A broker calls this from a timer.
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        let mut state = self.state.write().await;
        state.check_online()?;
        let written = state.checkpoint(false).write(&self.disk, &self.dir).await;
        written.map_err(|error| state.fail(&self.dir, error))
    }

    /// Deletes every file of the log and its folder, for a deleted topic, and takes the
    /// log offline so that tasks still holding it get [`LogError::Offline`]. Nothing is
    /// synced: a crash halfway leaves a folder the broker no longer lists.
    pub async fn delete(&self) -> Result<(), LogError> {
        let mut state = self.state.write().await;
        state.offline = Some(Arc::from("the partition was deleted"));
        for segment in state.segments.values() {
            segment.delete(&self.disk, &self.dir).await?;
        }
        let leftovers = self
            .disk
            .list_dir(&self.dir)
            .await
            .map_err(|source| LogError::io("list partition folder", &self.dir, source))?;
        for path in leftovers {
            self.disk
                .remove_file(&path)
                .await
                .map_err(|source| LogError::io("remove file", &path, source))?;
        }
        self.disk
            .remove_dir(&self.dir)
            .await
            .map_err(|source| LogError::io("remove partition folder", &self.dir, source))?;
        info!(dir = %self.dir.display(), "deleted partition log");
        Ok(())
    }

    /// Closes the log cleanly: syncs everything, trims the active segment's indexes and
    /// writes a checkpoint marked clean, so that the next open skips the scan. The log
    /// accepts no writes afterwards.
    pub async fn close(&self) -> Result<(), LogError> {
        self.flush().await?;
        let mut state = self.state.write().await;
        state.check_online()?;
        let sealed = state.active_mut().seal();
        sealed.map_err(|error| state.fail(&self.dir, error))?;
        let written = state.checkpoint(true).write(&self.disk, &self.dir).await;
        written.map_err(|error| state.fail(&self.dir, error))?;
        state.offline = Some(Arc::from("the log is closed"));
        info!(dir = %self.dir.display(), log_end_offset = state.log_end_offset(), "closed partition log");
        Ok(())
    }
}
