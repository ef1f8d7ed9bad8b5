//! Record batches as the client writes and reads them: Kafka's v2 format with headers,
//! compression and idempotent producer fields. Headers keep their order and repeated
//! keys, which kafka-protocol's record types cannot carry.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use franz_core::batch::{self, BatchHeader, Compression};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; the producer's clock when `None`.
    pub timestamp: Option<i64>,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The idempotent producer fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// The fields of a batch from a producer that is not idempotent.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.put_u8((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.put_u8(zigzag as u8);
}

fn put_bytes(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.put_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

/// Maximum bytes of a varint, so a record's length prefix takes at most this many.
const MAX_VARINT_BYTES: usize = 10;

fn varint_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    (64 - zigzag.max(1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        Some(bytes) => varint_len(bytes.len() as i64) + bytes.len(),
        None => varint_len(-1),
    }
}

/// Upper bound of a record's encoded size, without its length prefix, for sizing buffers.
fn record_size(record: &ProducerRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(key, value)| bytes_len(Some(key.as_bytes())) + bytes_len(value.as_deref()))
        .sum();
    1 + 2 * MAX_VARINT_BYTES
        + bytes_len(record.key.as_deref())
        + bytes_len(record.value.as_deref())
        + varint_len(record.headers.len() as i64)
        + headers
}

/// Writes each record, length first, computing the length instead of encoding the record
/// twice.
fn put_records(out: &mut BytesMut, records: &[ProducerRecord], timestamps: &[i64], base_timestamp: i64) {
    for (delta, (record, timestamp)) in records.iter().zip(timestamps).enumerate() {
        let timestamp_delta = timestamp - base_timestamp;
        let headers: usize = record
            .headers
            .iter()
            .map(|(key, value)| bytes_len(Some(key.as_bytes())) + bytes_len(value.as_deref()))
            .sum();
        let length = 1
            + varint_len(timestamp_delta)
            + varint_len(delta as i64)
            + bytes_len(record.key.as_deref())
            + bytes_len(record.value.as_deref())
            + varint_len(record.headers.len() as i64)
            + headers;
        put_varint(out, length as i64);
        out.put_u8(0); // attributes
        put_varint(out, timestamp_delta);
        put_varint(out, delta as i64);
        put_bytes(out, record.key.as_deref());
        put_bytes(out, record.value.as_deref());
        put_varint(out, record.headers.len() as i64);
        for (key, value) in &record.headers {
            put_bytes(out, Some(key.as_bytes()));
            put_bytes(out, value.as_deref());
        }
    }
}

/// Encodes `records` as one v2 batch with base offset 0. `now_ms` stamps records without
/// a timestamp.
///
/// # Panics
/// When `records` is empty.
pub fn encode_batch(
    records: &[ProducerRecord],
    compression: Compression,
    producer: ProducerFields,
    now_ms: i64,
) -> Bytes {
    assert!(!records.is_empty(), "a record batch holds at least one record");
    let timestamps: Vec<i64> = records
        .iter()
        .map(|record| record.timestamp.unwrap_or(now_ms))
        .collect();
    let base_timestamp = *timestamps.iter().min().expect("not empty");
    let max_timestamp = *timestamps.iter().max().expect("not empty");

    let body_bytes: usize = records
        .iter()
        .map(|record| record_size(record) + MAX_VARINT_BYTES)
        .sum();
    let mut batch = BytesMut::with_capacity(batch::HEADER_LEN + body_bytes);
    batch.put_i64(0); // base offset
    batch.put_i32(0); // batch length, set below
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(batch::MAGIC_V2);
    batch.put_u32(0); // CRC, set below
    batch.put_i16(compression_code(compression));
    batch.put_i32(records.len() as i32 - 1);
    batch.put_i64(base_timestamp);
    batch.put_i64(max_timestamp);
    batch.put_i64(producer.producer_id);
    batch.put_i16(producer.producer_epoch);
    batch.put_i32(producer.base_sequence);
    batch.put_i32(records.len() as i32);

    // Uncompressed records go straight into the batch; compressed ones are gathered first.
    if compression == Compression::None {
        put_records(&mut batch, records, &timestamps, base_timestamp);
    } else {
        let mut body = BytesMut::with_capacity(body_bytes);
        put_records(&mut body, records, &timestamps, base_timestamp);
        compress_into(&mut batch, compression, &body);
    }

    let length = (batch.len() - batch::LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

fn compression_code(compression: Compression) -> i16 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

fn compress_into(out: &mut BytesMut, compression: Compression, body: &[u8]) {
    let write = |buffer: &mut BytesMut| -> anyhow::Result<()> {
        buffer.put_slice(body);
        Ok(())
    };
    let compressed = match compression {
        Compression::None => {
            out.put_slice(body);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(out, write),
        Compression::Snappy => Snappy::compress(out, write),
        Compression::Lz4 => Lz4::compress(out, write),
        Compression::Zstd => Zstd::compress(out, write),
    };
    compressed.expect("compressing into memory does not fail");
}

fn get_varint(buf: &mut Bytes) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err("record ends inside a varint".to_string());
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

fn get_bytes(buf: &mut Bytes) -> Result<Option<Bytes>, String> {
    let len = get_varint(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return Err(format!("record field of {len} bytes runs past the batch"));
    }
    Ok(Some(buf.split_to(len)))
}

/// Decodes every record of the batches in `records`, checking each batch's CRC. A
/// partial batch at the end, which a fetch may return, is skipped. Control batches are
/// skipped.
pub fn decode_batches(records: &Bytes) -> Result<Vec<ConsumerRecord>, String> {
    let mut decoded = Vec::new();
    let mut position = 0;
    while position + batch::HEADER_LEN <= records.len() {
        let header = BatchHeader::parse(&records[position..]).map_err(|error| error.to_string())?;
        if position + header.size() > records.len() {
            break;
        }
        let bytes = records.slice(position..position + header.size());
        position += header.size();
        batch::check_crc(&bytes).map_err(|error| error.to_string())?;
        if header.is_control() {
            continue;
        }
        let codec = header.compression().map_err(|error| error.to_string())?;
        let body = batch::decompress(codec, bytes.slice(batch::HEADER_LEN..)).map_err(|error| error.to_string())?;
        decode_records(&header, body, &mut decoded)?;
    }
    Ok(decoded)
}

fn decode_records(header: &BatchHeader, mut body: Bytes, out: &mut Vec<ConsumerRecord>) -> Result<(), String> {
    let log_append_time = header.timestamp_type() == batch::TimestampType::LogAppendTime;
    for _ in 0..header.record_count {
        let length = get_varint(&mut body)?;
        if length < 0 || body.remaining() < length as usize {
            return Err(format!("record length {length} runs past the batch"));
        }
        let mut record = body.split_to(length as usize);
        record.get_u8(); // attributes
        let timestamp_delta = get_varint(&mut record)?;
        let offset_delta = get_varint(&mut record)?;
        let key = get_bytes(&mut record)?;
        let value = get_bytes(&mut record)?;
        let header_count = get_varint(&mut record)?;
        let mut headers = Vec::new();
        for _ in 0..header_count.max(0) {
            let name = get_bytes(&mut record)?.unwrap_or_default();
            let name = String::from_utf8(name.to_vec()).map_err(|_| "header key is not UTF-8".to_string())?;
            headers.push((name, get_bytes(&mut record)?));
        }
        out.push(ConsumerRecord {
            offset: header.base_offset + offset_delta,
            timestamp: if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp + timestamp_delta
            },
            key,
            value,
            headers,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ProducerRecord> {
        vec![
            ProducerRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![
                    ("h".to_string(), Some(Bytes::from_static(b"1"))),
                    ("h".to_string(), None),
                ],
                timestamp: Some(1_000),
            },
            ProducerRecord {
                key: None,
                value: Some(Bytes::new()),
                headers: Vec::new(),
                timestamp: Some(1_005),
            },
        ]
    }

    #[test]
    fn batches_round_trip_with_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let encoded = encode_batch(&sample(), codec, ProducerFields::NONE, 0);
            batch::validate(&encoded).unwrap_or_else(|error| panic!("{codec:?}: {error}"));
            let decoded = decode_batches(&encoded).expect("decodes");
            assert_eq!(decoded.len(), 2, "{codec:?}");
            assert_eq!(decoded[0].headers, sample()[0].headers, "{codec:?}");
            assert_eq!(decoded[1].timestamp, 1_005, "{codec:?}");
            assert_eq!(decoded[1].value, Some(Bytes::new()), "{codec:?}");
        }
    }

    #[test]
    fn varint_len_matches_encoding() {
        for value in [
            0,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut encoded = BytesMut::new();
            put_varint(&mut encoded, value);
            assert_eq!(varint_len(value), encoded.len(), "value {value}");
        }
    }

    #[test]
    fn producer_fields_are_written() {
        let fields = ProducerFields {
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
        };
        let encoded = encode_batch(&sample(), Compression::None, fields, 0);
        let header = BatchHeader::parse(&encoded).expect("parses");
        assert_eq!(
            (header.producer_id, header.producer_epoch, header.base_sequence),
            (7, 2, 40)
        );
    }
}
