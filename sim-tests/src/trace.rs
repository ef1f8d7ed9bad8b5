//! The event log of a run: one line per client operation, fault and node change, with the
//! simulated time. Its hash is the run's fingerprint: the same seed must give the same
//! hash, bit for bit. The client operations also go into the [`History`] for the checker.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::collections::BTreeMap;

use franz_checker::{Action, EventKind, History, Key, Offset, Process};

use crate::rng::fnv1a;

/// A shared, append-only event log. Clones write to the same log.
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Mutex<TraceState>>,
    /// Simulated time at which the run started; lines show the time since then.
    start: std::time::Instant,
    /// Whether lines are also printed as they are written, for replaying one seed.
    echo: bool,
}

struct TraceState {
    lines: Vec<String>,
    history: History,
    /// Next process id to hand out.
    next_process: Process,
    /// Highest acknowledged offset per partition, for the invariant checks.
    max_acknowledged: BTreeMap<Key, Offset>,
    /// Faults injected, by name.
    faults: BTreeMap<&'static str, u64>,
}

impl Trace {
    pub fn new(echo: bool) -> Trace {
        Trace {
            inner: Arc::new(Mutex::new(TraceState {
                lines: Vec::new(),
                history: History::new(),
                next_process: 0,
                max_acknowledged: BTreeMap::new(),
                faults: BTreeMap::new(),
            })),
            start: crate::clock::now(),
            echo,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TraceState> {
        // A panic while the lock was held already failed the run; the log is still readable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the simulated time since the run started.
    pub fn elapsed(&self) -> Duration {
        crate::clock::now().duration_since(self.start)
    }

    /// Appends a line about a node or a fault.
    pub fn note(&self, line: impl AsRef<str>) {
        let line = format!("{:>12.6}s {}", self.elapsed().as_secs_f64(), line.as_ref());
        if self.echo {
            println!("{line}");
        }
        self.lock().lines.push(line);
    }

    /// Counts one injected fault of the kind `name`.
    pub fn count_fault(&self, name: &'static str) {
        *self.lock().faults.entry(name).or_insert(0) += 1;
    }

    /// Returns how many faults of each kind were injected.
    pub fn faults(&self) -> BTreeMap<&'static str, u64> {
        self.lock().faults.clone()
    }

    /// Returns a process id no other client has used, and notes which client it is.
    pub fn new_process(&self, client: &str) -> Process {
        let process = {
            let mut state = self.lock();
            state.next_process += 1;
            state.next_process
        };
        self.note(format!("p{process} is {client}"));
        process
    }

    /// Records an invocation or a completion of `process`, in the history and as a line.
    pub fn record(&self, process: Process, kind: EventKind, actions: Vec<Action>) {
        let time_ns = self.elapsed().as_nanos() as u64;
        let mut state = self.lock();
        if kind != EventKind::Invoke {
            for action in &actions {
                if let Action::Send {
                    key,
                    offset: Some(offset),
                    ..
                } = action
                {
                    let max = state.max_acknowledged.entry(*key).or_insert(*offset);
                    *max = (*max).max(*offset);
                }
            }
        }
        state.history.push(process, kind, time_ns, actions);
        let line = state.history.events.last().expect("just pushed").to_string();
        if self.echo {
            println!("{line}");
        }
        state.lines.push(line);
    }

    /// Returns the highest acknowledged offset of each partition so far.
    pub fn max_acknowledged(&self) -> BTreeMap<Key, Offset> {
        self.lock().max_acknowledged.clone()
    }

    /// Returns a copy of the history so far.
    pub fn history(&self) -> History {
        self.lock().history.clone()
    }

    /// Returns every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Returns the FNV-1a hash of every line, the fingerprint compared between two runs of
    /// one seed.
    pub fn hash(&self) -> u64 {
        let state = self.lock();
        let mut all = Vec::new();
        for line in &state.lines {
            all.extend_from_slice(line.as_bytes());
            all.push(b'\n');
        }
        fnv1a(&all)
    }
}
