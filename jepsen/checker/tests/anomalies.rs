//! One small history per anomaly class, each reported alone, and histories that hold none.

use std::collections::BTreeSet;

use franz_checker::{
    check, Action, Anomaly, AnomalyClass, EventKind, History, Key, Observation, Offset, Process, Record, Report, Scope,
    Value,
};

/// Builds a history one operation at a time. Unless a test calls `invoke` and `complete` apart,
/// each completion directly follows its invoke.
struct Builder {
    history: History,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            history: History::new(),
        }
    }

    /// Adds an invoke, with the requests of `actions`, and a completion of `kind` with
    /// `actions` as they are. Returns the completion's index.
    fn op(&mut self, process: Process, kind: EventKind, actions: Vec<Action>) -> usize {
        self.invoke(process, &actions);
        self.complete(process, kind, actions)
    }

    fn invoke(&mut self, process: Process, actions: &[Action]) -> usize {
        let requests = actions.iter().map(request).collect();
        self.push(process, EventKind::Invoke, requests)
    }

    fn complete(&mut self, process: Process, kind: EventKind, actions: Vec<Action>) -> usize {
        self.push(process, kind, actions)
    }

    fn push(&mut self, process: Process, kind: EventKind, actions: Vec<Action>) -> usize {
        let index = self.history.events.len();
        self.history.push(process, kind, index as u64 * 1_000, actions);
        index
    }

    fn check(&self) -> Report {
        check(&self.history)
    }
}

/// Returns the action as an invoke states it: sends without offsets, polls without records.
fn request(action: &Action) -> Action {
    match action {
        Action::Send { key, value, .. } => Action::Send {
            key: *key,
            value: *value,
            offset: None,
        },
        Action::Poll { .. } => Action::Poll { records: vec![] },
    }
}

fn send(key: Key, value: Value, offset: Offset) -> Action {
    Action::Send {
        key,
        value,
        offset: Some(offset),
    }
}

fn unacknowledged(key: Key, value: Value) -> Action {
    Action::Send {
        key,
        value,
        offset: None,
    }
}

/// Returns a completed poll of `(key, offset, value)` records.
fn poll(records: &[(Key, Offset, Value)]) -> Action {
    let records = records
        .iter()
        .map(|&(key, offset, value)| Record { key, offset, value })
        .collect();
    Action::Poll { records }
}

fn observation(key: Key, offset: Offset, value: Value, process: Process, event: usize) -> Observation {
    Observation {
        key,
        offset,
        value,
        process,
        event,
    }
}

/// Asserts that the report lists exactly one anomaly, of `class`, and returns it.
fn single(report: &Report, class: AnomalyClass) -> Anomaly {
    assert_eq!(report.classes(), BTreeSet::from([class]), "report: {report}");
    assert_eq!(report.anomalies.len(), 1, "report: {report}");
    assert!(!report.is_valid());
    report.anomalies[0].clone()
}

#[test]
fn clean_history_reports_nothing() {
    let mut b = Builder::new();
    // Two producers run concurrently, so their invokes and completions interleave.
    b.invoke(1, &[unacknowledged(0, 1), unacknowledged(0, 2)]);
    b.invoke(2, &[unacknowledged(1, 3)]);
    b.complete(2, EventKind::Ok, vec![send(1, 3, 0)]);
    b.complete(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 1)]);
    // The outcome of value 4 is unknown, but a poll returns it later.
    b.op(3, EventKind::Info, vec![unacknowledged(0, 4)]);
    // Value 5 failed and no poll returns it.
    b.op(4, EventKind::Fail, vec![unacknowledged(1, 5)]);
    b.op(2, EventKind::Ok, vec![send(1, 6, 1)]);
    // A consumer reads both keys in order over several polls.
    b.op(5, EventKind::Ok, vec![poll(&[(0, 0, 1), (1, 0, 3)])]);
    b.op(5, EventKind::Ok, vec![poll(&[(0, 1, 2), (0, 2, 4), (1, 1, 6)])]);
    b.op(5, EventKind::Ok, vec![poll(&[])]);
    // A second consumer reads everything in one poll, as the final read does.
    b.op(
        6,
        EventKind::Ok,
        vec![poll(&[(0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 3), (1, 1, 6)])],
    );
    // A consumer that never completed read nothing and breaks nothing.
    b.invoke(7, &[poll(&[])]);

    let report = b.check();

    assert!(report.is_valid(), "report: {report}");
    assert!(report.anomalies.is_empty());
    assert_eq!(report.operations, 10);
    assert_eq!(report.acknowledged_sends, 4);
    assert_eq!(report.unknown_sends, 1);
    assert_eq!(report.failed_sends, 1);
    assert_eq!(report.values_read, 5);
    assert!(report.to_string().starts_with("valid: "), "report: {report}");
}

#[test]
fn unfinished_send_counts_as_unknown() {
    let mut b = Builder::new();
    b.invoke(1, &[unacknowledged(0, 1)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1)])]);

    let report = b.check();

    assert!(report.is_valid(), "report: {report}");
    assert_eq!(report.operations, 2);
    assert_eq!(report.unknown_sends, 1);
    assert_eq!(report.values_read, 1);
}

#[test]
fn lost_write_reported() {
    let mut b = Builder::new();
    let lost = b.op(1, EventKind::Ok, vec![send(0, 1, 0)]);
    b.op(1, EventKind::Ok, vec![send(0, 2, 1)]);
    let read = b.op(2, EventKind::Ok, vec![poll(&[(0, 1, 2)])]);

    let report = b.check();

    assert_eq!(
        report.classes(),
        BTreeSet::from([AnomalyClass::LostWrite, AnomalyClass::Unseen]),
        "report: {report}"
    );
    assert_eq!(report.anomalies.len(), 2);
    let expected_ack = observation(0, 0, 1, 1, lost);
    assert_eq!(
        report.anomalies[0],
        Anomaly::LostWrite {
            ack: expected_ack,
            highest_read: observation(0, 1, 2, 2, read),
        }
    );
    assert_eq!(report.anomalies[1], Anomaly::Unseen { ack: expected_ack });
}

#[test]
fn unseen_reported() {
    let mut b = Builder::new();
    let ack = b.op(1, EventKind::Ok, vec![send(0, 1, 0)]);
    b.op(1, EventKind::Ok, vec![send(1, 2, 0)]);
    b.op(2, EventKind::Ok, vec![poll(&[(1, 0, 2)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::Unseen);
    assert_eq!(
        anomaly,
        Anomaly::Unseen {
            ack: observation(0, 0, 1, 1, ack),
        }
    );
}

#[test]
fn duplicate_reported() {
    let mut b = Builder::new();
    let ack = b.op(1, EventKind::Ok, vec![send(0, 1, 0)]);
    let read = b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1), (0, 1, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::Duplicate);
    assert_eq!(
        anomaly,
        Anomaly::Duplicate {
            value: 1,
            observations: vec![observation(0, 0, 1, 1, ack), observation(0, 1, 1, 2, read)],
        }
    );
}

#[test]
fn inconsistent_offsets_reported() {
    let mut b = Builder::new();
    let first = b.op(1, EventKind::Ok, vec![send(0, 1, 0)]);
    let second = b.op(2, EventKind::Ok, vec![send(0, 2, 0)]);
    b.op(3, EventKind::Ok, vec![poll(&[(0, 0, 1)])]);
    b.op(4, EventKind::Ok, vec![poll(&[(0, 0, 2)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::InconsistentOffsets);
    assert_eq!(
        anomaly,
        Anomaly::InconsistentOffsets {
            key: 0,
            offset: 0,
            observations: vec![observation(0, 0, 1, 1, first), observation(0, 0, 2, 2, second)],
        }
    );
}

#[test]
fn int_nonmonotonic_send_reported() {
    let mut b = Builder::new();
    let ack = b.op(1, EventKind::Ok, vec![send(0, 1, 1), send(0, 2, 0)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 2), (0, 1, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::IntNonmonotonicSend);
    assert_eq!(
        anomaly,
        Anomaly::NonmonotonicSend {
            scope: Scope::Internal,
            previous: observation(0, 1, 1, 1, ack),
            next: observation(0, 0, 2, 1, ack),
        }
    );
}

#[test]
fn nonmonotonic_send_counts_info_acks() {
    let mut b = Builder::new();
    let first = b.op(1, EventKind::Ok, vec![send(0, 1, 1)]);
    let second = b.op(1, EventKind::Info, vec![send(0, 2, 1)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 1, 1)])]);
    b.op(3, EventKind::Ok, vec![poll(&[(0, 1, 2)])]);

    let report = b.check();

    // Both values at offset 1 are also inconsistent offsets, which this test ignores.
    assert_eq!(report.count(AnomalyClass::NonmonotonicSend), 1, "report: {report}");
    assert_eq!(report.count(AnomalyClass::IntNonmonotonicSend), 0, "report: {report}");
    let anomaly = report
        .anomalies
        .iter()
        .find(|anomaly| anomaly.class() == AnomalyClass::NonmonotonicSend);
    assert_eq!(
        anomaly,
        Some(&Anomaly::NonmonotonicSend {
            scope: Scope::External,
            previous: observation(0, 1, 1, 1, first),
            next: observation(0, 1, 2, 1, second),
        })
    );
}

#[test]
fn nonmonotonic_send_reported() {
    let mut b = Builder::new();
    let first = b.op(1, EventKind::Ok, vec![send(0, 1, 1)]);
    let second = b.op(1, EventKind::Ok, vec![send(0, 2, 0)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 2), (0, 1, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::NonmonotonicSend);
    assert_eq!(
        anomaly,
        Anomaly::NonmonotonicSend {
            scope: Scope::External,
            previous: observation(0, 1, 1, 1, first),
            next: observation(0, 0, 2, 1, second),
        }
    );
}

#[test]
fn int_nonmonotonic_poll_reported() {
    let mut b = Builder::new();
    b.op(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 1)]);
    let read = b.op(2, EventKind::Ok, vec![poll(&[(0, 1, 2), (0, 0, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::IntNonmonotonicPoll);
    assert_eq!(
        anomaly,
        Anomaly::NonmonotonicPoll {
            scope: Scope::Internal,
            previous: observation(0, 1, 2, 2, read),
            next: observation(0, 0, 1, 2, read),
        }
    );
}

#[test]
fn nonmonotonic_poll_reported() {
    let mut b = Builder::new();
    b.op(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 1)]);
    let first = b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1), (0, 1, 2)])]);
    let second = b.op(2, EventKind::Ok, vec![poll(&[(0, 1, 2)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::NonmonotonicPoll);
    assert_eq!(
        anomaly,
        Anomaly::NonmonotonicPoll {
            scope: Scope::External,
            previous: observation(0, 1, 2, 2, first),
            next: observation(0, 1, 2, 2, second),
        }
    );
}

#[test]
fn int_poll_skip_reported() {
    let mut b = Builder::new();
    b.op(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 1), send(0, 3, 2)]);
    let read = b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1), (0, 2, 3)])]);
    b.op(3, EventKind::Ok, vec![poll(&[(0, 1, 2)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::IntPollSkip);
    assert_eq!(
        anomaly,
        Anomaly::PollSkip {
            scope: Scope::Internal,
            previous: observation(0, 0, 1, 2, read),
            next: observation(0, 2, 3, 2, read),
            first_skipped: 1,
            last_skipped: 1,
        }
    );
}

#[test]
fn poll_skip_reported() {
    let mut b = Builder::new();
    // Offsets 1 and 3 are known from acknowledgements, offset 2 from another poll.
    b.op(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 1)]);
    b.op(
        1,
        EventKind::Info,
        vec![unacknowledged(0, 3), send(0, 4, 3), send(0, 5, 4)],
    );
    let first = b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1)])]);
    let second = b.op(2, EventKind::Ok, vec![poll(&[(0, 4, 5)])]);
    b.op(3, EventKind::Ok, vec![poll(&[(0, 1, 2), (0, 2, 3), (0, 3, 4)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::PollSkip);
    assert_eq!(
        anomaly,
        Anomaly::PollSkip {
            scope: Scope::External,
            previous: observation(0, 0, 1, 2, first),
            next: observation(0, 4, 5, 2, second),
            first_skipped: 1,
            last_skipped: 3,
        }
    );
}

#[test]
fn poll_skip_ignores_unknown_gap() {
    let mut b = Builder::new();
    // Nothing shows that offset 1 exists, so reading 0 and then 2 skips nothing.
    b.op(1, EventKind::Ok, vec![send(0, 1, 0), send(0, 2, 2)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1), (0, 2, 2)])]);

    let report = b.check();

    assert!(report.is_valid(), "report: {report}");
}

#[test]
fn aborted_read_reported() {
    let mut b = Builder::new();
    let failed = b.op(1, EventKind::Fail, vec![unacknowledged(0, 1)]);
    let read = b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::AbortedRead);
    assert_eq!(
        anomaly,
        Anomaly::AbortedRead {
            read: observation(0, 0, 1, 2, read),
            send_process: 1,
            send_event: failed,
        }
    );
}

#[test]
fn aborted_read_uses_invoke_values() {
    let mut b = Builder::new();
    // The failed completion lists no actions, so only its invoke names the value.
    b.invoke(1, &[unacknowledged(0, 1)]);
    let failed = b.complete(1, EventKind::Fail, vec![]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 0, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::AbortedRead);
    let Anomaly::AbortedRead { send_event, .. } = anomaly else {
        panic!("expected an aborted read, got {anomaly}");
    };
    assert_eq!(send_event, failed);
}

#[test]
fn own_uncommitted_read_reported() {
    let mut b = Builder::new();
    let event = b.op(1, EventKind::Ok, vec![send(0, 1, 0), poll(&[(0, 0, 1)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::OwnUncommittedRead);
    assert_eq!(
        anomaly,
        Anomaly::OwnUncommittedRead {
            read: observation(0, 0, 1, 1, event),
        }
    );
}

#[test]
fn unknown_value_reported() {
    let mut b = Builder::new();
    let read = b.op(1, EventKind::Ok, vec![poll(&[(3, 7, 99)])]);

    let report = b.check();

    let anomaly = single(&report, AnomalyClass::UnknownValue);
    assert_eq!(
        anomaly,
        Anomaly::UnknownValue {
            read: observation(3, 7, 99, 1, read),
        }
    );
}

#[test]
fn failed_completion_results_ignored() {
    let mut b = Builder::new();
    // A failed poll's records and a failed send's offset are not observations.
    b.op(1, EventKind::Fail, vec![send(0, 1, 0)]);
    b.op(2, EventKind::Fail, vec![poll(&[(0, 5, 42)])]);

    let report = b.check();

    assert!(report.is_valid(), "report: {report}");
    assert_eq!(report.acknowledged_sends, 0);
    assert_eq!(report.failed_sends, 1);
    assert_eq!(report.values_read, 0);
}

#[test]
fn report_display_has_line_per_anomaly() {
    let mut b = Builder::new();
    b.op(1, EventKind::Ok, vec![send(0, 1, 0)]);
    b.op(1, EventKind::Ok, vec![send(0, 2, 1)]);
    b.op(2, EventKind::Ok, vec![poll(&[(0, 1, 2), (0, 9, 99)])]);

    let report = b.check();
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();

    assert_eq!(report.anomalies.len(), 3, "report: {report}");
    assert_eq!(lines.len(), 4, "text: {text}");
    assert!(
        lines[0].starts_with("invalid, 3 anomalies (1 lost-write, 1 unseen, 1 unknown-value)"),
        "text: {text}"
    );
    for (line, anomaly) in lines[1..].iter().zip(&report.anomalies) {
        assert!(line.trim_start().starts_with(anomaly.class().name()), "line: {line}");
    }
    assert_eq!(
        report.anomalies[0].to_string(),
        "lost-write: send 0:1@0 (p1, event 1) was acknowledged but never read, \
         although a poll read key 0 up to 0:99@9 (p2, event 5)"
    );
}

#[test]
fn class_names_round_trip() {
    let names: BTreeSet<&str> = AnomalyClass::ALL.iter().map(|class| class.name()).collect();

    assert_eq!(names.len(), AnomalyClass::ALL.len());
    for class in AnomalyClass::ALL {
        assert_eq!(AnomalyClass::from_name(class.name()), Some(class));
        assert_eq!(class.to_string(), class.name());
    }
    assert_eq!(AnomalyClass::from_name("lost-write"), Some(AnomalyClass::LostWrite));
    assert_eq!(AnomalyClass::from_name("no-such-class"), None);
}

/// A small linear congruential generator, so the large history is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Builds a valid history of about 100,000 events: producers append to four keys and
/// consumers read each key forward from where they stopped.
fn large_history() -> Builder {
    const KEYS: usize = 4;
    const PRODUCERS: u64 = 8;
    const CONSUMERS: u64 = 4;
    let mut random = Lcg(7);
    let mut b = Builder::new();
    let mut logs: Vec<Vec<Value>> = vec![Vec::new(); KEYS];
    let mut positions: Vec<[usize; KEYS]> = vec![[0; KEYS]; CONSUMERS as usize];
    let mut next_value: Value = 0;

    while b.history.events.len() < 100_000 {
        if random.next(2) == 0 {
            let process = random.next(PRODUCERS);
            let key = random.next(KEYS as u64) as usize;
            let value = next_value;
            next_value += 1;
            let offset = logs[key].len() as Offset;
            logs[key].push(value);
            b.op(process, EventKind::Ok, vec![send(key as Key, value, offset)]);
        } else {
            let consumer = random.next(CONSUMERS) as usize;
            let mut records = Vec::new();
            for (key, log) in logs.iter().enumerate() {
                let end = log.len().min(positions[consumer][key] + 5);
                let start = positions[consumer][key];
                for (index, &value) in log[start..end].iter().enumerate() {
                    records.push((key as Key, (start + index) as Offset, value));
                }
                positions[consumer][key] = end;
            }
            b.op(PRODUCERS + consumer as u64, EventKind::Ok, vec![poll(&records)]);
        }
    }

    let final_read: Vec<(Key, Offset, Value)> = logs
        .iter()
        .enumerate()
        .flat_map(|(key, log)| {
            log.iter()
                .enumerate()
                .map(move |(offset, &value)| (key as Key, offset as Offset, value))
        })
        .collect();
    b.op(PRODUCERS + CONSUMERS, EventKind::Ok, vec![poll(&final_read)]);
    b
}

#[test]
fn large_history_valid() {
    let b = large_history();

    let report = b.check();

    assert!(report.is_valid(), "report: {report}");
    assert!(report.acknowledged_sends > 20_000, "report: {report}");
    assert_eq!(report.values_read, report.acknowledged_sends);
}

#[test]
fn large_history_finds_one_skip() {
    let mut b = large_history();
    // Drop one record from the middle of the final read.
    let last = b.history.events.len() - 1;
    let Action::Poll { records } = &mut b.history.events[last].actions[0] else {
        panic!("the final event is not a poll");
    };
    let dropped = records.remove(records.len() / 3);

    let report = b.check();

    // The value may still have been read by a consumer, so only the skip is certain.
    assert_eq!(report.count(AnomalyClass::IntPollSkip), 1, "report: {report}");
    let skip = report
        .anomalies
        .iter()
        .find(|anomaly| anomaly.class() == AnomalyClass::IntPollSkip);
    let Some(Anomaly::PollSkip {
        first_skipped,
        last_skipped,
        next,
        ..
    }) = skip
    else {
        panic!("expected a poll skip in {report}");
    };
    assert_eq!(*first_skipped, dropped.offset);
    assert_eq!(*last_skipped, dropped.offset);
    assert_eq!(next.key, dropped.key);
}
