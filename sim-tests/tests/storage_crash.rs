//! The storage engine inside madsim: concurrent producers append with a sync on every
//! append to the simulated disk, the disk crashes at a random moment, and after recovery
//! every append that returned Ok must still be readable.
//!
//! Run: `RUSTFLAGS="--cfg madsim" cargo test -p sim-tests`. Replay one seed with
//! `MADSIM_TEST_SEED=<seed>` in front of that command.

#![cfg(madsim)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use franz_core::batch::{self, BatchHeader};
use franz_core::{FlushPolicy, Log, LogConfig, ManualClock, SimDisk, SimDiskFaults};

/// Builds a one-record uncompressed batch whose value is `value`.
fn one_record_batch(value: u64) -> bytes::BytesMut {
    let value = value.to_be_bytes();
    let mut record = vec![0u8]; // attributes
    record.push(0); // timestamp delta 0
    record.push(0); // offset delta 0
    record.push(1); // key length -1 (zigzag)
    record.push(16); // value length 8 (zigzag)
    record.extend_from_slice(&value);
    record.push(0); // no headers
    let mut batch = vec![0u8; batch::HEADER_LEN];
    batch.push((record.len() as u8) << 1);
    batch.extend_from_slice(&record);
    let length = (batch.len() - batch::LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    batch[16] = batch::MAGIC_V2 as u8;
    batch[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    batch[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&1i32.to_be_bytes());
    let crc = batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::BytesMut::from(&batch[..])
}

/// Returns the value of the one-record batch at the start of `bytes`.
fn value_of(bytes: &[u8]) -> u64 {
    let header = BatchHeader::parse(bytes).expect("stored batch parses");
    assert_eq!(header.record_count, 1);
    let value_at = batch::HEADER_LEN + 6;
    u64::from_be_bytes(bytes[value_at..value_at + 8].try_into().unwrap())
}

#[madsim::test]
async fn acknowledged_appends_survive_crash() {
    let seed: u64 = madsim::rand::random();
    let faults = SimDiskFaults {
        max_io_delay: Duration::from_micros(300),
        ..SimDiskFaults::default()
    };
    let disk = SimDisk::with_faults(seed, faults);
    let dir = Path::new("/data/events-0");
    let config = LogConfig {
        segment_bytes: 4096,
        flush: FlushPolicy::EveryAppend,
        ..LogConfig::default()
    };
    let clock = Arc::new(ManualClock::new(0));
    let log = Arc::new(
        Log::open(disk.clone(), clock.clone(), dir, config.clone())
            .await
            .unwrap(),
    );

    // Acknowledged (value, offset) pairs, recorded only after append returned Ok.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut producers = Vec::new();
    for producer in 0..4u64 {
        let log = log.clone();
        let acknowledged = acknowledged.clone();
        producers.push(madsim::task::spawn(async move {
            for sequence in 0..1_000u64 {
                let value = producer << 32 | sequence;
                match log.append(one_record_batch(value), 0).await {
                    Ok(info) => acknowledged.lock().unwrap().push((value, info.base_offset)),
                    Err(error) => panic!("disk seed {seed}: append failed: {error}"),
                }
            }
        }));
    }

    let crash_after = Duration::from_micros(1 + madsim::rand::random::<u64>() % 50_000);
    madsim::time::sleep(crash_after).await;
    for producer in producers {
        producer.abort();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(log);
    disk.crash();

    let log = Log::open(disk.clone(), clock, dir, config).await.unwrap();
    let end = log.log_end_offset().await;
    for (value, offset) in &acknowledged {
        assert!(
            *offset < end,
            "disk seed {seed}: acknowledged offset {offset} is past the recovered end {end}"
        );
        let read = log.read(*offset, 1).await.unwrap();
        assert_eq!(
            value_of(&read.records),
            *value,
            "disk seed {seed}: offset {offset} contains another value"
        );
    }
    tracing::info!(
        seed,
        acknowledged = acknowledged.len(),
        recovered_end = end,
        "crash check passed"
    );
}
