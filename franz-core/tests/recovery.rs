//! Crash recovery and corruption tests on real files: torn tails are cut, damage in the
//! middle of the log is reported, and missing indexes are rebuilt.

#![cfg(not(madsim))]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{batch, block_on, open, read_all};
use franz_core::{LogConfig, LogError, RealDisk};

fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Appends `count` one-record batches of 200-byte values and drops the log without a
/// clean close, as a crash would. Returns the size of one batch.
fn fill_and_crash(dir: &Path, count: usize) -> u64 {
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir, config(), 0).await;
        for step in 0..count {
            log.append(batch(1, step as i64, 200), 0).await.unwrap();
        }
        drop(log);
    });
    batch(1, 0, 200).len() as u64
}

/// Appends `count` one-record batches with timestamps 0, 1, 2, ... and closes cleanly.
fn fill_and_close(dir: &Path, count: i64) {
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir, config(), 0).await;
        for step in 0..count {
            log.append(batch(1, step, 200), 0).await.unwrap();
        }
        log.close().await.unwrap();
    });
}

/// Opens the log in `dir` and returns the error that the open must fail with.
async fn open_error(dir: &Path) -> LogError {
    let clock = std::sync::Arc::new(franz_core::ManualClock::new(0));
    match franz_core::Log::open(RealDisk, clock, dir, config()).await {
        Ok(_) => panic!("opening {} succeeded, expected an error", dir.display()),
        Err(error) => error,
    }
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], position).unwrap();
}

#[test]
fn torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = fill_and_crash(dir.path(), 10);
    let log_file = segment_file(dir.path(), 0, "log");
    let file = OpenOptions::new().write(true).open(&log_file).unwrap();
    file.set_len(batch_size * 9 + 70).unwrap();

    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(log.log_end_offset().await, 9);
        assert_eq!(read_all(&log, 0).await.len(), 9);
        assert_eq!(log.append(batch(1, 0, 10), 0).await.unwrap().base_offset, 9);
    });
    assert_eq!(
        std::fs::metadata(&log_file).unwrap().len(),
        batch_size * 9 + batch(1, 0, 10).len() as u64
    );
}

#[test]
fn zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = fill_and_crash(dir.path(), 5);
    let log_file = segment_file(dir.path(), 0, "log");
    let mut file = OpenOptions::new().append(true).open(&log_file).unwrap();
    file.write_all(&[0; 4096]).unwrap();

    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(log.log_end_offset().await, 5);
        assert_eq!(log.size_bytes().await, batch_size * 5);
    });
}

#[test]
fn flipped_bit_mid_log_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = fill_and_crash(dir.path(), 10);
    let log_file = segment_file(dir.path(), 0, "log");
    let damaged_batch = batch_size * 4;
    flip_byte(&log_file, damaged_batch + 100);

    block_on(async {
        let error = open_error(dir.path()).await;
        match &error {
            LogError::Corruption { path, position, reason } => {
                assert_eq!(path, &log_file);
                assert_eq!(*position, damaged_batch);
                assert!(reason.contains("CRC32C mismatch"), "{reason}");
            }
            other => panic!("expected corruption, got {other}"),
        }
        assert!(error.is_fatal());
        assert!(error.to_string().contains("restore the partition"), "{error}");
    });
    // Nothing was cut: the damaged file keeps every byte for an operator to inspect.
    assert_eq!(std::fs::metadata(&log_file).unwrap().len(), batch_size * 10);
}

#[test]
fn damaged_header_mid_log_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = fill_and_crash(dir.path(), 10);
    let log_file = segment_file(dir.path(), 0, "log");
    flip_byte(&log_file, batch_size * 2 + 16); // the magic byte

    block_on(async {
        let error = open_error(dir.path()).await;
        assert!(
            matches!(error, LogError::Corruption { position, .. } if position == batch_size * 2),
            "{error}"
        );
    });
}

#[test]
fn deleted_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_close(dir.path(), 200);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".index") || name.ends_with(".timeindex") {
            std::fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 4, "the test needs several segments");

    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(log.log_end_offset().await, 200);
        assert_eq!(read_all(&log, 0).await.len(), 200);
        for step in [0, 57, 199] {
            assert_eq!(log.offset_for_timestamp(step).await.unwrap().unwrap().offset, step);
            assert_eq!(log.read(step, 1).await.unwrap().records.len(), batch(1, 0, 200).len());
        }
        for base in log.segment_base_offsets().await {
            assert!(segment_file(dir.path(), base, "index").exists());
            assert!(segment_file(dir.path(), base, "timeindex").exists());
        }
    });
}

#[test]
fn garbage_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_close(dir.path(), 100);
    std::fs::write(segment_file(dir.path(), 0, "index"), [0xff; 24]).unwrap();
    std::fs::write(segment_file(dir.path(), 0, "timeindex"), [0x01; 25]).unwrap();

    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(read_all(&log, 0).await.len(), 100);
        assert_eq!(log.offset_for_timestamp(10).await.unwrap().unwrap().offset, 10);
    });
}

#[test]
fn clean_reopen_skips_scan() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = batch(1, 0, 200).len() as u64;
    fill_and_close(dir.path(), 10);
    // Damage at rest after a clean close goes unseen at open, as in Kafka: the scan is
    // skipped, and a client's CRC check catches the batch on fetch.
    flip_byte(&segment_file(dir.path(), 0, "log"), batch_size * 4 + 100);
    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(log.log_end_offset().await, 10);
    });
}

#[test]
fn invalid_checkpoint_means_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let batch_size = batch(1, 0, 200).len() as u64;
    fill_and_close(dir.path(), 10);
    std::fs::write(dir.path().join("partition.checkpoint"), "garbage").unwrap();
    flip_byte(&segment_file(dir.path(), 0, "log"), batch_size * 4 + 100);
    block_on(async {
        let error = open_error(dir.path()).await;
        assert!(matches!(error, LogError::Corruption { .. }), "{error}");
    });
}

#[test]
fn leftover_files_are_cleaned_or_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fill_and_crash(dir.path(), 3);
    std::fs::write(dir.path().join("partition.checkpoint.tmp"), "half").unwrap();
    std::fs::write(segment_file(dir.path(), 500, "index"), []).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "operator notes").unwrap();

    block_on(async {
        let (log, _clock) = open(&RealDisk, dir.path(), config(), 0).await;
        assert_eq!(log.log_end_offset().await, 3);
    });
    assert!(!dir.path().join("partition.checkpoint.tmp").exists());
    assert!(!segment_file(dir.path(), 500, "index").exists());
    assert!(dir.path().join("notes.txt").exists());
}
