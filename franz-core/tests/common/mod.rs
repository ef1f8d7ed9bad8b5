//! Helpers shared by the storage tests: batches built by kafka-protocol's encoder, as a
//! client would send them, and decoded by its decoder, as a client would read them.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use franz_core::{Disk, Log, LogConfig, ManualClock};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Runs a future on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Encodes one batch with a record per timestamp; record `i` has key `key-i` and a value
/// of `value_len` bytes.
pub fn batch_with(timestamps: &[i64], value_len: usize, compression: Compression) -> BytesMut {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(index, timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // kafka-protocol's encoder starts a new batch when offset minus sequence
            // changes; this keeps it constant and the base sequence at -1.
            sequence: index as i32 - 1,
            timestamp: *timestamp,
            key: Some(Bytes::from(format!("key-{index}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf
}

/// Encodes an uncompressed batch of `count` records, all with `timestamp`.
pub fn batch(count: usize, timestamp: i64, value_len: usize) -> BytesMut {
    batch_with(&vec![timestamp; count], value_len, Compression::None)
}

/// A decoded record: offset, timestamp and value length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub offset: i64,
    pub timestamp: i64,
    pub value_len: usize,
}

/// Decodes stored batches as a client would, checking every CRC.
pub fn decode(records: &Bytes) -> Vec<Seen> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("stored batches decode")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|record| Seen {
            offset: record.offset,
            timestamp: record.timestamp,
            value_len: record.value.map_or(0, |value| value.len()),
        })
        .collect()
}

/// Opens a log with a manual clock set to `now_ms`.
pub async fn open<D: Disk>(disk: &D, dir: &Path, config: LogConfig, now_ms: i64) -> (Log<D>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now_ms));
    let log = Log::open(disk.clone(), clock.clone(), dir, config)
        .await
        .expect("log opens");
    (log, clock)
}

/// Reads every record from `from` to the log end.
pub async fn read_all<D: Disk>(log: &Log<D>, from: i64) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset().await;
    while offset < end {
        let read = log.read(offset, 64 * 1024).await.expect("read");
        let records = decode(&read.records);
        assert!(
            !records.is_empty(),
            "read at {offset} below the end {end} returned nothing"
        );
        offset = records.last().expect("records").offset + 1;
        seen.extend(records.into_iter().filter(|record| record.offset >= from));
    }
    seen
}
