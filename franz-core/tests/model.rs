//! Model-based property test: random sequences of appends, reads, rolls, retention,
//! truncation, crashes and reopens on the simulated disk, checked against a plain list
//! of batches.
//!
//! After every crash the log must contain every batch below the recovery point it reported
//! before the crash. What it returns must match the model batch for batch. A torn batch
//! never comes back, because the client-side decoder checks every CRC.

#![cfg(not(madsim))]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{batch_with, block_on, decode, open, read_all, Seen};
use franz_core::{FlushPolicy, Log, LogConfig, SimDisk};
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[derive(Debug, Clone)]
enum Op {
    Append { timestamps: Vec<i64>, value_len: usize },
    Read { pick: u64, max_bytes: usize },
    FindTimestamp { timestamp: i64 },
    Roll,
    Retention { advance_ms: i64 },
    DeleteRecords { pick: u64 },
    Truncate { pick: u64 },
    Flush,
    Crash,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (prop::collection::vec(0..2_000i64, 1..6), 0..400usize)
            .prop_map(|(timestamps, value_len)| Op::Append { timestamps, value_len }),
        3 => (any::<u64>(), 1..3_000usize).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        2 => (0..2_100i64).prop_map(|timestamp| Op::FindTimestamp { timestamp }),
        1 => Just(Op::Roll),
        1 => (0..3_000i64).prop_map(|advance_ms| Op::Retention { advance_ms }),
        1 => any::<u64>().prop_map(|pick| Op::DeleteRecords { pick }),
        1 => any::<u64>().prop_map(|pick| Op::Truncate { pick }),
        1 => Just(Op::Flush),
        2 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

fn flush_policy() -> impl Strategy<Value = FlushPolicy> {
    prop_oneof![
        Just(FlushPolicy::EveryAppend),
        Just(FlushPolicy::EveryMessages(4)),
        Just(FlushPolicy::Interval(Duration::from_millis(500))),
        Just(FlushPolicy::Os),
    ]
}

/// The model: the records the log should hold, in offset order.
struct Model {
    records: Vec<Seen>,
    /// Batch boundaries as (base offset, next offset), for truncation.
    batches: Vec<(i64, i64)>,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl Model {
    fn truncate_to(&mut self, end: i64) {
        self.records.retain(|record| record.offset < end);
        self.batches.retain(|(_, next)| *next <= end);
        self.log_end_offset = end;
    }

    fn pick(&self, pick: u64) -> i64 {
        let span = (self.log_end_offset - self.log_start_offset + 1) as u64;
        self.log_start_offset + (pick % span) as i64
    }

    fn visible(&self) -> Vec<Seen> {
        self.records
            .iter()
            .filter(|record| record.offset >= self.log_start_offset)
            .cloned()
            .collect()
    }
}

async fn check_matches(log: &Log<SimDisk>, model: &Model) {
    assert_eq!(log.log_start_offset().await, model.log_start_offset, "log start offset");
    assert_eq!(log.log_end_offset().await, model.log_end_offset, "log end offset");
    assert_eq!(read_all(log, model.log_start_offset).await, model.visible(), "records");
}

fn run(seed: u64, flush: FlushPolicy, ops: Vec<Op>) {
    let disk = SimDisk::new(seed);
    let dir = Path::new("/data/topic-0");
    let config = LogConfig {
        segment_bytes: 2_048,
        segment_index_bytes: 240,
        index_interval_bytes: 128,
        retention_ms: Some(5_000),
        flush,
        ..LogConfig::default()
    };
    block_on(async {
        let (mut log, mut clock) = open(&disk, dir, config.clone(), 0).await;
        let mut model = Model {
            records: Vec::new(),
            batches: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
        };
        for op in ops {
            match op {
                Op::Append { timestamps, value_len } => {
                    let info = log
                        .append(batch_with(&timestamps, value_len, Compression::None), 0)
                        .await
                        .unwrap();
                    assert_eq!(info.base_offset, model.log_end_offset);
                    for (index, timestamp) in timestamps.iter().enumerate() {
                        model.records.push(Seen {
                            offset: info.base_offset + index as i64,
                            timestamp: *timestamp,
                            value_len,
                        });
                    }
                    model.batches.push((info.base_offset, info.last_offset + 1));
                    model.log_end_offset = info.last_offset + 1;
                }
                Op::Read { pick, max_bytes } => {
                    let offset = model.pick(pick);
                    let read = log.read(offset, max_bytes).await.unwrap();
                    let records = decode(&read.records);
                    if offset == model.log_end_offset {
                        assert!(records.is_empty());
                        continue;
                    }
                    let first = records.first().expect("a read below the end returns a batch");
                    let last = records.last().expect("records");
                    assert!(first.offset <= offset, "read at {offset} starts at {}", first.offset);
                    assert!(last.offset >= offset, "read at {offset} ends at {}", last.offset);
                    let expected: Vec<Seen> = model
                        .records
                        .iter()
                        .filter(|record| record.offset >= first.offset && record.offset <= last.offset)
                        .cloned()
                        .collect();
                    assert_eq!(records, expected);
                }
                Op::FindTimestamp { timestamp } => {
                    let found = log.offset_for_timestamp(timestamp).await.unwrap();
                    let expected = model
                        .visible()
                        .into_iter()
                        .find(|record| record.timestamp >= timestamp)
                        .map(|record| (record.offset, record.timestamp));
                    assert_eq!(
                        found.map(|found| (found.offset, found.timestamp)),
                        expected,
                        "timestamp {timestamp}"
                    );
                }
                Op::Roll => log.roll().await.unwrap(),
                Op::Retention { advance_ms } => {
                    clock.advance(advance_ms);
                    let outcome = log.enforce_retention().await.unwrap();
                    assert!(outcome.log_start_offset >= model.log_start_offset);
                    assert!(outcome.log_start_offset <= model.log_end_offset);
                    model.log_start_offset = outcome.log_start_offset;
                }
                Op::DeleteRecords { pick } => {
                    let offset = model.pick(pick);
                    let start = log.delete_records_before(offset).await.unwrap();
                    assert_eq!(start, offset.max(model.log_start_offset));
                    model.log_start_offset = start;
                }
                Op::Truncate { pick } => {
                    let offset = model.pick(pick);
                    let first_base = log.segment_base_offsets().await[0];
                    log.truncate_to(offset).await.unwrap();
                    if offset >= model.log_end_offset {
                        continue;
                    }
                    let end = model
                        .batches
                        .iter()
                        .find(|(_, next)| *next > offset)
                        .map_or(model.log_end_offset, |(base, _)| *base);
                    let end = if offset <= first_base || end < model.log_start_offset {
                        model.log_start_offset = offset;
                        offset
                    } else {
                        end
                    };
                    model.truncate_to(end);
                }
                Op::Flush => {
                    log.flush().await.unwrap();
                    assert_eq!(log.recovery_point().await, model.log_end_offset);
                }
                Op::Crash => {
                    let synced = log.recovery_point().await;
                    drop(log);
                    disk.crash();
                    (log, clock) = open(&disk, dir, config.clone(), clock.now_ms_for_test()).await;
                    let end = log.log_end_offset().await;
                    assert!(
                        end >= synced,
                        "lost synced data: end {end} below recovery point {synced}"
                    );
                    assert!(end <= model.log_end_offset, "end {end} past the model's");
                    model.truncate_to(end);
                    check_matches(&log, &model).await;
                }
                Op::Reopen => {
                    log.close().await.unwrap();
                    (log, clock) = open(&disk, dir, config.clone(), clock.now_ms_for_test()).await;
                    check_matches(&log, &model).await;
                }
            }
        }
        check_matches(&log, &model).await;
    });
}

trait NowForTest {
    fn now_ms_for_test(&self) -> i64;
}

impl NowForTest for std::sync::Arc<franz_core::ManualClock> {
    fn now_ms_for_test(&self) -> i64 {
        use franz_core::Clock;
        self.now_ms()
    }
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run. A failure is saved next to
    // this file and replayed first on every later run.
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/model.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model_across_crashes(
        seed in any::<u64>(),
        flush in flush_policy(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(seed, flush, ops);
    }
}
