//! The result of a check: the anomalies found and counts that summarize the history.

use std::collections::BTreeSet;
use std::fmt;

use super::anomaly::{Anomaly, AnomalyClass};

/// The anomalies that [`check`](super::check) found in a history, and counts of what the
/// history contains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every anomaly found, grouped by the check that found it.
    pub anomalies: Vec<Anomaly>,
    /// Operations paired from the events, counting invokes that never completed.
    pub operations: usize,
    /// Sends acknowledged with an offset by an Ok or Info completion.
    pub acknowledged_sends: usize,
    /// Sends whose outcome is unknown: sends of Info operations, of operations that never
    /// completed, or of Ok operations that carry no offset.
    pub unknown_sends: usize,
    /// Sends of operations that completed with Fail.
    pub failed_sends: usize,
    /// Distinct values returned by polls.
    pub values_read: usize,
}

impl Report {
    /// Returns whether the check found no anomaly.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// Returns the classes of the anomalies found, each once.
    pub fn classes(&self) -> BTreeSet<AnomalyClass> {
        self.anomalies.iter().map(Anomaly::class).collect()
    }

    /// Returns how many anomalies of `class` were found.
    pub fn count(&self, class: AnomalyClass) -> usize {
        self.anomalies.iter().filter(|anomaly| anomaly.class() == class).count()
    }
}

impl fmt::Display for Report {
    /// Writes a summary line, then one line per anomaly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            write!(f, "valid: ")?;
        } else {
            write!(f, "invalid, {} anomalies (", self.anomalies.len())?;
            for (index, class) in self.classes().into_iter().enumerate() {
                let separator = if index == 0 { "" } else { ", " };
                write!(f, "{separator}{} {class}", self.count(class))?;
            }
            write!(f, "): ")?;
        }
        write!(
            f,
            "{} operations, {} acknowledged sends, {} unknown sends, {} failed sends, {} values read",
            self.operations, self.acknowledged_sends, self.unknown_sends, self.failed_sends, self.values_read
        )?;
        for anomaly in &self.anomalies {
            write!(f, "\n  {anomaly}")?;
        }
        Ok(())
    }
}
