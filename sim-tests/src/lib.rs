//! Deterministic simulation of Franz. Everything here compiles only with
//! `RUSTFLAGS="--cfg madsim"`; docs/testing.md explains how to run, read and replay a run.
//!
//! One seed decides everything about a run: the configuration drawn for it ([`swarm`]),
//! the faults ([`nemesis`]), the clients' choices ([`workload`]) and madsim's scheduling.
//! [`run::run_seed`] runs the real franz-server on a madsim node over the simulated disk,
//! records what the clients observed, and hands the history to franz-checker.

#[cfg(madsim)]
pub mod clock;
#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
pub mod kafka;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod node;
#[cfg(madsim)]
pub mod rng;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod swarm;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod workload;

#[cfg(madsim)]
pub use clock::SimClock;
