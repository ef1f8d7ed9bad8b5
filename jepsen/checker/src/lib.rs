//! Histories of Kafka-style operations, and the checker that finds their anomalies.
//!
//! The simulation tests (sim-tests) and the real-process tests (jepsen/) record what their
//! clients observed as a [`History`] and hand it to [`check()`]. docs/testing.md defines every
//! anomaly the checker reports.

pub mod check;
pub mod history;

pub use check::{check, Anomaly, AnomalyClass, Observation, Report, Scope};
pub use history::{Action, Event, EventKind, History, Key, Offset, Process, Record, Value};
