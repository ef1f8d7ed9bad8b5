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
//!   acknowledged before its poll, or a commit was lost. The exception is a failed commit
//!   of the same membership as the highest one, because it may have arrived late.
//! - It resumes at or below the highest commit tried so far, or 0 when none was, or the
//!   group skipped records.

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

/// The group membership a commit was sent in: member id and generation.
pub type Membership = Option<(String, i32)>;

/// An acknowledged commit of one partition.
#[derive(Clone, Debug)]
pub struct Commit {
    pub offset: i64,
    pub membership: Membership,
}

/// The consumer group's commits so far, by partition.
#[derive(Default)]
struct GroupCommits {
    /// Highest offset that a member tried to commit, whatever the outcome.
    attempted: BTreeMap<i32, i64>,
    /// The acknowledged commit with the highest offset, lowered when a late commit
    /// overwrote it (see `unknown`).
    acknowledged: BTreeMap<i32, Commit>,
    /// Commits that were not acknowledged. Such a commit may still take effect after
    /// newer ones of the same membership, because its request may arrive late. The
    /// coordinator rejects it once the generation changed.
    unknown: BTreeMap<i32, BTreeSet<(i64, Membership)>>,
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
        let mut commits = self.commits.lock().expect("commits");
        for (partition, offset) in offsets {
            let highest = commits.attempted.entry(*partition).or_insert(*offset);
            *highest = (*highest).max(*offset);
        }
    }

    /// Notes that the commit of `offsets`, sent in `membership`, was acknowledged.
    pub fn commit_acknowledged(&self, offsets: &BTreeMap<i32, i64>, membership: &Membership) {
        let mut commits = self.commits.lock().expect("commits");
        for (partition, offset) in offsets {
            let higher = commits
                .acknowledged
                .get(partition)
                .is_none_or(|commit| commit.offset < *offset);
            if higher {
                let commit = Commit {
                    offset: *offset,
                    membership: membership.clone(),
                };
                commits.acknowledged.insert(*partition, commit);
            }
        }
    }

    /// Notes that the commit of `offsets`, sent in `membership`, failed, so its outcome
    /// is unknown.
    pub fn commit_unknown(&self, offsets: &BTreeMap<i32, i64>, membership: &Membership) {
        let mut commits = self.commits.lock().expect("commits");
        for (partition, offset) in offsets {
            commits
                .unknown
                .entry(*partition)
                .or_default()
                .insert((*offset, membership.clone()));
        }
    }

    /// Returns the highest acknowledged commit of each partition so far.
    pub fn acknowledged_commits(&self) -> BTreeMap<i32, Commit> {
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
        floor: Option<&Commit>,
        own_position: Option<i64>,
    ) {
        let mut commits = self.commits.lock().expect("commits");
        if let Some(floor) = floor.filter(|floor| resumed < floor.offset) {
            // A failed commit of the floor's own membership may have landed after it and
            // overwritten it, as in Kafka. Then the group's offset is lower from now on.
            let late = commits
                .unknown
                .get(&partition)
                .is_some_and(|failed| failed.contains(&(resumed, floor.membership.clone())));
            if late {
                let current = commits.acknowledged.get_mut(&partition);
                if let Some(current) = current.filter(|current| current.offset == floor.offset) {
                    current.offset = resumed;
                }
            } else {
                self.violation(format!(
                    "p{process} resumed partition {partition} at offset {resumed}, below the commit of offset {} acknowledged before it",
                    floor.offset
                ));
            }
        }
        let tried = commits.attempted.get(&partition).copied();
        drop(commits);
        let ceiling = tried.unwrap_or(0).max(own_position.unwrap_or(0));
        if resumed > ceiling {
            self.violation(format!(
                "p{process} resumed partition {partition} at offset {resumed}, past {ceiling}, the highest offset committed or held before: the group skipped records"
            ));
        }
    }
}
