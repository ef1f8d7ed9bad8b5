//! Operations paired from a history's events, and the indexes over their observations that
//! the checks query.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::anomaly::Observation;
use crate::history::{Action, EventKind, History, Key, Offset, Process, Value};

/// An invoke paired with the completion of the same process that follows it.
pub(super) struct Operation {
    pub process: Process,
    /// Index of the invoke event, or `None` for a completion that no invoke preceded.
    pub invoke: Option<usize>,
    /// Index of the completion event, or `None` when the operation never completed.
    pub completion: Option<usize>,
    /// Ok, Fail or Info. An operation that never completed is Info.
    pub outcome: EventKind,
}

impl Operation {
    /// Returns the index of the event that carries the operation's results: the completion,
    /// or the invoke when there is none.
    pub fn event(&self) -> usize {
        match (self.completion, self.invoke) {
            (Some(completion), _) => completion,
            (None, Some(invoke)) => invoke,
            (None, None) => unreachable!("an operation has an invoke or a completion"),
        }
    }
}

/// The origin of an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// A send acknowledged at that offset.
    Ack,
    /// A record returned by a poll.
    Poll,
}

/// An observation, with the operation that made it.
pub(super) struct Sighting {
    pub observation: Observation,
    /// Index into `Index::operations`.
    pub operation: usize,
    pub source: Source,
}

/// Operations, observations and lookups built in one pass over a history.
pub(super) struct Index {
    /// Operations in the order of their first event, so each process's operations are in the
    /// order the process ran them.
    pub operations: Vec<Operation>,
    /// Acknowledgements and polled records of Ok and Info operations, in the order of
    /// `operations` and then of the actions and records inside each operation.
    pub sightings: Vec<Sighting>,
    /// For each value, the operation that sends it.
    /// NOTE: when two operations send the same value, which breaks the model, the first one
    /// wins and no anomaly reports the reuse.
    pub writers: HashMap<Value, usize>,
    /// Offsets known to exist in each key: acknowledged offsets and polled offsets.
    pub known_offsets: HashMap<Key, BTreeSet<Offset>>,
    /// Values that some poll returned.
    pub read_values: HashSet<Value>,
    /// For each key, the sighting of the poll that returned the highest offset.
    pub highest_reads: HashMap<Key, usize>,
    /// Sends of Info operations, or of Ok operations without an offset, whose outcome is
    /// unknown.
    pub unknown_sends: usize,
    /// Sends of operations that completed with Fail.
    pub failed_sends: usize,
}

impl Index {
    pub fn build(history: &History) -> Index {
        let operations = pair_operations(history);
        let mut index = Index {
            operations: Vec::new(),
            sightings: Vec::new(),
            writers: HashMap::new(),
            known_offsets: HashMap::new(),
            read_values: HashSet::new(),
            highest_reads: HashMap::new(),
            unknown_sends: 0,
            failed_sends: 0,
        };
        for (operation_index, operation) in operations.iter().enumerate() {
            index.add_writers(history, operation, operation_index);
            index.add_results(history, operation, operation_index);
        }
        index.operations = operations;
        index
    }

    /// Records `operation` as the writer of the values that its invoke and completion send.
    fn add_writers(&mut self, history: &History, operation: &Operation, operation_index: usize) {
        let events = [operation.invoke, operation.completion];
        for event in events.into_iter().flatten() {
            for action in &history.events[event].actions {
                if let Action::Send { value, .. } = action {
                    self.writers.entry(*value).or_insert(operation_index);
                }
            }
        }
    }

    /// Adds the acknowledgements and polled records of `operation` and counts its sends.
    ///
    /// A completion repeats the actions of its invoke with their results filled in, so the
    /// results come from the completion, or from the invoke of an operation that never
    /// completed. Results of a failed operation are ignored because Fail means that nothing
    /// took effect.
    fn add_results(&mut self, history: &History, operation: &Operation, operation_index: usize) {
        let event = operation.event();
        for action in &history.events[event].actions {
            match action {
                Action::Send { .. } if operation.outcome == EventKind::Fail => self.failed_sends += 1,
                Action::Send {
                    key,
                    value,
                    offset: Some(offset),
                } => {
                    let observation = Observation {
                        key: *key,
                        offset: *offset,
                        value: *value,
                        process: operation.process,
                        event,
                    };
                    self.add_sighting(observation, operation_index, Source::Ack);
                }
                Action::Send { offset: None, .. } => self.unknown_sends += 1,
                Action::Poll { .. } if operation.outcome == EventKind::Fail => {}
                Action::Poll { records } => {
                    for record in records {
                        let observation = Observation {
                            key: record.key,
                            offset: record.offset,
                            value: record.value,
                            process: operation.process,
                            event,
                        };
                        self.add_sighting(observation, operation_index, Source::Poll);
                    }
                }
            }
        }
    }

    fn add_sighting(&mut self, observation: Observation, operation: usize, source: Source) {
        let sighting_index = self.sightings.len();
        self.known_offsets
            .entry(observation.key)
            .or_default()
            .insert(observation.offset);
        if source == Source::Poll {
            self.read_values.insert(observation.value);
            match self.highest_reads.entry(observation.key) {
                Entry::Vacant(entry) => {
                    entry.insert(sighting_index);
                }
                Entry::Occupied(mut entry) => {
                    if self.sightings[*entry.get()].observation.offset < observation.offset {
                        entry.insert(sighting_index);
                    }
                }
            }
        }
        self.sightings.push(Sighting {
            observation,
            operation,
            source,
        });
    }
}

/// Pairs each invoke with the next completion of its process.
///
/// An invoke followed by another invoke of the same process, or by the end of the history,
/// never completed and counts as Info. A completion without a pending invoke becomes an
/// operation of its own.
fn pair_operations(history: &History) -> Vec<Operation> {
    let mut operations: Vec<Operation> = Vec::new();
    let mut pending: HashMap<Process, usize> = HashMap::new();
    for (event_index, event) in history.events.iter().enumerate() {
        if event.kind == EventKind::Invoke {
            pending.insert(event.process, operations.len());
            operations.push(Operation {
                process: event.process,
                invoke: Some(event_index),
                completion: None,
                outcome: EventKind::Info,
            });
            continue;
        }
        match pending.remove(&event.process) {
            Some(operation_index) => {
                let operation = &mut operations[operation_index];
                operation.completion = Some(event_index);
                operation.outcome = event.kind;
            }
            None => operations.push(Operation {
                process: event.process,
                invoke: None,
                completion: Some(event_index),
                outcome: event.kind,
            }),
        }
    }
    operations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_matches_processes() {
        let mut history = History::new();
        history.push(1, EventKind::Invoke, 0, vec![]);
        history.push(2, EventKind::Invoke, 1, vec![]);
        history.push(2, EventKind::Fail, 2, vec![]);
        history.push(1, EventKind::Ok, 3, vec![]);

        let operations = pair_operations(&history);

        assert_eq!(operations.len(), 2);
        assert_eq!(operations[0].process, 1);
        assert_eq!(operations[0].invoke, Some(0));
        assert_eq!(operations[0].completion, Some(3));
        assert_eq!(operations[0].outcome, EventKind::Ok);
        assert_eq!(operations[1].process, 2);
        assert_eq!(operations[1].completion, Some(2));
        assert_eq!(operations[1].outcome, EventKind::Fail);
    }

    #[test]
    fn pairing_treats_unfinished_invoke_as_info() {
        let mut history = History::new();
        history.push(1, EventKind::Invoke, 0, vec![]);
        history.push(1, EventKind::Invoke, 1, vec![]);
        history.push(1, EventKind::Ok, 2, vec![]);
        history.push(1, EventKind::Invoke, 3, vec![]);

        let operations = pair_operations(&history);

        assert_eq!(operations.len(), 3);
        assert_eq!(operations[0].completion, None);
        assert_eq!(operations[0].outcome, EventKind::Info);
        assert_eq!(operations[0].event(), 0);
        assert_eq!(operations[1].completion, Some(2));
        assert_eq!(operations[1].outcome, EventKind::Ok);
        assert_eq!(operations[2].completion, None);
        assert_eq!(operations[2].outcome, EventKind::Info);
    }

    #[test]
    fn pairing_keeps_completion_without_invoke() {
        let mut history = History::new();
        history.push(4, EventKind::Info, 0, vec![]);

        let operations = pair_operations(&history);

        assert_eq!(operations.len(), 1);
        assert_eq!(operations[0].invoke, None);
        assert_eq!(operations[0].completion, Some(0));
        assert_eq!(operations[0].outcome, EventKind::Info);
    }
}
