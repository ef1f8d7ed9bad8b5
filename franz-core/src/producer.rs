//! Idempotent producer state of one partition: per producer id, its epoch and the last
//! few batches it wrote, so that a retried batch is stored once and a gap in sequence
//! numbers is rejected.
//!
//! The table is a pure state machine. The broker checks each incoming batch with
//! [`ProducerStateTable::check`], appends it, then records the stored batch with
//! [`ProducerStateTable::record`], all under one lock per partition. After a restart the
//! broker rebuilds the table by recording every stored batch again, oldest first.

use std::collections::{BTreeMap, VecDeque};

use crate::batch::BatchHeader;

/// Batches remembered per producer, as in Kafka: a producer has at most five requests in
/// flight when idempotence is on, so a retry always matches one of the last five.
pub const BATCHES_PER_PRODUCER: usize = 5;

/// The place of an incoming batch in its producer's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batch is new and in order: append it.
    Append,
    /// The batch was stored already, at these offsets: acknowledge it again, append nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// A batch that breaks its producer's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("producer {producer_id} sent sequence {found}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
}

/// A stored batch of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// The latest batches, oldest first, at most [`BATCHES_PER_PRODUCER`].
    batches: VecDeque<StoredBatch>,
}

/// The idempotent producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
}

/// Returns the sequence number of a batch's last record. Sequences wrap from i32::MAX to
/// 0, as Kafka's do.
fn last_sequence(header: &BatchHeader) -> i32 {
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

impl ProducerStateTable {
    pub fn new() -> ProducerStateTable {
        ProducerStateTable::default()
    }

    /// Checks an incoming batch against its producer's state. Batches without a producer
    /// id are always appended.
    ///
    /// The rules are Kafka's. An older epoch is fenced. A newer epoch must start at
    /// sequence 0, unless the producer is unknown here. Within an epoch, a batch equal to
    /// one of the last five is a duplicate, and any other batch must follow the last one.
    /// A producer unknown to this partition, for example after retention removed all of
    /// its batches, may start at any sequence.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(SequenceCheck::Append);
        };

        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence != 0 {
                return Err(SequenceError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    found: header.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }

        let last = last_sequence(header);
        let duplicate = entry
            .batches
            .iter()
            .find(|batch| batch.first_sequence == header.base_sequence && batch.last_sequence == last);
        if let Some(batch) = duplicate {
            return Ok(SequenceCheck::Duplicate {
                base_offset: batch.base_offset,
                last_offset: batch.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |batch| next_sequence(batch.last_sequence));
        if header.base_sequence != expected {
            return Err(SequenceError::OutOfOrderSequence {
                producer_id: header.producer_id,
                expected,
                found: header.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a stored batch; `header` carries the offsets the log gave it.
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(StoredBatch {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
    }

    /// Returns the number of producers known to this partition.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: records,
        }
    }

    fn table_with(batches: &[BatchHeader]) -> ProducerStateTable {
        let mut table = ProducerStateTable::new();
        for batch in batches {
            table.record(batch);
        }
        table
    }

    #[test]
    fn first_batch_of_unknown_producer_appends() {
        let table = ProducerStateTable::new();
        assert_eq!(table.check(&header(7, 0, 0, 3, 0)), Ok(SequenceCheck::Append));
        assert_eq!(table.check(&header(7, 0, 42, 3, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn next_sequence_appends() {
        let table = table_with(&[header(7, 0, 0, 3, 10)]);
        assert_eq!(table.check(&header(7, 0, 3, 2, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn retried_batch_is_duplicate() {
        let table = table_with(&[header(7, 0, 0, 3, 10), header(7, 0, 3, 2, 13)]);
        let check = table.check(&header(7, 0, 0, 3, 0));
        assert_eq!(
            check,
            Ok(SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            })
        );
    }

    #[test]
    fn duplicate_window_is_five_batches() {
        let batches: Vec<_> = (0..6).map(|n| header(7, 0, n, 1, 100 + i64::from(n))).collect();
        let table = table_with(&batches);
        assert!(matches!(table.check(&batches[1]), Ok(SequenceCheck::Duplicate { .. })));
        assert!(matches!(
            table.check(&batches[0]),
            Err(SequenceError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn sequence_gap_is_rejected() {
        let table = table_with(&[header(7, 0, 0, 3, 10)]);
        let error = table.check(&header(7, 0, 5, 1, 0));
        assert_eq!(
            error,
            Err(SequenceError::OutOfOrderSequence {
                producer_id: 7,
                expected: 3,
                found: 5
            })
        );
    }

    #[test]
    fn older_epoch_is_fenced() {
        let table = table_with(&[header(7, 2, 0, 1, 10)]);
        let error = table.check(&header(7, 1, 1, 1, 0));
        assert_eq!(
            error,
            Err(SequenceError::InvalidProducerEpoch {
                producer_id: 7,
                epoch: 1,
                current: 2
            })
        );
    }

    #[test]
    fn newer_epoch_starts_at_zero() {
        let table = table_with(&[header(7, 0, 0, 5, 10)]);
        assert_eq!(table.check(&header(7, 1, 0, 1, 0)), Ok(SequenceCheck::Append));
        assert!(matches!(
            table.check(&header(7, 1, 5, 1, 0)),
            Err(SequenceError::OutOfOrderSequence { expected: 0, .. })
        ));
    }

    #[test]
    fn newer_epoch_resets_state() {
        let table = table_with(&[header(7, 0, 0, 5, 10), header(7, 1, 0, 1, 15)]);
        assert_eq!(table.check(&header(7, 1, 1, 1, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let table = table_with(&[header(7, 0, i32::MAX - 1, 2, 10)]);
        assert_eq!(table.check(&header(7, 0, 0, 1, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn batches_without_producer_append() {
        let table = table_with(&[header(7, 0, 0, 1, 10)]);
        assert_eq!(table.check(&header(-1, -1, -1, 1, 0)), Ok(SequenceCheck::Append));
    }
}
