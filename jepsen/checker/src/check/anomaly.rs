//! The anomalies the checker reports, each with the observations that explain it.

use std::fmt;

use crate::history::{Key, Offset, Process, Value};

/// A record at one position of a partition, as one event of the history observed it: a send
/// acknowledged at that offset, or a poll that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Observation {
    pub key: Key,
    pub offset: Offset,
    pub value: Value,
    /// The process whose operation observed the record.
    pub process: Process,
    /// Index in `History::events` of the event that carries the observation: the completion
    /// of the operation, or its invoke when it never completed.
    pub event: usize,
}

impl fmt::Display for Observation {
    /// Writes `key:value@offset (pN, event I)`, the record notation of a printed history.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}@{} (p{}, event {})",
            self.key, self.value, self.offset, self.process, self.event
        )
    }
}

/// Whether an ordering anomaly happened inside one operation or between two operations of the
/// same process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Both observations belong to one operation.
    Internal,
    /// The observations belong to two operations of the same process, the second one later.
    External,
}

/// A violation of the guarantees of a Kafka partition that the history shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// The broker acknowledged a send at some offset of a partition, polls later returned a
    /// higher offset of that partition, and yet no poll ever returned the value. A consumer
    /// that reads past an acknowledged record must have read the record, so the record was
    /// lost after its acknowledgement.
    LostWrite {
        /// The acknowledgement of the lost value.
        ack: Observation,
        /// The poll that returned the highest offset of the partition.
        highest_read: Observation,
    },
    /// The broker acknowledged a send, but no poll of the whole history returned its value.
    /// The workload ends with a final read of every partition after the faults heal, so each
    /// acknowledged value must have been read by then. It is reported even when a lost-write of
    /// the same value is reported too.
    Unseen {
        /// The acknowledgement of the value that no poll returned.
        ack: Observation,
    },
    /// One value appears at two or more positions (key and offset), counting both
    /// acknowledgements and polls. Each value is sent once, so it should have one position.
    Duplicate {
        value: Value,
        /// One observation for each distinct position, ordered by key and offset.
        observations: Vec<Observation>,
    },
    /// One position (key and offset) contains two or more different values, counting both
    /// acknowledgements and polls. A log never rewrites an offset, so all observers of a
    /// position must see the same value.
    InconsistentOffsets {
        key: Key,
        offset: Offset,
        /// One observation for each distinct value, ordered by value.
        observations: Vec<Observation>,
    },
    /// A process got acknowledgements for two sends to one partition, and the later send's
    /// offset is not higher than the earlier one's. A producer's sends to a partition are
    /// appended in the order it makes them, so their offsets must increase.
    NonmonotonicSend {
        scope: Scope,
        /// The earlier acknowledgement.
        previous: Observation,
        /// The later acknowledgement, whose offset is not higher.
        next: Observation,
    },
    /// A process polled two records of one partition, and the later record's offset is not
    /// higher than the earlier one's. A consumer reads a partition forward from its position,
    /// so the offsets it reads must increase.
    NonmonotonicPoll {
        scope: Scope,
        /// The earlier record.
        previous: Observation,
        /// The later record, whose offset is not higher.
        next: Observation,
    },
    /// A process polled two consecutive records of one partition with offsets `o1 < o2`, and
    /// some offset strictly between them is known to exist, because a send was acknowledged
    /// there or a poll returned it. A consumer reads every record of a partition in order, so
    /// it skipped a record.
    PollSkip {
        scope: Scope,
        /// The earlier record.
        previous: Observation,
        /// The next record the process read from that partition.
        next: Observation,
        /// The lowest known offset between the two records.
        first_skipped: Offset,
        /// The highest known offset between the two records, equal to `first_skipped` when
        /// only one offset is known there.
        last_skipped: Offset,
    },
    /// A poll returned a value whose send belongs to an operation that completed with Fail,
    /// which promises that none of its sends was stored.
    AbortedRead {
        /// The poll's record.
        read: Observation,
        /// The process whose failed operation sent the value.
        send_process: Process,
        /// Index in `History::events` of the failed completion.
        send_event: usize,
    },
    /// An operation polled a value that it sends itself. An operation is atomic, so its reads
    /// must not see its own writes.
    OwnUncommittedRead {
        /// The poll's record, observed by the operation that sends the value.
        read: Observation,
    },
    /// A poll returned a value that no send of the history wrote, so the record is corrupt or
    /// invented.
    UnknownValue {
        /// The poll's record.
        read: Observation,
    },
}

/// The kind of an [`Anomaly`], with a stable name that test runners print and compare.
///
/// Ordering anomalies have two classes each: the `int-` class for two observations inside one
/// operation, and the unprefixed class for two operations of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnomalyClass {
    LostWrite,
    Unseen,
    Duplicate,
    InconsistentOffsets,
    IntNonmonotonicSend,
    NonmonotonicSend,
    IntNonmonotonicPoll,
    NonmonotonicPoll,
    IntPollSkip,
    PollSkip,
    AbortedRead,
    OwnUncommittedRead,
    UnknownValue,
}

impl AnomalyClass {
    /// Every class, in the order of the declaration.
    pub const ALL: [AnomalyClass; 13] = [
        AnomalyClass::LostWrite,
        AnomalyClass::Unseen,
        AnomalyClass::Duplicate,
        AnomalyClass::InconsistentOffsets,
        AnomalyClass::IntNonmonotonicSend,
        AnomalyClass::NonmonotonicSend,
        AnomalyClass::IntNonmonotonicPoll,
        AnomalyClass::NonmonotonicPoll,
        AnomalyClass::IntPollSkip,
        AnomalyClass::PollSkip,
        AnomalyClass::AbortedRead,
        AnomalyClass::OwnUncommittedRead,
        AnomalyClass::UnknownValue,
    ];

    /// Returns the kebab-case name, such as `lost-write`.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyClass::LostWrite => "lost-write",
            AnomalyClass::Unseen => "unseen",
            AnomalyClass::Duplicate => "duplicate",
            AnomalyClass::InconsistentOffsets => "inconsistent-offsets",
            AnomalyClass::IntNonmonotonicSend => "int-nonmonotonic-send",
            AnomalyClass::NonmonotonicSend => "nonmonotonic-send",
            AnomalyClass::IntNonmonotonicPoll => "int-nonmonotonic-poll",
            AnomalyClass::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyClass::IntPollSkip => "int-poll-skip",
            AnomalyClass::PollSkip => "poll-skip",
            AnomalyClass::AbortedRead => "aborted-read",
            AnomalyClass::OwnUncommittedRead => "own-uncommitted-read",
            AnomalyClass::UnknownValue => "unknown-value",
        }
    }

    /// Returns the class whose [`name`](AnomalyClass::name) is `name`, or `None` if no class
    /// has that name.
    pub fn from_name(name: &str) -> Option<AnomalyClass> {
        AnomalyClass::ALL.into_iter().find(|class| class.name() == name)
    }
}

impl fmt::Display for AnomalyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Anomaly {
    /// Returns the class of the anomaly, which for ordering anomalies depends on the scope.
    pub fn class(&self) -> AnomalyClass {
        match self {
            Anomaly::LostWrite { .. } => AnomalyClass::LostWrite,
            Anomaly::Unseen { .. } => AnomalyClass::Unseen,
            Anomaly::Duplicate { .. } => AnomalyClass::Duplicate,
            Anomaly::InconsistentOffsets { .. } => AnomalyClass::InconsistentOffsets,
            Anomaly::NonmonotonicSend {
                scope: Scope::Internal, ..
            } => AnomalyClass::IntNonmonotonicSend,
            Anomaly::NonmonotonicSend {
                scope: Scope::External, ..
            } => AnomalyClass::NonmonotonicSend,
            Anomaly::NonmonotonicPoll {
                scope: Scope::Internal, ..
            } => AnomalyClass::IntNonmonotonicPoll,
            Anomaly::NonmonotonicPoll {
                scope: Scope::External, ..
            } => AnomalyClass::NonmonotonicPoll,
            Anomaly::PollSkip {
                scope: Scope::Internal, ..
            } => AnomalyClass::IntPollSkip,
            Anomaly::PollSkip {
                scope: Scope::External, ..
            } => AnomalyClass::PollSkip,
            Anomaly::AbortedRead { .. } => AnomalyClass::AbortedRead,
            Anomaly::OwnUncommittedRead { .. } => AnomalyClass::OwnUncommittedRead,
            Anomaly::UnknownValue { .. } => AnomalyClass::UnknownValue,
        }
    }
}

impl fmt::Display for Anomaly {
    /// Writes one line that starts with the class name and names every observation involved.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.class())?;
        match self {
            Anomaly::LostWrite { ack, highest_read } => write!(
                f,
                "send {ack} was acknowledged but never read, although a poll read key {} up to {highest_read}",
                ack.key
            ),
            Anomaly::Unseen { ack } => write!(f, "send {ack} was acknowledged but no poll read value {}", ack.value),
            Anomaly::Duplicate { value, observations } => {
                write!(f, "value {value} was observed at {} positions:", observations.len())?;
                write_observations(f, observations)
            }
            Anomaly::InconsistentOffsets {
                key,
                offset,
                observations,
            } => {
                write!(
                    f,
                    "key {key} offset {offset} was observed with {} values:",
                    observations.len()
                )?;
                write_observations(f, observations)
            }
            Anomaly::NonmonotonicSend { previous, next, .. } => write!(
                f,
                "p{} got the acknowledgement {next} after {previous}, so the offset did not increase",
                next.process
            ),
            Anomaly::NonmonotonicPoll { previous, next, .. } => write!(
                f,
                "p{} read {next} after {previous}, so the offset did not increase",
                next.process
            ),
            Anomaly::PollSkip {
                previous,
                next,
                first_skipped,
                last_skipped,
                ..
            } => {
                write!(f, "p{} read {next} right after {previous}, ", next.process)?;
                if first_skipped == last_skipped {
                    write!(f, "skipping the known offset {first_skipped}")
                } else {
                    write!(f, "skipping the known offsets from {first_skipped} to {last_skipped}")
                }
            }
            Anomaly::AbortedRead {
                read,
                send_process,
                send_event,
            } => write!(
                f,
                "poll read {read}, but the send of p{send_process} failed (event {send_event})"
            ),
            Anomaly::OwnUncommittedRead { read } => {
                write!(f, "poll read {read}, a value that the same operation sends")
            }
            Anomaly::UnknownValue { read } => write!(f, "poll read {read}, a value that no send wrote"),
        }
    }
}

/// Writes each observation after a space, separated by commas.
fn write_observations(f: &mut fmt::Formatter<'_>, observations: &[Observation]) -> fmt::Result {
    for (index, observation) in observations.iter().enumerate() {
        let separator = if index == 0 { " " } else { ", " };
        write!(f, "{separator}{observation}")?;
    }
    Ok(())
}
