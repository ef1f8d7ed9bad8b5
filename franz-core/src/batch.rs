//! Kafka v2 record batches: header parsing, validation and the in-place rewrites a broker
//! makes on append (base offset, partition leader epoch, LogAppendTime).
//!
//! The log stores batches exactly as these functions leave them, so that a fetch returns
//! the producer's bytes. Layout of a batch, with byte positions:
//!
//! ```text
//!  0 base offset (i64)            27 base timestamp (i64)
//!  8 batch length (i32)           35 max timestamp (i64)
//! 12 partition leader epoch (i32) 43 producer id (i64)
//! 16 magic (i8, always 2)         51 producer epoch (i16)
//! 17 CRC32C (u32)                 53 base sequence (i32)
//! 21 attributes (i16)             57 record count (i32)
//! 23 last offset delta (i32)      61 records
//! ```
//!
//! The batch length counts the bytes after its own field. The CRC covers the bytes from
//! the attributes to the end of the batch, so the base offset and the leader epoch can
//! be rewritten without recomputing it.

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

/// Bytes before the batch length field ends: base offset and batch length.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed header of a v2 batch, records excluded.
pub const HEADER_LEN: usize = 61;
/// The only batch format Franz stores.
pub const MAGIC_V2: i8 = 2;

const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Reason a batch is invalid. Each variant names the values that failed the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is truncated: {available} bytes present, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("batch length {length} is below the v2 minimum of {min}")]
    LengthTooSmall { length: i32, min: usize },
    #[error("unsupported magic byte {magic}; only record batch format v2 is stored")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC32C mismatch: the batch stores {stored:#010x}, its bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} is invalid with last offset delta {last_offset_delta}")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    #[error("unknown compression codec {codec} in attributes")]
    UnknownCompression { codec: i16 },
    #[error("record {index} is malformed: {reason}")]
    MalformedRecord { index: i32, reason: &'static str },
    #[error("record {index} has offset delta {found}, expected {index}")]
    OffsetDeltaMismatch { index: i32, found: i32 },
    #[error("records section has {extra} bytes after the last record")]
    TrailingBytes { extra: usize },
    #[error("decompressing the {codec:?} records failed: {reason}")]
    Decompression { codec: Compression, reason: String },
}

/// Compression codec of a batch's records, from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Meaning of the batch's timestamps, from attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append: every record's timestamp is the max timestamp.
    LogAppendTime,
}

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(buf[at..at + 2].try_into().expect("two bytes"))
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("four bytes"))
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("eight bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf` and checks its magic byte and length.
    /// The records and the CRC are not checked; see [`validate`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                available: buf.len(),
                needed: HEADER_LEN,
            });
        }
        let header = BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, LENGTH_AT),
            partition_leader_epoch: i32_at(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: i32_at(buf, CRC_AT) as u32,
            attributes: i16_at(buf, ATTRIBUTES_AT),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            record_count: i32_at(buf, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic: header.magic });
        }
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::LengthTooSmall {
                length: header.batch_length,
                min: HEADER_LEN - LOG_OVERHEAD,
            });
        }
        Ok(header)
    }

    /// Returns the batch's total size in bytes, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Returns the offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Returns the offset that follows the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Returns the compression codec, or an error for codec numbers 5 to 7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT == 0 {
            TimestampType::CreateTime
        } else {
            TimestampType::LogAppendTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Computes the CRC32C that a v2 batch stores: over the attributes and everything after.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks the header and CRC of the one batch that fills `batch` exactly.
///
/// Cheap enough for recovery, which runs it on every batch of an unflushed segment.
pub fn check_crc(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.size() {
        return Err(BatchError::Truncated {
            available: batch.len(),
            needed: header.size(),
        });
    }
    let computed = compute_crc(&batch[..header.size()]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Fully validates the one batch that fills `batch`: header, CRC, record count and every
/// record's framing and offset delta. Compressed records are decompressed to be checked.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_crc(batch)?;
    let count = header.record_count;
    if count <= 0 || header.last_offset_delta != count - 1 {
        return Err(BatchError::InvalidRecordCount {
            count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    with_records(&header, batch, |records| {
        let mut parser = RecordParser::new(records, count);
        let mut index = 0;
        while let Some(record) = parser.next_record()? {
            if record.offset_delta != index {
                return Err(BatchError::OffsetDeltaMismatch {
                    index,
                    found: record.offset_delta,
                });
            }
            index += 1;
        }
        Ok(())
    })?;
    Ok(header)
}

/// Calls `visit` with the records section of `batch`: in place when uncompressed, else
/// decompressed into a new buffer.
fn with_records<T>(
    header: &BatchHeader,
    batch: &[u8],
    visit: impl FnOnce(&[u8]) -> Result<T, BatchError>,
) -> Result<T, BatchError> {
    let records = &batch[HEADER_LEN..header.size()];
    match header.compression()? {
        Compression::None => visit(records),
        codec => visit(&decompress(codec, Bytes::copy_from_slice(records))?),
    }
}

/// Sets the base offset of the batch at the start of `batch`.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch of the batch at the start of `batch`.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `timestamp` as its max timestamp, and updates
/// the CRC. `batch` must hold exactly one batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attributes = i16_at(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Decompresses a batch's records section.
pub fn decompress(codec: Compression, mut records: Bytes) -> Result<Bytes, BatchError> {
    fn all(buf: &mut Bytes) -> anyhow::Result<Bytes> {
        Ok(buf.copy_to_bytes(buf.remaining()))
    }
    let result = match codec {
        Compression::None => return Ok(records),
        Compression::Gzip => Gzip::decompress(&mut records, all),
        Compression::Snappy => Snappy::decompress(&mut records, all),
        Compression::Lz4 => Lz4::decompress(&mut records, all),
        Compression::Zstd => Zstd::decompress(&mut records, all),
    };
    result.map_err(|error| BatchError::Decompression {
        codec,
        reason: error.to_string(),
    })
}

/// Appends `value` as a zigzag varint, the integer encoding of record fields.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

fn put_varint_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

/// A record's key and value; `None` is a null key or value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch of `(key, value)` records without headers, all
/// stamped `timestamp`, with no producer id. The broker uses it for the records it
/// writes itself, such as committed offsets; the log assigns the offsets.
///
/// # Panics
/// When `records` is empty.
pub fn build_batch(records: &[KeyValue<'_>], timestamp: i64) -> bytes::BytesMut {
    assert!(!records.is_empty(), "a record batch holds at least one record");
    let mut body = Vec::new();
    for (offset_delta, (key, value)) in records.iter().enumerate() {
        let mut record = vec![0u8]; // attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, offset_delta as i64);
        put_varint_bytes(&mut record, *key);
        put_varint_bytes(&mut record, *value);
        put_varint(&mut record, 0); // header count
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }

    let mut batch = bytes::BytesMut::zeroed(HEADER_LEN);
    batch.extend_from_slice(&body);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    batch[MAGIC_AT] = MAGIC_V2 as u8;
    batch[23..27].copy_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    batch[27..35].copy_from_slice(&timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
    batch[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    batch[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Calls `visit` with the key and value of every record of the uncompressed or
/// compressed batch `batch`, in offset order, with the record's offset.
pub fn for_each_record(
    batch: &[u8],
    mut visit: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.size() {
        return Err(BatchError::Truncated {
            available: batch.len(),
            needed: header.size(),
        });
    }
    let records = Bytes::copy_from_slice(&batch[HEADER_LEN..header.size()]);
    let records = decompress(header.compression()?, records)?;
    let mut parser = RecordParser::new(&records, header.record_count);
    while let Some(record) = parser.next_record()? {
        visit(
            header.base_offset + i64::from(record.offset_delta),
            record.key,
            record.value,
        );
    }
    Ok(())
}

/// One record of a batch, borrowed from the (decompressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Walks the records of an uncompressed records section, checking each one's framing.
pub struct RecordParser<'a> {
    buf: &'a [u8],
    position: usize,
    index: i32,
    count: i32,
}

impl<'a> RecordParser<'a> {
    /// Starts a parser over `records`, which must hold exactly `count` records.
    pub fn new(records: &'a [u8], count: i32) -> RecordParser<'a> {
        RecordParser {
            buf: records,
            position: 0,
            index: 0,
            count,
        }
    }

    /// Returns the next record, `None` after the last, or an error for bad framing or
    /// bytes left over after the last record.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, BatchError> {
        if self.index == self.count {
            let extra = self.buf.len() - self.position;
            if extra != 0 {
                return Err(BatchError::TrailingBytes { extra });
            }
            return Ok(None);
        }
        let index = self.index;
        let malformed = |reason| BatchError::MalformedRecord { index, reason };

        let length = self.varint().ok_or(malformed("bad length varint"))?;
        if length < 0 || self.buf.len() - self.position < length as usize {
            return Err(malformed("length runs past the records section"));
        }
        let end = self.position + length as usize;
        let body = &self.buf[..end];
        let mut cursor = RecordParser {
            buf: body,
            position: self.position,
            index,
            count: self.count,
        };

        cursor.position += 1; // attributes, unused in v2
        let timestamp_delta = cursor.varlong().ok_or(malformed("bad timestamp delta"))?;
        let offset_delta = cursor.varint().ok_or(malformed("bad offset delta"))?;
        let key = cursor.bytes().ok_or(malformed("bad key"))?;
        let value = cursor.bytes().ok_or(malformed("bad value"))?;
        let header_count = cursor.varint().ok_or(malformed("bad header count"))?;
        if header_count < 0 {
            return Err(malformed("negative header count"));
        }
        for _ in 0..header_count {
            match cursor.bytes() {
                Some(Some(_)) => {}
                _ => return Err(malformed("bad header key")),
            }
            cursor.bytes().ok_or(malformed("bad header value"))?;
        }
        if cursor.position != end {
            return Err(malformed("length does not match the fields"));
        }

        self.position = end;
        self.index += 1;
        Ok(Some(Record {
            timestamp_delta,
            offset_delta,
            key,
            value,
        }))
    }

    fn varlong(&mut self) -> Option<i64> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.buf.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let value = self.varlong()?;
        i32::try_from(value).ok()
    }

    /// Reads a length-prefixed byte string; length -1 is null.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let length = self.varint()?;
        if length == -1 {
            return Some(None);
        }
        let length = usize::try_from(length).ok()?;
        let end = self.position.checked_add(length)?;
        let bytes = self.buf.get(self.position..end)?;
        self.position = end;
        Some(Some(bytes))
    }
}

/// Returns the offset and timestamp of the first record of `batch` at or after
/// `min_offset` whose timestamp is at or after `timestamp`, or `None` when there is none.
pub fn find_timestamp(batch: &[u8], timestamp: i64, min_offset: i64) -> Result<Option<(i64, i64)>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.max_timestamp < timestamp || header.last_offset() < min_offset {
        return Ok(None);
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Ok(Some((header.base_offset.max(min_offset), header.max_timestamp)));
    }
    with_records(&header, batch, |records| {
        let mut parser = RecordParser::new(records, header.record_count);
        while let Some(record) = parser.next_record()? {
            let record_timestamp = header.base_timestamp + record.timestamp_delta;
            let offset = header.base_offset + i64::from(record.offset_delta);
            if record_timestamp >= timestamp && offset >= min_offset {
                return Ok(Some((offset, record_timestamp)));
            }
        }
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a record whose fields are small enough for one-byte varints.
    fn record(offset_delta: u8, timestamp_delta: u8, value: &[u8]) -> Vec<u8> {
        let mut body = vec![0, timestamp_delta * 2, offset_delta * 2, 1, value.len() as u8 * 2];
        body.extend_from_slice(value);
        body.push(0); // no headers
        let mut encoded = vec![body.len() as u8 * 2];
        encoded.extend_from_slice(&body);
        encoded
    }

    /// Builds a batch around `records` with a correct CRC.
    fn raw_batch(records: &[Vec<u8>], count: i32, last_offset_delta: i32) -> Vec<u8> {
        let mut batch = vec![0; HEADER_LEN];
        for record in records {
            batch.extend_from_slice(record);
        }
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        batch[MAGIC_AT] = MAGIC_V2 as u8;
        batch[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
        batch[27..35].copy_from_slice(&100i64.to_be_bytes());
        batch[35..43].copy_from_slice(&105i64.to_be_bytes());
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn built_batch_round_trips() {
        let long_value = vec![7u8; 300];
        let records: [KeyValue<'_>; 3] = [
            (Some(b"k1"), Some(b"v1")),
            (None, Some(&long_value)),
            (Some(b"k3"), None),
        ];
        let mut batch = build_batch(&records, 1_700_000_000_000);
        set_base_offset(&mut batch, 40);

        let header = validate(&batch).expect("a built batch is valid");
        assert_eq!(header.record_count, 3);
        assert_eq!(header.max_timestamp, 1_700_000_000_000);
        let mut seen = Vec::new();
        for_each_record(&batch, |offset, key, value| {
            seen.push((offset, key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec)))
        })
        .expect("records parse");
        let expected = vec![
            (40, Some(b"k1".to_vec()), Some(b"v1".to_vec())),
            (41, None, Some(long_value.clone())),
            (42, Some(b"k3".to_vec()), None),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn validate_accepts_well_formed_batch() {
        let batch = raw_batch(&[record(0, 0, b"a"), record(1, 5, b"bc")], 2, 1);
        let header = validate(&batch).unwrap();
        assert_eq!(header.record_count, 2);
        assert_eq!(header.size(), batch.len());
    }

    #[test]
    fn validate_rejects_offset_delta_gap() {
        let batch = raw_batch(&[record(0, 0, b"a"), record(2, 0, b"b")], 2, 1);
        assert_eq!(
            validate(&batch),
            Err(BatchError::OffsetDeltaMismatch { index: 1, found: 2 })
        );
    }

    #[test]
    fn validate_rejects_count_mismatch() {
        let batch = raw_batch(&[record(0, 0, b"a")], 2, 0);
        assert_eq!(
            validate(&batch),
            Err(BatchError::InvalidRecordCount {
                count: 2,
                last_offset_delta: 0
            })
        );
        let batch = raw_batch(&[record(0, 0, b"a")], 0, -1);
        assert!(matches!(validate(&batch), Err(BatchError::InvalidRecordCount { .. })));
    }

    #[test]
    fn validate_rejects_missing_record() {
        let batch = raw_batch(&[record(0, 0, b"a")], 2, 1);
        assert_eq!(
            validate(&batch),
            Err(BatchError::MalformedRecord {
                index: 1,
                reason: "bad length varint"
            })
        );
    }

    #[test]
    fn validate_rejects_trailing_bytes() {
        let mut records = vec![record(0, 0, b"a")];
        records.push(vec![7, 7, 7]);
        let batch = raw_batch(&records, 1, 0);
        assert_eq!(validate(&batch), Err(BatchError::TrailingBytes { extra: 3 }));
    }

    #[test]
    fn validate_rejects_record_length_past_end() {
        let mut bad = record(0, 0, b"abc");
        bad[0] = 100; // claims 50 bytes
        let batch = raw_batch(&[bad], 1, 0);
        assert!(
            matches!(validate(&batch), Err(BatchError::MalformedRecord { index: 0, .. })),
            "{:?}",
            validate(&batch)
        );
    }

    #[test]
    fn validate_rejects_unknown_codec() {
        let mut batch = raw_batch(&[record(0, 0, b"a")], 1, 0);
        batch[ATTRIBUTES_AT + 1] = 6;
        let crc = compute_crc(&batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate(&batch), Err(BatchError::UnknownCompression { codec: 6 }));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut batch = raw_batch(&[record(0, 0, b"a")], 1, 0);
        set_log_append_time(&mut batch, 9_000);
        let header = check_crc(&batch).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 9_000);
    }

    #[test]
    fn find_timestamp_respects_min_offset() {
        let batch = raw_batch(&[record(0, 5, b"a"), record(1, 5, b"b"), record(2, 0, b"c")], 3, 2);
        assert_eq!(find_timestamp(&batch, 104, 0), Ok(Some((0, 105))));
        assert_eq!(find_timestamp(&batch, 104, 1), Ok(Some((1, 105))));
        assert_eq!(find_timestamp(&batch, 104, 2), Ok(None));
        assert_eq!(find_timestamp(&batch, 100, 2), Ok(Some((2, 100))));
        assert_eq!(find_timestamp(&batch, 106, 0), Ok(None));
    }
}
