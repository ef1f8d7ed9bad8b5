//! The history of what clients observed: operations, each an invocation followed by one
//! completion from the same process.
//!
//! The model is the one of Jepsen's Kafka workload. A key is a partition of the workload's
//! topic and every value is written once, so a value names the send that wrote it. A process
//! runs one operation at a time. A client that loses track of its state, such as a consumer
//! whose connection broke, continues as a new process.

use std::fmt;

/// A partition of the workload's topic.
pub type Key = i32;

/// A value written by exactly one send of the workload.
pub type Value = u64;

/// A position in a partition's log.
pub type Offset = i64;

/// A client thread of the workload that runs one operation at a time.
pub type Process = u64;

/// The kind of an event: the start of an operation or one of its three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The operation started. Its actions list the sends and polls it requested.
    Invoke,
    /// The operation took effect; every send has its offset and every poll its records.
    Ok,
    /// The operation did not take effect: none of its sends was stored.
    Fail,
    /// The outcome is unknown: a send may have been stored or not. Sends that were
    /// acknowledged before the outcome became unknown carry their offsets.
    Info,
}

/// One step of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Appends `value` to partition `key`. In a completion, `offset` is where the broker
    /// acknowledged it, or `None` when it was not acknowledged.
    Send {
        key: Key,
        value: Value,
        offset: Option<Offset>,
    },
    /// Reads from the process's current positions. In a completion, `records` lists what
    /// was read, in the order the client returned it.
    Poll { records: Vec<Record> },
}

/// A record returned by a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Key,
    pub offset: Offset,
    pub value: Value,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub process: Process,
    pub kind: EventKind,
    /// Simulated or real nanoseconds since the run started, for reading the history.
    pub time_ns: u64,
    pub actions: Vec<Action>,
}

/// The events of a run in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Appends an event.
    pub fn push(&mut self, process: Process, kind: EventKind, time_ns: u64, actions: Vec<Action>) {
        self.events.push(Event {
            process,
            kind,
            time_ns,
            actions,
        });
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send {
                key,
                value,
                offset: Some(offset),
            } => write!(f, "send {key}:{value}@{offset}"),
            Action::Send {
                key,
                value,
                offset: None,
            } => write!(f, "send {key}:{value}"),
            Action::Poll { records } => {
                write!(f, "poll [")?;
                for (index, record) in records.iter().enumerate() {
                    if index > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{}:{}@{}", record.key, record.value, record.offset)?;
                }
                write!(f, "]")
            }
        }
    }
}

impl fmt::Display for Event {
    /// Writes one line: time, process, kind and actions, as a replayed seed prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EventKind::Invoke => "invoke",
            EventKind::Ok => "ok",
            EventKind::Fail => "fail",
            EventKind::Info => "info",
        };
        write!(f, "{:>12.6}s p{} {kind}", self.time_ns as f64 / 1e9, self.process)?;
        for action in &self.actions {
            write!(f, " {action}")?;
        }
        Ok(())
    }
}
