//! Deterministic simulation tests of Franz. The tests live in `tests/` and compile only
//! with `RUSTFLAGS="--cfg madsim"`; see the README for the commands.
