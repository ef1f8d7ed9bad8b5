//! The checker that finds the anomalies of a [`History`].
//!
//! It pairs each invoke with its process's next completion, collects every observation of a
//! record (a send acknowledged at an offset, or a record that a poll returned), and then runs
//! each check over indexes of those observations. The cost is O(n log n) in the number of
//! events and records.

mod anomaly;
mod index;
mod report;

use std::collections::HashMap;
use std::ops::Bound;

pub use anomaly::{Anomaly, AnomalyClass, Observation, Scope};
pub use report::Report;

use crate::history::{EventKind, History, Key, Offset, Process};
use index::{Index, Sighting, Source};

/// Checks `history` and returns every anomaly found, with counts that summarize the run.
///
/// Anomalies are grouped by check: lost and unseen writes first, then duplicates and
/// inconsistent offsets, then ordering anomalies, then reads of failed, own or unknown sends.
pub fn check(history: &History) -> Report {
    let index = Index::build(history);
    let mut anomalies = Vec::new();
    check_acknowledged(&index, &mut anomalies);
    check_positions(&index, &mut anomalies);
    check_process_order(&index, &mut anomalies);
    check_read_sources(&index, &mut anomalies);

    let acknowledged_sends = index.sightings.iter().filter(|s| s.source == Source::Ack).count();
    Report {
        anomalies,
        operations: index.operations.len(),
        acknowledged_sends,
        unknown_sends: index.unknown_sends,
        failed_sends: index.failed_sends,
        values_read: index.read_values.len(),
    }
}

/// Finds lost-write and unseen anomalies: acknowledged values that no poll returned.
fn check_acknowledged(index: &Index, anomalies: &mut Vec<Anomaly>) {
    let acks = index.sightings.iter().filter(|s| s.source == Source::Ack);
    for ack in acks {
        let ack = ack.observation;
        if index.read_values.contains(&ack.value) {
            continue;
        }
        if let Some(&highest) = index.highest_reads.get(&ack.key) {
            let highest_read = index.sightings[highest].observation;
            if highest_read.offset > ack.offset {
                anomalies.push(Anomaly::LostWrite { ack, highest_read });
            }
        }
        anomalies.push(Anomaly::Unseen { ack });
    }
}

/// Finds inconsistent offsets (one position, several values) and duplicates (one value,
/// several positions) by sorting the observations.
fn check_positions(index: &Index, anomalies: &mut Vec<Anomaly>) {
    let mut observations: Vec<Observation> = index.sightings.iter().map(|s| s.observation).collect();

    observations.sort_by_key(|o| (o.key, o.offset, o.value));
    for group in observations.chunk_by(|a, b| (a.key, a.offset) == (b.key, b.offset)) {
        let distinct = first_of_each(group, |o| o.value);
        if distinct.len() > 1 {
            anomalies.push(Anomaly::InconsistentOffsets {
                key: group[0].key,
                offset: group[0].offset,
                observations: distinct,
            });
        }
    }

    observations.sort_by_key(|o| (o.value, o.key, o.offset));
    for group in observations.chunk_by(|a, b| a.value == b.value) {
        let distinct = first_of_each(group, |o| (o.key, o.offset));
        if distinct.len() > 1 {
            anomalies.push(Anomaly::Duplicate {
                value: group[0].value,
                observations: distinct,
            });
        }
    }
}

/// Returns the first observation of each run of equal `field` values in `sorted`.
fn first_of_each<T: PartialEq>(sorted: &[Observation], field: impl Fn(&Observation) -> T) -> Vec<Observation> {
    let mut distinct: Vec<Observation> = Vec::new();
    for observation in sorted {
        if distinct.last().map(&field) != Some(field(observation)) {
            distinct.push(*observation);
        }
    }
    distinct
}

/// Finds nonmonotonic sends, nonmonotonic polls and poll skips by walking each process's
/// observations of each key in the order the process made them.
fn check_process_order(index: &Index, anomalies: &mut Vec<Anomaly>) {
    let mut last_acks: HashMap<(Process, Key), &Sighting> = HashMap::new();
    let mut last_reads: HashMap<(Process, Key), &Sighting> = HashMap::new();
    for sighting in &index.sightings {
        let next = sighting.observation;
        let process_key = (next.process, next.key);
        match sighting.source {
            Source::Ack => {
                let Some(previous) = last_acks.insert(process_key, sighting) else {
                    continue;
                };
                if next.offset <= previous.observation.offset {
                    anomalies.push(Anomaly::NonmonotonicSend {
                        scope: scope_of(previous, sighting),
                        previous: previous.observation,
                        next,
                    });
                }
            }
            Source::Poll => {
                let Some(previous) = last_reads.insert(process_key, sighting) else {
                    continue;
                };
                let scope = scope_of(previous, sighting);
                if next.offset <= previous.observation.offset {
                    anomalies.push(Anomaly::NonmonotonicPoll {
                        scope,
                        previous: previous.observation,
                        next,
                    });
                } else if let Some((first_skipped, last_skipped)) =
                    known_between(index, next.key, previous.observation.offset, next.offset)
                {
                    anomalies.push(Anomaly::PollSkip {
                        scope,
                        previous: previous.observation,
                        next,
                        first_skipped,
                        last_skipped,
                    });
                }
            }
        }
    }
}

fn scope_of(previous: &Sighting, next: &Sighting) -> Scope {
    if previous.operation == next.operation {
        Scope::Internal
    } else {
        Scope::External
    }
}

/// Returns the lowest and highest offsets of `key` known to exist strictly between `low` and
/// `high`, or `None` if there is none. Requires `low < high`.
fn known_between(index: &Index, key: Key, low: Offset, high: Offset) -> Option<(Offset, Offset)> {
    let offsets = index.known_offsets.get(&key)?;
    let mut between = offsets.range((Bound::Excluded(low), Bound::Excluded(high)));
    let first = *between.next()?;
    let last = between.next_back().copied().unwrap_or(first);
    Some((first, last))
}

/// Finds aborted reads, own uncommitted reads and unknown values by looking up the send that
/// wrote each polled value.
fn check_read_sources(index: &Index, anomalies: &mut Vec<Anomaly>) {
    let reads = index.sightings.iter().filter(|s| s.source == Source::Poll);
    for sighting in reads {
        let read = sighting.observation;
        let Some(&writer) = index.writers.get(&read.value) else {
            anomalies.push(Anomaly::UnknownValue { read });
            continue;
        };
        if writer == sighting.operation {
            anomalies.push(Anomaly::OwnUncommittedRead { read });
            continue;
        }
        let writer = &index.operations[writer];
        if writer.outcome == EventKind::Fail {
            anomalies.push(Anomaly::AbortedRead {
                read,
                send_process: writer.process,
                send_event: writer.event(),
            });
        }
    }
}
