//! The sparse indexes of a segment, memory-mapped through [`MappedFile`].
//!
//! - The offset index maps an offset to the file position of a batch: each entry is the
//!   offset relative to the segment's base (u32) and the position (u32), 8 bytes.
//! - The time index maps the largest timestamp seen so far to the offset of the batch that
//!   carried it: each entry is the timestamp (i64) and the relative offset (u32), 12 bytes.
//!
//! Both keep their entries sorted, so a lookup is a binary search. The active segment's
//! files are grown to their maximum size and trimmed to their entries when it rolls or the
//! log closes, so a trimmed file's length gives the number of entries it contains.

use crate::disk::MappedFile;

const OFFSET_ENTRY: u64 = 8;
const TIME_ENTRY: u64 = 12;

/// Entries kept sorted by key in a mapped file.
struct EntryFile<M> {
    map: M,
    entry_size: u64,
    entries: u64,
}

impl<M: MappedFile> EntryFile<M> {
    fn read(&self, slot: u64, buf: &mut [u8]) {
        self.map.read(slot * self.entry_size, buf);
    }

    fn max_entries(&self) -> u64 {
        self.map.len() / self.entry_size
    }

    /// Returns the largest slot whose key is at or below `target`.
    fn floor(&self, target: i64, key: impl Fn(&Self, u64) -> i64) -> Option<u64> {
        if self.entries == 0 || key(self, 0) > target {
            return None;
        }
        let (mut low, mut high) = (0, self.entries - 1);
        while low < high {
            let middle = (low + high).div_ceil(2);
            if key(self, middle) <= target {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Some(low)
    }

    fn push(&mut self, entry: &[u8]) {
        let position = self.entries * self.entry_size;
        self.map.write(position, entry);
        self.entries += 1;
    }

    /// Resizes the file to `slots` entries of room, keeping the first `entries`.
    fn resize(&mut self, slots: u64) -> std::io::Result<()> {
        self.map.set_len(slots * self.entry_size)
    }
}

/// Maps offsets to the file positions of batches.
pub(crate) struct OffsetIndex<M> {
    file: EntryFile<M>,
    base_offset: i64,
}

impl<M: MappedFile> OffsetIndex<M> {
    /// Wraps `map`, of which the first `entries` entries are valid.
    pub fn new(map: M, base_offset: i64, entries: u64) -> OffsetIndex<M> {
        OffsetIndex {
            file: EntryFile {
                map,
                entry_size: OFFSET_ENTRY,
                entries,
            },
            base_offset,
        }
    }

    /// Returns how many entries a trimmed file of `len` bytes contains, or `None` when the
    /// length is not a whole number of entries.
    pub fn entries_in(len: u64) -> Option<u64> {
        (len % OFFSET_ENTRY == 0).then_some(len / OFFSET_ENTRY)
    }

    pub fn entries(&self) -> u64 {
        self.file.entries
    }

    pub fn is_full(&self) -> bool {
        self.file.entries >= self.file.max_entries()
    }

    /// Returns the entry in `slot` as an absolute offset and a file position.
    pub fn entry(&self, slot: u64) -> (i64, u64) {
        let mut buf = [0; 8];
        self.file.read(slot, &mut buf);
        let relative = u32::from_be_bytes(buf[..4].try_into().expect("four bytes"));
        let position = u32::from_be_bytes(buf[4..].try_into().expect("four bytes"));
        (self.base_offset + i64::from(relative), u64::from(position))
    }

    /// Returns the position of the last indexed batch at or below `offset`, or 0 when no
    /// entry is that low. Reading from there finds the batch that contains `offset`.
    pub fn lookup(&self, offset: i64) -> u64 {
        self.file
            .floor(offset, |file, slot| {
                let mut buf = [0; 4];
                file.map.read(slot * OFFSET_ENTRY, &mut buf);
                self.base_offset + i64::from(u32::from_be_bytes(buf))
            })
            .map_or(0, |slot| self.entry(slot).1)
    }

    /// Appends an entry. The caller keeps offsets increasing and checks [`Self::is_full`].
    pub fn append(&mut self, offset: i64, position: u64) {
        let relative = u32::try_from(offset - self.base_offset).expect("relative offset fits u32");
        let position = u32::try_from(position).expect("segment position fits u32");
        let mut entry = [0; 8];
        entry[..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&entry);
    }

    /// Drops every entry whose offset is `offset` or later.
    pub fn truncate_to(&mut self, offset: i64) {
        while self.file.entries > 0 && self.entry(self.file.entries - 1).0 >= offset {
            self.file.entries -= 1;
        }
    }

    /// Checks that the entries increase and stay within `[base offset, next_offset)` and
    /// `[0, log_size)`. Returns what is wrong when they do not.
    pub fn check(&self, next_offset: i64, log_size: u64) -> Result<(), String> {
        let mut previous: Option<(i64, u64)> = None;
        for slot in 0..self.file.entries {
            let (offset, position) = self.entry(slot);
            if offset >= next_offset || position >= log_size {
                return Err(format!(
                    "entry {slot} (offset {offset}, position {position}) lies past the segment's end (offset {next_offset}, {log_size} bytes)"
                ));
            }
            if let Some((last_offset, last_position)) = previous {
                if offset <= last_offset || position <= last_position {
                    return Err(format!("entry {slot} (offset {offset}) does not increase"));
                }
            }
            previous = Some((offset, position));
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.file.entries = 0;
    }

    /// Grows the file to `max_bytes` of room, for the active segment.
    pub fn grow(&mut self, max_bytes: u64) -> std::io::Result<()> {
        self.file.resize(max_bytes / OFFSET_ENTRY)
    }

    /// Cuts the file to its entries and makes it durable.
    pub fn trim(&mut self) -> std::io::Result<()> {
        self.file.resize(self.file.entries)?;
        self.file.map.flush()
    }
}

/// Maps the largest timestamp seen so far to the offset of the batch that carried it.
pub(crate) struct TimeIndex<M> {
    file: EntryFile<M>,
    base_offset: i64,
}

impl<M: MappedFile> TimeIndex<M> {
    /// Wraps `map`, of which the first `entries` entries are valid.
    pub fn new(map: M, base_offset: i64, entries: u64) -> TimeIndex<M> {
        TimeIndex {
            file: EntryFile {
                map,
                entry_size: TIME_ENTRY,
                entries,
            },
            base_offset,
        }
    }

    /// Returns how many entries a trimmed file of `len` bytes contains, or `None` when the
    /// length is not a whole number of entries.
    pub fn entries_in(len: u64) -> Option<u64> {
        (len % TIME_ENTRY == 0).then_some(len / TIME_ENTRY)
    }

    pub fn entries(&self) -> u64 {
        self.file.entries
    }

    /// Returns whether only the slot kept for the entry written on roll is left.
    pub fn is_full(&self) -> bool {
        self.file.entries + 1 >= self.file.max_entries()
    }

    /// Returns the entry in `slot` as a timestamp and an absolute offset.
    pub fn entry(&self, slot: u64) -> (i64, i64) {
        let mut buf = [0; 12];
        self.file.read(slot, &mut buf);
        let timestamp = i64::from_be_bytes(buf[..8].try_into().expect("eight bytes"));
        let relative = u32::from_be_bytes(buf[8..].try_into().expect("four bytes"));
        (timestamp, self.base_offset + i64::from(relative))
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.file.entries.checked_sub(1).map(|slot| self.entry(slot))
    }

    /// Returns the offset of the last entry whose timestamp is below `timestamp`, or the
    /// base offset when there is none. No record before that offset is as late.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        self.file
            .floor(timestamp - 1, |file, slot| {
                let mut buf = [0; 8];
                file.map.read(slot * TIME_ENTRY, &mut buf);
                i64::from_be_bytes(buf)
            })
            .map_or(self.base_offset, |slot| self.entry(slot).1)
    }

    /// Appends an entry when `timestamp` is later than the last one. Entries for the same
    /// offset replace each other, so the index never contains two.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if let Some((last_timestamp, last_offset)) = self.last_entry() {
            if timestamp <= last_timestamp {
                return;
            }
            if offset == last_offset {
                self.file.entries -= 1;
            }
        }
        let relative = u32::try_from(offset - self.base_offset).expect("relative offset fits u32");
        let mut entry = [0; 12];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.push(&entry);
    }

    /// Drops every entry whose offset is `offset` or later.
    pub fn truncate_to(&mut self, offset: i64) {
        while let Some((_, last_offset)) = self.last_entry() {
            if last_offset < offset {
                break;
            }
            self.file.entries -= 1;
        }
    }

    /// Checks that timestamps and offsets increase and that offsets stay below
    /// `next_offset`. Returns what is wrong when they do not.
    pub fn check(&self, next_offset: i64) -> Result<(), String> {
        let mut previous: Option<(i64, i64)> = None;
        for slot in 0..self.file.entries {
            let (timestamp, offset) = self.entry(slot);
            if offset >= next_offset || offset < self.base_offset {
                return Err(format!(
                    "entry {slot} (offset {offset}) lies outside the segment [{}, {next_offset})",
                    self.base_offset
                ));
            }
            if let Some((last_timestamp, last_offset)) = previous {
                if timestamp <= last_timestamp || offset <= last_offset {
                    return Err(format!("entry {slot} (timestamp {timestamp}) does not increase"));
                }
            }
            previous = Some((timestamp, offset));
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.file.entries = 0;
    }

    /// Grows the file to `max_bytes` of room, for the active segment.
    pub fn grow(&mut self, max_bytes: u64) -> std::io::Result<()> {
        self.file.resize(max_bytes / TIME_ENTRY)
    }

    /// Cuts the file to its entries and makes it durable.
    pub fn trim(&mut self) -> std::io::Result<()> {
        self.file.resize(self.file.entries)?;
        self.file.map.flush()
    }
}
