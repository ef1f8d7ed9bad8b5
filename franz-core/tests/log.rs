//! Tests of the partition log on real files in temporary folders.

#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{batch, batch_with, block_on, decode, open, read_all};
use franz_core::batch::{BatchHeader, TimestampType};
use franz_core::{FlushPolicy, LogConfig, LogError, RealDisk, SimDisk, SimDiskFaults};
use kafka_protocol::records::Compression;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

#[test]
fn append_assigns_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 1_000).await;
        let first = log.append(batch(3, 1_000, 10), 7).await.unwrap();
        let second = log.append(batch(2, 1_000, 10), 7).await.unwrap();

        assert_eq!((first.base_offset, first.last_offset), (0, 2));
        assert_eq!((second.base_offset, second.last_offset), (3, 4));
        assert_eq!(first.log_append_time, -1);
        assert_eq!(log.log_end_offset().await, 5);

        let read = log.read(0, 1 << 20).await.unwrap();
        let offsets: Vec<i64> = decode(&read.records).iter().map(|record| record.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
        let header = BatchHeader::parse(&read.records).unwrap();
        assert_eq!(header.partition_leader_epoch, 7);
    });
}

#[test]
fn append_stores_batches_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        let sent = batch(4, 55, 30);
        log.append(sent.clone(), -1).await.unwrap();
        let read = log.read(0, 1 << 20).await.unwrap();
        // The producer's batch has base offset 0 and leader epoch -1, so nothing changes.
        assert_eq!(&read.records[..], &sent[..]);
    });
}

#[test]
fn append_rejects_bad_crc_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        let mut bad = batch(2, 0, 10);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let error = log.append(bad, 0).await.unwrap_err();
        assert!(matches!(error, LogError::InvalidBatch { .. }), "{error}");
        assert!(error.to_string().contains("CRC32C mismatch"), "{error}");
        assert_eq!(log.log_end_offset().await, 0);
        assert_eq!(log.size_bytes().await, 0);
    });
}

#[test]
fn append_rejects_request_with_one_bad_batch() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        let mut records = batch(2, 0, 10);
        let mut second = batch(1, 0, 10);
        second[16] = 1; // magic
        records.extend_from_slice(&second);
        let error = log.append(records, 0).await.unwrap_err();
        assert!(matches!(error, LogError::InvalidBatch { index: 1, .. }), "{error}");
        assert_eq!(log.size_bytes().await, 0);
    });
}

#[test]
fn append_rejects_truncated_and_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        let mut cut = batch(2, 0, 10);
        cut.truncate(cut.len() - 3);
        assert!(matches!(log.append(cut, 0).await, Err(LogError::InvalidBatch { .. })));
        assert!(matches!(
            log.append(BytesMut::new(), 0).await,
            Err(LogError::InvalidBatch { .. })
        ));
        assert_eq!(log.size_bytes().await, 0);
    });
}

#[test]
fn append_enforces_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let exact = batch(1, 0, 100);
        let config = LogConfig {
            max_message_bytes: exact.len(),
            ..LogConfig::default()
        };
        let (log, _clock) = open(&RealDisk, dir.path(), config, 0).await;
        log.append(exact.clone(), 0).await.unwrap();
        let error = log.append(batch(1, 0, 101), 0).await.unwrap_err();
        assert!(
            matches!(error, LogError::RecordTooLarge { size, max, .. } if size == exact.len() + 1 && max == exact.len()),
            "{error}"
        );
        assert_eq!(log.log_end_offset().await, 1);
        assert_eq!(log.size_bytes().await, exact.len() as u64);
    });
}

#[test]
fn log_append_time_stamps_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let (log, _clock) = open(&RealDisk, dir.path(), config, 42_000).await;
        let info = log.append(batch(3, 5, 10), 0).await.unwrap();
        assert_eq!(info.log_append_time, 42_000);
        let read = log.read(0, 1 << 20).await.unwrap();
        let header = BatchHeader::parse(&read.records).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 42_000);
        // decode() checks the rewritten CRC.
        assert_eq!(decode(&read.records).len(), 3);
    });
}

#[test]
fn read_returns_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        let big = batch(1, 0, 5_000);
        log.append(big.clone(), 0).await.unwrap();
        log.append(batch(1, 0, 10), 0).await.unwrap();

        let read = log.read(0, 100).await.unwrap();
        assert_eq!(read.records.len(), big.len());
        let read = log.read(0, big.len() + 10).await.unwrap();
        assert_eq!(read.records.len(), big.len(), "the second batch does not fit");
        let read = log.read(0, 1 << 20).await.unwrap();
        assert_eq!(decode(&read.records).len(), 2);
    });
}

#[test]
fn read_starts_at_batch_holding_offset() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        for _ in 0..50 {
            log.append(batch(5, 0, 40), 0).await.unwrap();
        }
        for offset in [0, 3, 4, 5, 77, 123, 249] {
            let read = log.read(offset, 1).await.unwrap();
            let records = decode(&read.records);
            let first = records.first().unwrap().offset;
            assert_eq!(first, offset / 5 * 5, "read at {offset}");
            assert_eq!(records.len(), 5);
        }
        assert!(log.segment_count().await > 1, "the test needs several segments");
    });
}

#[test]
fn read_at_and_past_end() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        log.append(batch(2, 0, 10), 0).await.unwrap();
        let read = log.read(2, 1024).await.unwrap();
        assert!(read.records.is_empty());
        assert_eq!(read.log_end_offset, 2);
        let error = log.read(3, 1024).await.unwrap_err();
        assert!(
            matches!(
                error,
                LogError::OffsetOutOfRange {
                    offset: 3,
                    log_end_offset: 2,
                    ..
                }
            ),
            "{error}"
        );
    });
}

#[test]
fn read_below_log_start_reports_log_start() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        log.append(batch(10, 0, 10), 0).await.unwrap();
        assert_eq!(log.delete_records_before(4).await.unwrap(), 4);
        let error = log.read(3, 1024).await.unwrap_err();
        assert!(
            matches!(
                error,
                LogError::OffsetOutOfRange {
                    offset: 3,
                    log_start_offset: 4,
                    ..
                }
            ),
            "{error}"
        );
        assert!(log.read(4, 1024).await.is_ok());
    });
}

#[test]
fn timestamp_lookup_looks_inside_batches() {
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
            log.append(batch_with(&[2, 4, 6, 8], 10, compression), 0).await.unwrap();
            log.append(batch_with(&[20, 10, 30], 10, compression), 0).await.unwrap();

            let cases = [
                (0, Some((0, 2))),
                (3, Some((1, 4))),
                (8, Some((3, 8))),
                (9, Some((4, 20))),
                (21, Some((6, 30))),
                (31, None),
            ];
            for (timestamp, expected) in cases {
                let found = log.offset_for_timestamp(timestamp).await.unwrap();
                let found = found.map(|found| (found.offset, found.timestamp));
                assert_eq!(found, expected, "timestamp {timestamp}, {compression:?}");
            }
        });
    }
}

#[test]
fn timestamp_lookup_spans_segments_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        let mut stored = Vec::new();
        for step in 0..200 {
            log.append(batch_with(&[step * 10, step * 10 + 5], 50, Compression::None), 0)
                .await
                .unwrap();
            stored.push((step * 2, step * 10));
            stored.push((step * 2 + 1, step * 10 + 5));
        }
        assert!(log.segment_count().await > 3);
        for target in [0, 1, 5, 6, 995, 1000, 1001, 1995, 1996] {
            let expected = stored.iter().find(|(_, timestamp)| *timestamp >= target).copied();
            let found = log.offset_for_timestamp(target).await.unwrap();
            assert_eq!(
                found.map(|found| (found.offset, found.timestamp)),
                expected,
                "timestamp {target}"
            );
        }
    });
}

#[test]
fn segments_roll_on_size() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        let one_record = batch(1, 0, 300);
        for _ in 0..40 {
            log.append(one_record.clone(), 0).await.unwrap();
        }
        let per_segment = 4096 / one_record.len() as i64;
        let bases = log.segment_base_offsets().await;
        assert_eq!(bases.len() as i64, (40 + per_segment - 1) / per_segment);
        assert!(
            bases.windows(2).all(|pair| pair[1] - pair[0] == per_segment),
            "{bases:?}"
        );
        let name = format!("{:020}.log", bases[1]);
        assert!(dir.path().join(name).exists());
        assert_eq!(read_all(&log, 0).await.len(), 40);
    });
}

#[test]
fn segments_roll_on_age() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        };
        let (log, clock) = open(&RealDisk, dir.path(), config, 10_000).await;
        log.append(batch(1, 10_000, 10), 0).await.unwrap();
        clock.advance(1_000);
        log.append(batch(1, 11_000, 10), 0).await.unwrap();
        assert_eq!(log.segment_count().await, 1);
        clock.advance(1);
        log.append(batch(1, 11_001, 10), 0).await.unwrap();
        assert_eq!(log.segment_base_offsets().await, [0, 2]);
    });
}

#[test]
fn segments_roll_on_full_index() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            segment_index_bytes: 48, // 6 offset entries, 4 time entries
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let (log, _clock) = open(&RealDisk, dir.path(), config, 0).await;
        for step in 0..20 {
            log.append(batch(1, step, 10), 0).await.unwrap();
        }
        assert!(log.segment_count().await >= 4, "{:?}", log.segment_base_offsets().await);
        assert_eq!(read_all(&log, 0).await.len(), 20);
        for step in 0..20 {
            assert_eq!(log.offset_for_timestamp(step).await.unwrap().unwrap().offset, step);
        }
    });
}

#[test]
fn retention_by_time_deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            retention_ms: Some(1_000),
            ..small_segments()
        };
        let (log, clock) = open(&RealDisk, dir.path(), config, 0).await;
        for step in 0..30 {
            log.append(batch(1, step * 100, 300), 0).await.unwrap();
        }
        let bases = log.segment_base_offsets().await;
        clock.set(bases[2] * 100 + 1_000);
        // Segments 0 and 1 hold records older than now - retention; segment 2 does not.
        let outcome = log.enforce_retention().await.unwrap();
        assert_eq!(outcome.deleted_segments, 2);
        assert_eq!(outcome.log_start_offset, bases[2]);
        assert_eq!(log.log_start_offset().await, bases[2]);
        assert!(!dir.path().join(format!("{:020}.log", bases[0])).exists());
        assert!(matches!(
            log.read(0, 1024).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));

        clock.set(1_000_000);
        let outcome = log.enforce_retention().await.unwrap();
        assert_eq!(
            outcome.log_start_offset, 30,
            "the expired active segment rolls and goes"
        );
        assert_eq!(log.log_end_offset().await, 30);
        assert_eq!(log.size_bytes().await, 0);
        let info = log.append(batch(1, 1_000_000, 10), 0).await.unwrap();
        assert_eq!(info.base_offset, 30);
    });
}

#[test]
fn retention_by_size_keeps_newest_segments() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            retention_bytes: Some(8192),
            retention_ms: None,
            ..small_segments()
        };
        let (log, _clock) = open(&RealDisk, dir.path(), config, 0).await;
        for _ in 0..60 {
            log.append(batch(1, 0, 300), 0).await.unwrap();
        }
        let before = log.size_bytes().await;
        let outcome = log.enforce_retention().await.unwrap();
        assert!(outcome.deleted_segments > 0);
        let after = log.size_bytes().await;
        assert!(
            after >= 8192 - 4096,
            "kept {after} bytes, below the limit minus one segment"
        );
        assert!(after < before, "before {before}, after {after}");
        assert_eq!(
            read_all(&log, outcome.log_start_offset).await.len() as i64,
            60 - outcome.log_start_offset
        );
    });
}

#[test]
fn delete_records_moves_log_start_and_drops_segments() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        for _ in 0..40 {
            log.append(batch(1, 0, 300), 0).await.unwrap();
        }
        let bases = log.segment_base_offsets().await;
        let target = bases[2] + 1;
        assert_eq!(log.delete_records_before(target).await.unwrap(), target);
        assert_eq!(log.segment_base_offsets().await[0], bases[2]);
        assert_eq!(read_all(&log, target).await.first().unwrap().offset, target);
        assert!(matches!(
            log.delete_records_before(41).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
    });
}

#[test]
fn truncate_removes_tail_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        for step in 0..40 {
            log.append(batch(2, step, 300), 0).await.unwrap();
        }
        let bases = log.segment_base_offsets().await;
        // Offset 31 sits inside a two-record batch, which goes whole.
        log.truncate_to(31).await.unwrap();
        assert_eq!(log.log_end_offset().await, 30);
        assert!(log.segment_base_offsets().await.iter().all(|base| *base <= 30));
        assert!(
            bases.iter().any(|base| *base > 30),
            "the test needs a segment past the cut"
        );
        assert_eq!(log.offset_for_timestamp(14).await.unwrap().unwrap().offset, 28);
        assert_eq!(
            log.offset_for_timestamp(15).await.unwrap(),
            None,
            "truncated records are gone"
        );

        let info = log.append(batch(1, 99, 10), 0).await.unwrap();
        assert_eq!(info.base_offset, 30);
        let seen = read_all(&log, 0).await;
        assert_eq!(seen.len(), 31);
        assert_eq!(seen.last().unwrap().timestamp, 99);
    });
}

#[test]
fn truncate_below_first_segment_restarts_log() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), LogConfig::default(), 0).await;
        log.append(batch(5, 0, 10), 0).await.unwrap();
        log.truncate_to(0).await.unwrap();
        assert_eq!(log.log_end_offset().await, 0);
        assert_eq!(log.size_bytes().await, 0);
        assert_eq!(log.append(batch(1, 0, 10), 0).await.unwrap().base_offset, 0);
    });
}

#[test]
fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        for step in 0..100 {
            log.append(batch(1, step, 200), 0).await.unwrap();
        }
        log.delete_records_before(3).await.unwrap();
        let bases = log.segment_base_offsets().await;
        log.close().await.unwrap();

        let (log, _clock) = open(&RealDisk, dir.path(), small_segments(), 0).await;
        assert_eq!(log.segment_base_offsets().await, bases);
        assert_eq!(log.log_start_offset().await, 3);
        assert_eq!(log.log_end_offset().await, 100);
        assert_eq!(read_all(&log, 3).await.len(), 97);
        assert_eq!(log.offset_for_timestamp(57).await.unwrap().unwrap().offset, 57);
        assert_eq!(log.append(batch(1, 0, 10), 0).await.unwrap().base_offset, 100);
    });
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            segment_bytes: 1 << 40,
            ..LogConfig::default()
        };
        let clock = std::sync::Arc::new(franz_core::ManualClock::new(0));
        let error = franz_core::Log::open(RealDisk, clock, dir.path(), config)
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("segment.bytes"), "{error}");
    });
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let faults = SimDiskFaults {
        max_io_delay: Duration::from_millis(5),
        ..SimDiskFaults::default()
    };
    let disk = SimDisk::with_faults(17, faults);
    let config = LogConfig {
        flush: FlushPolicy::EveryAppend,
        ..LogConfig::default()
    };
    block_on(async {
        let (log, _clock) = open(&disk, std::path::Path::new("/data/t-0"), config, 0).await;
        let log = std::sync::Arc::new(log);
        let before = disk.sync_count();
        let appends: Vec<_> = (0..32)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move { log.append(batch(1, 0, 10), 0).await })
            })
            .collect();
        for append in appends {
            append.await.unwrap().unwrap();
        }
        let syncs = disk.sync_count() - before;
        assert!(syncs < 32, "{syncs} fsyncs for 32 appends: no group commit");
        assert!(syncs >= 1);
        assert_eq!(log.recovery_point().await, 32);
    });
}

#[test]
fn fsync_failure_takes_log_offline() {
    let disk = SimDisk::new(4);
    let config = LogConfig {
        flush: FlushPolicy::EveryAppend,
        ..LogConfig::default()
    };
    block_on(async {
        let (log, _clock) = open(&disk, std::path::Path::new("/data/t-0"), config, 0).await;
        log.append(batch(1, 0, 10), 0).await.unwrap();
        disk.fail_next_fsync();
        let error = log.append(batch(1, 0, 10), 0).await.unwrap_err();
        assert!(error.is_fatal(), "{error}");
        assert!(error.to_string().contains("fsync"), "{error}");
        let error = log.append(batch(1, 0, 10), 0).await.unwrap_err();
        assert!(matches!(error, LogError::Offline { .. }), "{error}");
        assert!(log.read(0, 1024).await.is_ok(), "reads go on");
    });
}

#[test]
fn flush_policies_sync_when_due() {
    let disk = SimDisk::new(8);
    block_on(async {
        let config = LogConfig {
            flush: FlushPolicy::EveryMessages(3),
            ..LogConfig::default()
        };
        let (log, _clock) = open(&disk, std::path::Path::new("/data/m-0"), config, 0).await;
        log.append(batch(2, 0, 10), 0).await.unwrap();
        assert_eq!(log.recovery_point().await, 0);
        log.append(batch(1, 0, 10), 0).await.unwrap();
        assert_eq!(log.recovery_point().await, 3);

        let config = LogConfig {
            flush: FlushPolicy::Interval(Duration::from_millis(100)),
            ..LogConfig::default()
        };
        let (log, clock) = open(&disk, std::path::Path::new("/data/i-0"), config, 0).await;
        log.append(batch(1, 0, 10), 0).await.unwrap();
        log.flush_if_due().await.unwrap();
        assert_eq!(log.recovery_point().await, 0);
        clock.advance(100);
        log.flush_if_due().await.unwrap();
        assert_eq!(log.recovery_point().await, 1);

        let (log, _clock) = open(&disk, std::path::Path::new("/data/o-0"), LogConfig::default(), 0).await;
        log.append(batch(1, 0, 10), 0).await.unwrap();
        log.flush_if_due().await.unwrap();
        assert_eq!(log.recovery_point().await, 0, "the OS policy never syncs on its own");
    });
}

#[test]
fn fsync_failure_in_truncate_takes_log_offline() {
    let disk = SimDisk::new(21);
    block_on(async {
        let (log, _clock) = open(&disk, std::path::Path::new("/data/t-0"), LogConfig::default(), 0).await;
        log.append(batch(1, 0, 10), 0).await.unwrap();
        log.append(batch(1, 0, 10), 0).await.unwrap();
        disk.fail_next_fsync();
        let error = log.truncate_to(1).await.unwrap_err();
        assert!(error.is_fatal(), "{error}");
        let error = log.append(batch(1, 0, 10), 0).await.unwrap_err();
        assert!(matches!(error, LogError::Offline { .. }), "{error}");
    });
}

#[test]
fn fsync_failure_on_roll_takes_log_offline() {
    let disk = SimDisk::new(22);
    block_on(async {
        let (log, _clock) = open(&disk, std::path::Path::new("/data/t-0"), LogConfig::default(), 0).await;
        log.append(batch(1, 0, 10), 0).await.unwrap();
        disk.fail_next_fsync();
        let error = log.roll().await.unwrap_err();
        assert!(error.is_fatal(), "{error}");
        assert_eq!(log.segment_count().await, 1, "no segment after a failed roll");
        let error = log.append(batch(1, 0, 10), 0).await.unwrap_err();
        assert!(matches!(error, LogError::Offline { .. }), "{error}");
    });
}
