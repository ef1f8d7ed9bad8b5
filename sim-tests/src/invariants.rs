//! Invariants checked while the run goes on. They only read the broker's state and the
//! trace, and draw no randomness, so checking them does not change what a seed explores
//! beyond the scheduling of the checking task itself.
//!
//! - The high watermark of a partition never decreases, across crashes included, because
//!   under `flush.messages=1` it is the synced end of the log.
//! - Every acknowledged offset is below its partition's high watermark, when every append
//!   is synced: an acknowledged record is one a consumer can read.
//! - A poll returns no record at or past the partition's high watermark.
//! - A group member that takes over a partition resumes at or above every commit
//!   acknowledged before its poll (a lost commit otherwise), or at the offset of a failed
//!   commit, which may arrive late. It resumes at or below the highest commit tried so far,
//!   or 0 when none was (the group skipped records otherwise).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use franz_checker::Record;

use crate::node::BrokerSlot;
use crate::trace::Trace;
use crate::workload::TOPIC;

/// Time between two checks of the broker's state.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// The invariant checker of one run. Clones share their state.
#[derive(Clone)]
pub struct Invariants {
    broker: BrokerSlot,
    trace: Trace,
    /// Whether every append is synced before it is acknowledged; the acknowledgement and
    /// poll invariants hold only then.
    synced_acks: bool,
    /// Highest high watermark seen per partition.
    high_watermarks: Arc<Mutex<BTreeMap<i32, i64>>>,
    /// The consumer group's commits.
    commits: Arc<Mutex<GroupCommits>>,
    /// Every violation found, in order.
    violations: Arc<Mutex<Vec<String>>>,
}

/// The consumer group's commits so far, by partition.
#[derive(Default)]
struct GroupCommits {
    /// Highest offset that a member tried to commit, whatever the outcome.
    attempted: BTreeMap<i32, i64>,
    /// Highest offset whose commit was acknowledged.
    acknowledged: BTreeMap<i32, i64>,
    /// Offsets of commits that were not acknowledged. Such a commit may still take
    /// effect, even after newer ones: its request may arrive late.
    unknown: BTreeMap<i32, BTreeSet<i64>>,
}

fn raise(highest: &mut BTreeMap<i32, i64>, offsets: &BTreeMap<i32, i64>) {
    for (partition, offset) in offsets {
        let entry = highest.entry(*partition).or_insert(*offset);
        *entry = (*entry).max(*offset);
    }
}

impl Invariants {
    pub fn new(broker: BrokerSlot, trace: Trace, synced_acks: bool) -> Invariants {
        Invariants {
            broker,
            trace,
            synced_acks,
            high_watermarks: Arc::default(),
            commits: Arc::default(),
            violations: Arc::default(),
        }
    }

    /// Records a violation once; the same violation found again by a later check is
    /// not repeated.
    fn violation(&self, message: String) {
        let mut violations = self.violations.lock().expect("violations");
        if violations.contains(&message) {
            return;
        }
        self.trace.note(format!("invariant violated: {message}"));
        violations.push(message);
    }

    /// Returns every violation found so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("violations").clone()
    }

    /// Reads the current high watermark of every partition, while the broker is up.
    async fn high_watermarks_now(&self) -> Option<BTreeMap<i32, i64>> {
        let broker = self.broker.lock().expect("broker slot").clone()?;
        let topic = broker.topic(TOPIC)?;
        let mut found = BTreeMap::new();
        for index in 0.. {
            let Some(partition) = topic.partition(index) else {
                break;
            };
            found.insert(index, partition.high_watermark().await);
        }
        Some(found)
    }

    /// Checks the broker's state once.
    pub async fn check_once(&self) {
        // Acknowledgements are read first: one that arrives while the high watermarks are
        // read would otherwise be compared with a value read before it existed.
        let acknowledged = self.trace.max_acknowledged();
        let Some(now) = self.high_watermarks_now().await else {
            return;
        };
        let mut decreased = Vec::new();
        {
            let mut seen = self.high_watermarks.lock().expect("high watermarks");
            for (partition, high_watermark) in &now {
                let highest = seen.entry(*partition).or_insert(*high_watermark);
                if high_watermark < highest {
                    decreased.push(format!(
                        "the high watermark of partition {partition} went down from {highest} to {high_watermark}"
                    ));
                }
                *highest = (*highest).max(*high_watermark);
            }
        }
        for message in decreased {
            self.violation(message);
        }
        if !self.synced_acks {
            return;
        }
        for (partition, acknowledged) in acknowledged {
            let high_watermark = now.get(&partition).copied().unwrap_or(0);
            if acknowledged >= high_watermark {
                self.violation(format!(
                    "offset {acknowledged} of partition {partition} was acknowledged but the high watermark is {high_watermark}"
                ));
            }
        }
    }

    /// Checks the broker's state every [`CHECK_INTERVAL`] until the task is dropped.
    pub async fn run(self) {
        loop {
            madsim::time::sleep(CHECK_INTERVAL).await;
            self.check_once().await;
        }
    }

    /// Checks that the records a poll just returned are below their partitions' high
    /// watermarks, which can only have grown since the broker served the poll.
    pub async fn after_poll(&self, records: &[Record]) {
        if !self.synced_acks || records.is_empty() {
            return;
        }
        let Some(now) = self.high_watermarks_now().await else {
            return;
        };
        for record in records {
            let high_watermark = now.get(&record.key).copied().unwrap_or(0);
            if record.offset >= high_watermark {
                self.violation(format!(
                    "a poll returned offset {} of partition {} at or past the high watermark {high_watermark}",
                    record.offset, record.key
                ));
            }
        }
    }

    /// Notes that a group member is about to commit `offsets` (partition to next offset).
    pub fn commit_started(&self, offsets: &BTreeMap<i32, i64>) {
        raise(&mut self.commits.lock().expect("commits").attempted, offsets);
    }

    /// Notes that the commit of `offsets` was acknowledged.
    pub fn commit_acknowledged(&self, offsets: &BTreeMap<i32, i64>) {
        raise(&mut self.commits.lock().expect("commits").acknowledged, offsets);
    }

    /// Notes that the commit of `offsets` failed, so its outcome is unknown.
    pub fn commit_unknown(&self, offsets: &BTreeMap<i32, i64>) {
        let mut commits = self.commits.lock().expect("commits");
        for (partition, offset) in offsets {
            commits.unknown.entry(*partition).or_default().insert(*offset);
        }
    }

    /// Returns the highest acknowledged commit of each partition so far.
    pub fn acknowledged_commits(&self) -> BTreeMap<i32, i64> {
        self.commits.lock().expect("commits").acknowledged.clone()
    }

    /// Checks where `process`, a group member with a new assignment, resumed `partition`.
    /// `floor` is the highest commit acknowledged before the poll that resolved the
    /// position. `own_position` is where the member was before the rebalance, when it
    /// owned the partition already, because the cooperative assignor lets it keep that.
    pub fn check_resume(
        &self,
        process: u64,
        partition: i32,
        resumed: i64,
        floor: Option<i64>,
        own_position: Option<i64>,
    ) {
        let (tried, late) = {
            let commits = self.commits.lock().expect("commits");
            let late = commits
                .unknown
                .get(&partition)
                .is_some_and(|offsets| offsets.contains(&resumed));
            (commits.attempted.get(&partition).copied(), late)
        };
        // A commit with an unknown outcome may arrive after newer ones and overwrite
        // them, as in Kafka; resuming at its offset is no lost commit.
        if let Some(floor) = floor.filter(|floor| resumed < *floor && !late) {
            self.violation(format!(
                "p{process} resumed partition {partition} at offset {resumed}, below the commit of offset {floor} acknowledged before it"
            ));
        }
        let ceiling = tried.unwrap_or(0).max(own_position.unwrap_or(0));
        if resumed > ceiling {
            self.violation(format!(
                "p{process} resumed partition {partition} at offset {resumed}, past {ceiling}, the highest offset committed or held before: the group skipped records"
            ));
        }
    }
}
