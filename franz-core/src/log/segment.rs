//! One segment of a partition log: a file of record batches with its offset and time
//! indexes, named after the segment's base offset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::index::{OffsetIndex, TimeIndex};
use super::LogError;
use crate::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use crate::disk::{Disk, DiskFile, MappedFile};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const OFFSET_INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Bytes a recovery scan reads at once.
const SCAN_CHUNK: usize = 1 << 20;
/// Bytes a lookup reads at once: the gap between two offset index entries at the default
/// `index.interval.bytes` (4 KiB) plus the batch the gap ends in, in the common case.
const LOOKUP_CHUNK: usize = 16 << 10;

/// Returns the path of a segment file: the base offset zero-padded to 20 digits.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Location of a batch in a segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPosition {
    pub position: u64,
    pub header: BatchHeader,
}

/// Outcome of a recovery scan of a segment.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Every byte of the file belongs to a valid batch.
    Clean,
    /// The file ends in an incomplete or zero-filled batch, the mark of a write cut short
    /// by a crash. The caller cuts the file at `position`.
    TornTail { position: u64, reason: String },
    /// An invalid batch with more data after it: damage that must not be cut silently.
    Corrupt { position: u64, reason: String },
}

pub(crate) struct Segment<D: Disk> {
    pub base_offset: i64,
    pub log_path: Arc<Path>,
    /// Shared with the flusher, which syncs it without holding the log's lock.
    pub log: Arc<D::File>,
    offset_index: OffsetIndex<D::Map>,
    time_index: TimeIndex<D::Map>,
    /// Bytes in the log file.
    pub size: u64,
    /// Offset after the last batch; the base offset while the segment is empty.
    pub next_offset: i64,
    /// Bytes appended since the last offset index entry.
    bytes_since_index: u64,
    /// Largest record timestamp in the segment, -1 while it has none.
    pub max_timestamp: i64,
    /// Last offset of the batch that carried `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Broker time of the segment's first append, or of the log's open for a segment that
    /// already had data; `segment.ms` counts from here.
    pub roll_base_ms: i64,
    /// Set at open when an index file's length is not a whole number of entries.
    index_length_problem: Option<String>,
}

impl<D: Disk> Segment<D> {
    /// Creates the files of a new, empty, active segment.
    pub async fn create(
        disk: &D,
        dir: &Path,
        base_offset: i64,
        index_bytes: u64,
        now_ms: i64,
    ) -> Result<Segment<D>, LogError> {
        let log_path: Arc<Path> = segment_path(dir, base_offset, LOG_SUFFIX).into();
        let log = disk
            .open(&log_path, true)
            .await
            .map_err(|source| LogError::io("create segment", &log_path, source))?;
        log.set_len(0)
            .await
            .map_err(|source| LogError::io("reset segment", &log_path, source))?;
        let mut segment = Segment::with_indexes(disk, dir, base_offset, log_path, log, 0).await?;
        segment.roll_base_ms = now_ms;
        segment.activate(index_bytes)?;
        Ok(segment)
    }

    /// Opens an existing segment without reading its batches. The indexes hold the entries
    /// their trimmed files contain; [`Segment::check_indexes`] reports whether they can be trusted.
    pub async fn open(disk: &D, dir: &Path, base_offset: i64) -> Result<Segment<D>, LogError> {
        let log_path: Arc<Path> = segment_path(dir, base_offset, LOG_SUFFIX).into();
        let log = disk
            .open(&log_path, false)
            .await
            .map_err(|source| LogError::io("open segment", &log_path, source))?;
        let size = log
            .len()
            .await
            .map_err(|source| LogError::io("read length", &log_path, source))?;
        Segment::with_indexes(disk, dir, base_offset, log_path, log, size).await
    }

    async fn with_indexes(
        disk: &D,
        dir: &Path,
        base_offset: i64,
        log_path: Arc<Path>,
        log: D::File,
        size: u64,
    ) -> Result<Segment<D>, LogError> {
        let offset_path = segment_path(dir, base_offset, OFFSET_INDEX_SUFFIX);
        let time_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let (offset_map, offset_entries) = map_existing(disk, &offset_path, OffsetIndex::<D::Map>::entries_in).await?;
        let (time_map, time_entries) = map_existing(disk, &time_path, TimeIndex::<D::Map>::entries_in).await?;
        let index_length_problem = match (offset_entries, time_entries) {
            (None, _) => Some(format!(
                "{} is not a whole number of entries long",
                offset_path.display()
            )),
            (_, None) => Some(format!("{} is not a whole number of entries long", time_path.display())),
            _ => None,
        };
        let (offset_entries, time_entries) = (offset_entries.unwrap_or(0), time_entries.unwrap_or(0));
        let time_index = TimeIndex::new(time_map, base_offset, time_entries);
        let (max_timestamp, offset_of_max_timestamp) = time_index.last_entry().unwrap_or((-1, base_offset));
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            offset_index: OffsetIndex::new(offset_map, base_offset, offset_entries),
            time_index,
            size,
            next_offset: base_offset,
            bytes_since_index: 0,
            max_timestamp,
            offset_of_max_timestamp,
            roll_base_ms: -1,
            index_length_problem,
        })
    }

    /// Checks the indexes loaded by [`Segment::open`] against the segment's extent.
    /// Returns what is wrong when they cannot be trusted.
    pub fn check_indexes(&self, next_offset: i64) -> Result<(), String> {
        if let Some(problem) = &self.index_length_problem {
            return Err(problem.clone());
        }
        if self.size > 0 && self.time_index.entries() == 0 {
            return Err("time index is empty or missing".to_string());
        }
        self.offset_index.check(next_offset, self.size.max(1))?;
        self.time_index.check(next_offset)
    }

    /// Finds the next offset and the roll base of a segment whose indexes passed
    /// [`Segment::check_indexes`], by reading from the last indexed batch to the end.
    pub async fn load_tail(&mut self) -> Result<(), LogError> {
        let mut scanner = Scanner::new(self, self.offset_index_last_position(), LOOKUP_CHUNK);
        while let Some(found) = scanner.next_header().await? {
            self.next_offset = found.header.next_offset();
        }
        if self.next_offset == self.base_offset {
            if let Some(first) = self.header_at(0).await? {
                self.next_offset = first.next_offset();
            }
        }
        Ok(())
    }

    fn offset_index_last_position(&self) -> u64 {
        match self.offset_index.entries() {
            0 => 0,
            entries => self.offset_index.entry(entries - 1).1,
        }
    }

    /// Scans every batch from the start, checking each CRC, and rebuilds both indexes.
    /// Stops at the first invalid batch and reports whether it looks torn or corrupt.
    pub async fn rebuild(&mut self, index_interval: u64) -> Result<ScanEnd, LogError> {
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;

        let mut scanner = Scanner::new(self, 0, SCAN_CHUNK);
        loop {
            let position = scanner.position;
            let remaining = self.size - position;
            if remaining == 0 {
                return Ok(ScanEnd::Clean);
            }
            let header_bytes = scanner.bytes(position, HEADER_LEN.min(remaining as usize)).await?;
            let header = match BatchHeader::parse(&header_bytes) {
                Ok(header) => header,
                Err(error) => return self.classify(&mut scanner, position, None, error).await,
            };
            let size = header.size() as u64;
            if size > remaining {
                let reason = format!("batch of {size} bytes with only {remaining} bytes left in the file");
                return Ok(ScanEnd::TornTail { position, reason });
            }
            let bytes = scanner.bytes(position, size as usize).await?;
            if let Err(error) = batch::check_crc(&bytes) {
                return self.classify(&mut scanner, position, Some(size), error).await;
            }
            if header.base_offset < self.next_offset {
                let reason = format!(
                    "batch base offset {} is below the expected offset {}",
                    header.base_offset, self.next_offset
                );
                return Ok(ScanEnd::Corrupt { position, reason });
            }
            self.index_batch(&header, position, index_interval);
            scanner.position = position + size;
        }
    }

    /// Decides whether the invalid batch at `position` is a torn tail or corruption.
    async fn classify(
        &self,
        scanner: &mut Scanner<D>,
        position: u64,
        size: Option<u64>,
        error: BatchError,
    ) -> Result<ScanEnd, LogError> {
        let remaining = self.size - position;
        // NOTE: a complete last batch with a bad CRC counts as torn, because a crash can
        // leave one so. Bit rot in that one batch above the recovery point is cut, not reported.
        if matches!(error, BatchError::Truncated { .. }) || size == Some(remaining) {
            return Ok(ScanEnd::TornTail {
                position,
                reason: error.to_string(),
            });
        }
        let rest = scanner.bytes(position, remaining as usize).await?;
        if rest.iter().all(|byte| *byte == 0) {
            let reason = format!("{remaining} zero bytes at the end of the file");
            return Ok(ScanEnd::TornTail { position, reason });
        }
        Ok(ScanEnd::Corrupt {
            position,
            reason: error.to_string(),
        })
    }

    /// Adds index entries for a batch written at `position`, as appends do.
    fn index_batch(&mut self, header: &BatchHeader, position: u64, index_interval: u64) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        // A full index only makes lookups scan further; appends roll before that happens.
        if self.bytes_since_index > index_interval && !self.indexes_full() {
            self.offset_index.append(header.last_offset(), position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.size() as u64;
        self.next_offset = header.next_offset();
    }

    /// Returns whether an index has no room for one more entry.
    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Writes `records`, whose batches have their final offsets, at the end of the file,
    /// and indexes them. On a write error the file is cut back to its old size.
    pub async fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        index_interval: u64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let start = self.size;
        if start == 0 {
            self.roll_base_ms = now_ms;
        }
        if let Err(source) = self.log.write_at(start, records).await {
            let error = LogError::io("append", &self.log_path, source);
            if let Err(rollback) = self.log.set_len(start).await {
                return Err(LogError::fatal(format!(
                    "{error}; cutting the file back to {start} bytes also failed: {rollback}"
                )));
            }
            return Err(error);
        }
        let mut position = start;
        for header in headers {
            self.index_batch(header, position, index_interval);
            position += header.size() as u64;
        }
        self.size = position;
        Ok(())
    }

    /// Reads the header of the batch at `position`, or `None` at the end of the file.
    pub async fn header_at(&self, position: u64) -> Result<Option<BatchHeader>, LogError> {
        Scanner::new(self, position, HEADER_LEN)
            .next_header()
            .await
            .map(|found| found.map(|found| found.header))
    }

    /// Finds the first batch whose last offset is `offset` or later.
    pub async fn find(&self, offset: i64) -> Result<Option<BatchPosition>, LogError> {
        let mut scanner = Scanner::new(self, self.offset_index.lookup(offset), LOOKUP_CHUNK);
        scanner.seek(offset).await
    }

    /// Reads whole batches starting with the first whose last offset is `offset` or
    /// later: that one whatever its size, then as many more as fit within `max_bytes`.
    /// Returns `None` when the segment has no such batch.
    ///
    /// One chunk read usually covers both the walk from the index entry and the result,
    /// which is a slice of that chunk, so no record data is copied after the read.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>, LogError> {
        let chunk_len = max_bytes.saturating_add(HEADER_LEN).saturating_add(LOOKUP_CHUNK);
        let mut scanner = Scanner::new(self, self.offset_index.lookup(offset), chunk_len);
        let Some(start) = scanner.seek(offset).await? else {
            return Ok(None);
        };

        let limit = start.position.saturating_add(max_bytes as u64);
        let mut end = start.position + start.header.size() as u64;
        while scanner.position + HEADER_LEN as u64 <= limit {
            let Some(next) = scanner.next_header().await? else {
                break;
            };
            let next_end = next.position + next.header.size() as u64;
            if next_end > limit {
                break;
            }
            end = next_end;
        }
        let records = scanner.bytes(start.position, (end - start.position) as usize).await?;
        Ok(Some(records))
    }

    /// Finds the first record at or after `timestamp`, as (offset, timestamp).
    pub async fn find_timestamp(&self, timestamp: i64, min_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let from = self.time_index.lookup(timestamp).max(min_offset);
        let mut scanner = Scanner::new(self, self.offset_index.lookup(from), LOOKUP_CHUNK);
        let Some(start) = scanner.seek(from).await? else {
            return Ok(None);
        };
        scanner.position = start.position;
        while let Some(found) = scanner.next_header().await? {
            if found.header.max_timestamp < timestamp {
                continue;
            }
            let bytes = scanner.bytes(found.position, found.header.size()).await?;
            let hit = batch::find_timestamp(&bytes, timestamp, min_offset).map_err(|error| LogError::Corruption {
                path: self.log_path.to_path_buf(),
                position: found.position,
                reason: error.to_string(),
            })?;
            if hit.is_some() {
                return Ok(hit);
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is `offset` or later. A batch that contains
    /// `offset` goes whole, so the segment then ends at that batch's base offset.
    pub async fn truncate_to(&mut self, offset: i64, index_interval: u64) -> Result<(), LogError> {
        let Some(cut) = self.find(offset).await? else {
            return Ok(());
        };
        self.log
            .set_len(cut.position)
            .await
            .map_err(|source| LogError::io("truncate", &self.log_path, source))?;
        self.size = cut.position;
        self.offset_index.truncate_to(cut.header.base_offset);
        self.time_index.truncate_to(cut.header.base_offset);
        // The max timestamp may have come from a removed batch: scan for it again.
        match self.rebuild(index_interval).await? {
            ScanEnd::Clean => Ok(()),
            ScanEnd::TornTail { position, reason } | ScanEnd::Corrupt { position, reason } => {
                Err(LogError::Corruption {
                    path: self.log_path.to_path_buf(),
                    position,
                    reason,
                })
            }
        }
    }

    /// Cuts the log file at `position`, dropping a torn tail found by a scan.
    pub async fn cut_at(&mut self, position: u64) -> Result<(), LogError> {
        self.log
            .set_len(position)
            .await
            .map_err(|source| LogError::io("cut torn tail", &self.log_path, source))?;
        self.size = position;
        Ok(())
    }

    /// Grows the index files to their maximum size so the segment can take appends. A
    /// failure is fatal, because an index of unknown size cannot take entries.
    pub fn activate(&mut self, index_bytes: u64) -> Result<(), LogError> {
        let path = &self.log_path;
        self.offset_index
            .grow(index_bytes)
            .map_err(|source| LogError::fatal_io("grow offset index", path, source))?;
        self.time_index
            .grow(index_bytes)
            .map_err(|source| LogError::fatal_io("grow time index", path, source))
    }

    /// Ends the segment's active life: writes the time index entry for its max timestamp,
    /// cuts both indexes to their entries and makes them durable. A failure is fatal, as
    /// for any failed sync.
    pub fn seal(&mut self) -> Result<(), LogError> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        let path = &self.log_path;
        self.offset_index
            .trim()
            .map_err(|source| LogError::fatal_io("trim offset index", path, source))?;
        self.time_index
            .trim()
            .map_err(|source| LogError::fatal_io("trim time index", path, source))
    }

    /// Removes the segment's three files. The caller syncs the folder.
    pub async fn delete(&self, disk: &D, dir: &Path) -> Result<(), LogError> {
        for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = segment_path(dir, self.base_offset, suffix);
            match disk.remove_file(&path).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(LogError::io("delete segment file", &path, source)),
            }
        }
        Ok(())
    }
}

/// Maps an index file at the length it has and returns how many entries it contains,
/// or `None` when the length is not a whole number of entries.
async fn map_existing<D: Disk>(
    disk: &D,
    path: &Path,
    entries_in: fn(u64) -> Option<u64>,
) -> Result<(D::Map, Option<u64>), LogError> {
    let exists = disk
        .exists(path)
        .await
        .map_err(|source| LogError::io("look up index", path, source))?;
    let len = if exists {
        let file = disk
            .open(path, false)
            .await
            .map_err(|source| LogError::io("open index", path, source))?;
        file.len()
            .await
            .map_err(|source| LogError::io("read length", path, source))?
    } else {
        0
    };
    let entries = entries_in(len);
    let map = disk
        .map(path, len)
        .await
        .map_err(|source| LogError::io("map index", path, source))?;
    debug_assert!(map.len() == len);
    Ok((map, entries))
}

/// Walks batch headers forward through a segment, reading the file in chunks.
struct Scanner<D: Disk> {
    log: Arc<D::File>,
    log_path: Arc<Path>,
    /// Bytes in the file when the scan started.
    size: u64,
    /// File position of the next header.
    position: u64,
    /// File position of `chunk`'s first byte.
    chunk_start: u64,
    chunk: Bytes,
    /// Bytes to read when the chunk does not cover a request.
    chunk_len: usize,
}

impl<D: Disk> Scanner<D> {
    fn new(segment: &Segment<D>, position: u64, chunk_len: usize) -> Scanner<D> {
        Scanner {
            log: segment.log.clone(),
            log_path: segment.log_path.clone(),
            size: segment.size,
            position,
            chunk_start: 0,
            chunk: Bytes::new(),
            chunk_len,
        }
    }

    /// Returns `len` bytes at `position`, reading a new chunk when the current one does not
    /// cover them. The caller keeps the range within the file.
    async fn bytes(&mut self, position: u64, len: usize) -> Result<Bytes, LogError> {
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if position < self.chunk_start || position + len as u64 > chunk_end {
            let want = len.max(self.chunk_len) as u64;
            let read_len = want.min(self.size - position) as usize;
            self.chunk = self
                .log
                .read_at(position, read_len)
                .await
                .map_err(|source| LogError::io("read", &self.log_path, source))?;
            self.chunk_start = position;
        }
        let from = (position - self.chunk_start) as usize;
        Ok(self.chunk.slice(from..from + len))
    }

    /// Advances to the first batch whose last offset is `offset` or later and returns it,
    /// leaving the position after that batch. Returns `None` at the end of the data.
    async fn seek(&mut self, offset: i64) -> Result<Option<BatchPosition>, LogError> {
        while let Some(found) = self.next_header().await? {
            if found.header.last_offset() >= offset {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Returns the next batch's header and advances past the batch, or `None` at the end
    /// of the data. Appends and recovery keep every batch in the file complete and valid,
    /// so a header that does not parse here is corruption at rest.
    async fn next_header(&mut self) -> Result<Option<BatchPosition>, LogError> {
        let position = self.position;
        let remaining = self.size.saturating_sub(position);
        if remaining == 0 {
            return Ok(None);
        }
        let log_path = self.log_path.clone();
        let corrupt = |reason: String| LogError::Corruption {
            path: log_path.to_path_buf(),
            position,
            reason,
        };
        if remaining < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "{remaining} bytes at the end of the file are too few for a batch"
            )));
        }
        let bytes = self.bytes(position, HEADER_LEN).await?;
        let header = BatchHeader::parse(&bytes).map_err(|error| corrupt(error.to_string()))?;
        if header.size() as u64 > remaining {
            return Err(corrupt(format!(
                "batch of {} bytes runs past the end of the file",
                header.size()
            )));
        }
        self.position = position + header.size() as u64;
        Ok(Some(BatchPosition { position, header }))
    }
}
