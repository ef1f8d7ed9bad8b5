//! The seed runner of the simulation. Build it with `RUSTFLAGS="--cfg madsim"` and pass a
//! command after `--`:
//!
//! ```text
//! cargo test -p sim-tests --test sim -- run --seeds 200        # fresh seeds, both cores
//! cargo test -p sim-tests --test sim -- replay 1234            # one seed, trace printed
//! cargo test -p sim-tests --test sim -- corpus                 # every seed in seeds.txt
//! cargo test -p sim-tests --test sim -- determinism --seeds 5  # each seed twice, same trace?
//! cargo test -p sim-tests --test sim -- planted --seeds 100    # a planted bug must be found
//! ```
//!
//! Without a command it replays the corpus. docs/testing.md explains the output.

#[cfg(not(madsim))]
fn main() {
    // The real build has nothing to run; `--list` (from cargo-nextest) gets no tests.
    if !std::env::args().any(|arg| arg == "--list") {
        println!("the simulation runs only in a build with RUSTFLAGS=\"--cfg madsim\"");
    }
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    runner::main()
}

#[cfg(madsim)]
mod runner {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use clap::{Parser, Subcommand};
    use sim_tests::run::{run_seed, Outcome};

    /// The seed corpus: seeds that failed once, replayed by every CI run.
    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds.txt");

    #[derive(Parser)]
    #[command(name = "sim", about = "Runs seeded simulations of Franz")]
    struct Arguments {
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Runs fresh seeds and prints seeds per minute and the simulated-to-real time ratio.
        Run {
            /// Number of seeds to run.
            #[arg(long, default_value_t = 200)]
            seeds: u64,
            /// First seed; a random one when omitted.
            #[arg(long)]
            start: Option<u64>,
            /// Seeds run at once, one thread each.
            #[arg(long, default_value_t = 2)]
            jobs: usize,
            /// Leaves the corpus file alone; by default every failing seed is appended to it,
            /// to be committed with the fix.
            #[arg(long)]
            no_record: bool,
        },
        /// Runs one seed, prints its trace and the checker's report.
        Replay { seed: u64 },
        /// Replays every seed of the corpus file.
        Corpus {
            #[arg(long, default_value = CORPUS)]
            file: PathBuf,
            #[arg(long, default_value_t = 2)]
            jobs: usize,
        },
        /// Runs each seed twice and fails when the two traces differ.
        Determinism {
            #[arg(long, default_value_t = 5)]
            seeds: u64,
            #[arg(long)]
            start: Option<u64>,
        },
        /// Requires that the planted bug of this build fails some seed within `--seeds` with
        /// one of the `--expect` failure kinds.
        Planted {
            /// Failure kinds that count as finding the bug: anomaly classes such as
            /// `lost-write`, `invariant` or `panic`, separated by commas.
            #[arg(long, value_delimiter = ',', required = true)]
            expect: Vec<String>,
            #[arg(long, default_value_t = 100)]
            seeds: u64,
            #[arg(long, default_value_t = 1)]
            start: u64,
            #[arg(long, default_value_t = 2)]
            jobs: usize,
        },
    }

    pub fn main() -> ExitCode {
        // cargo-nextest lists tests with `--list`; the runner has none to list, because
        // scripts/test calls its commands directly.
        if std::env::args().any(|arg| arg == "--list") {
            return ExitCode::SUCCESS;
        }
        let arguments = Arguments::parse_from(std::env::args().filter(|arg| arg != "--nocapture"));
        let command = arguments.command.unwrap_or(Command::Corpus {
            file: PathBuf::from(CORPUS),
            jobs: 2,
        });
        let passed = match command {
            Command::Run {
                seeds,
                start,
                jobs,
                no_record,
            } => {
                let start = start.unwrap_or_else(random_seed);
                let seeds: Vec<u64> = (start..start.saturating_add(seeds)).collect();
                let label = format!("{}..={}", start, seeds.last().copied().unwrap_or(start));
                run_many(&seeds, &label, jobs, (!no_record).then(|| Path::new(CORPUS)))
            }
            Command::Replay { seed } => replay(seed),
            Command::Corpus { file, jobs } => match read_corpus(&file) {
                Ok(seeds) => {
                    println!("replaying {} seeds of {}", seeds.len(), file.display());
                    run_many(&seeds, "the corpus", jobs, None)
                }
                Err(error) => {
                    eprintln!("error: reading the seed corpus {} failed: {error}", file.display());
                    false
                }
            },
            Command::Determinism { seeds, start } => {
                let start = start.unwrap_or_else(random_seed);
                determinism(start, seeds)
            }
            Command::Planted {
                expect,
                seeds,
                start,
                jobs,
            } => planted(&expect, start, seeds, jobs),
        };
        if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// A seed from the operating system, for a run of fresh seeds.
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)] // The runner, outside any simulation.
    fn random_seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        // Keep seeds short enough to type.
        (nanos ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000
    }

    /// Returns the cargo features of this build that plant a bug, for the replay command.
    fn planted_features() -> Vec<&'static str> {
        let mut features = Vec::new();
        if cfg!(feature = "planted-ack-before-fsync") {
            features.push("planted-ack-before-fsync");
        }
        if cfg!(feature = "planted-skip-sequence-check") {
            features.push("planted-skip-sequence-check");
        }
        if cfg!(feature = "planted-fetch-past-high-watermark") {
            features.push("planted-fetch-past-high-watermark");
        }
        features
    }

    /// Returns the one command that replays `seed` with this build's features.
    pub fn replay_command(seed: u64) -> String {
        let features = planted_features();
        let features = if features.is_empty() {
            String::new()
        } else {
            format!(" --features {}", features.join(","))
        };
        format!("RUSTFLAGS=\"--cfg madsim\" cargo test -p sim-tests --test sim{features} -- replay {seed}")
    }

    /// Runs `seed` on a thread of its own and returns what it found.
    #[allow(clippy::disallowed_methods)] // The runner, outside any simulation.
    fn run_on_thread(seed: u64, echo: bool) -> Outcome {
        std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .stack_size(64 * 1024 * 1024)
            .spawn(move || run_seed(seed, echo))
            .expect("spawning a thread for a seed")
            .join()
            .expect("run_seed catches the run's panics")
    }

    fn read_corpus(file: &Path) -> std::io::Result<Vec<u64>> {
        #[allow(clippy::disallowed_methods)] // The runner reads its own input file.
        let text = std::fs::read_to_string(file)?;
        let mut seeds = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let seed = line.parse().map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {}: {line:?} is not a seed: {error}", number + 1),
                )
            })?;
            seeds.push(seed);
        }
        Ok(seeds)
    }

    fn record_failure(file: &Path, outcome: &Outcome) {
        use std::io::Write;
        let kinds = outcome.failure_kinds().join(", ");
        #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // The runner's own file.
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
            .and_then(|mut corpus| writeln!(corpus, "{}  # {kinds}", outcome.seed));
        match appended {
            Ok(()) => println!("added seed {} to {}", outcome.seed, file.display()),
            Err(error) => eprintln!(
                "error: adding seed {} to {} failed: {error}",
                outcome.seed,
                file.display()
            ),
        }
    }

    /// Prints why `outcome` failed, the end of its trace and the command that replays it.
    fn print_failure(outcome: &Outcome) {
        println!("\nFAILED seed {}: {}", outcome.seed, outcome.failure_kinds().join(", "));
        println!("{}", outcome.config);
        if let Some(message) = &outcome.panic {
            println!("panic: {message}");
        }
        for violation in &outcome.violations {
            println!("invariant violated: {violation}");
        }
        if let Some(report) = outcome.report.as_ref().filter(|report| !report.is_valid()) {
            let text = report.to_string();
            for line in text.lines().take(20) {
                println!("{line}");
            }
        }
        println!("last lines of the trace:");
        let skip = outcome.trace.len().saturating_sub(15);
        for line in &outcome.trace[skip..] {
            // Polls can return thousands of records; the replay prints them whole.
            let cut: String = line.chars().take(200).collect();
            let more = if cut.len() < line.len() { " ..." } else { "" };
            println!("  {cut}{more}");
        }
        println!("replay: {}", replay_command(outcome.seed));
    }

    /// Runs `seeds` on `jobs` threads and calls `visit` with each outcome as it comes. A
    /// `visit` that returns false stops the threads from starting more seeds.
    #[allow(clippy::disallowed_methods)] // The runner, outside any simulation.
    fn for_each_outcome(seeds: &[u64], jobs: usize, visit: impl Fn(Outcome) -> bool + Sync) {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..jobs.max(1) {
                scope.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&seed) = seeds.get(index) else {
                            return;
                        };
                        if !visit(run_on_thread(seed, false)) {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
    }

    /// Runs `seeds` with `jobs` threads. Prints every failure and a summary that names the
    /// seeds by `label`; returns whether every seed passed.
    #[allow(clippy::disallowed_methods)] // The runner measures real time, outside any simulation.
    fn run_many(seeds: &[u64], label: &str, jobs: usize, record: Option<&Path>) -> bool {
        let started = std::time::Instant::now();
        let outcomes: Mutex<Vec<(u64, bool, Duration)>> = Mutex::new(Vec::new());
        let faults: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
        for_each_outcome(seeds, jobs, |outcome| {
            let passed = outcome.passed();
            if !passed {
                print_failure(&outcome);
                if let Some(file) = record {
                    record_failure(file, &outcome);
                }
            }

            let mut all_faults = faults.lock().expect("faults");
            for (name, count) in &outcome.faults {
                *all_faults.entry(*name).or_insert(0) += count;
            }
            let mut outcomes = outcomes.lock().expect("outcomes");
            outcomes.push((outcome.seed, passed, outcome.simulated));
            true
        });

        let outcomes = outcomes.into_inner().expect("outcomes");
        let real = started.elapsed();
        let simulated: Duration = outcomes.iter().map(|(_, _, simulated)| *simulated).sum();
        let failed: Vec<u64> = outcomes
            .iter()
            .filter(|(_, passed, _)| !passed)
            .map(|(seed, _, _)| *seed)
            .collect();
        let per_minute = outcomes.len() as f64 / real.as_secs_f64().max(1e-9) * 60.0;
        println!(
            "\n{} seeds ({label}), {} failed, in {:.1} s with {} jobs: {:.0} seeds per minute, simulated time {:.1} s = {:.1}x real time",
            outcomes.len(),
            failed.len(),
            real.as_secs_f64(),
            jobs,
            per_minute,
            simulated.as_secs_f64(),
            simulated.as_secs_f64() / real.as_secs_f64().max(1e-9),
        );

        let faults = faults.into_inner().expect("faults");
        let faults: Vec<String> = faults.iter().map(|(name, count)| format!("{name} {count}")).collect();
        println!("faults injected: {}", faults.join(", "));
        if !failed.is_empty() {
            println!("failed seeds: {failed:?}");
        }
        failed.is_empty()
    }

    fn replay(seed: u64) -> bool {
        // The broker's own logs, interleaved with the trace, when RUST_LOG is set.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .without_time()
                .with_ansi(false)
                .init();
        }
        let outcome = run_on_thread(seed, true);
        println!(
            "trace hash {:016x}, simulated {:?}",
            outcome.trace_hash, outcome.simulated
        );
        if let Some(report) = &outcome.report {
            println!("{report}");
        }
        if outcome.passed() {
            println!("seed {seed} passed");
            return true;
        }
        print_failure(&outcome);
        false
    }

    fn determinism(start: u64, count: u64) -> bool {
        let mut deterministic = true;
        for seed in start..start.saturating_add(count) {
            let first = run_on_thread(seed, false);
            let second = run_on_thread(seed, false);
            if first.trace_hash == second.trace_hash && first.trace == second.trace {
                println!("seed {seed}: trace hash {:016x} twice", first.trace_hash);
                continue;
            }
            deterministic = false;
            println!(
                "seed {seed}: NOT deterministic, trace hashes {:016x} and {:016x}",
                first.trace_hash, second.trace_hash
            );
            let differs = first.trace.iter().zip(&second.trace).position(|(a, b)| a != b);
            if let Some(line) = differs {
                println!(
                    "first difference at line {}:\n  {}\n  {}",
                    line + 1,
                    first.trace[line],
                    second.trace[line]
                );
            }
            println!("replay: {}", replay_command(seed));
        }
        deterministic
    }

    /// Runs seeds from `start` until one fails with an `expected` kind. A build without a
    /// planted bug has nothing to find and fails this command.
    fn planted(expected: &[String], start: u64, count: u64, jobs: usize) -> bool {
        let features = planted_features();
        if features.is_empty() {
            eprintln!("error: no planted bug in this build; add --features planted-<bug>");
            return false;
        }
        let found: Mutex<Option<Outcome>> = Mutex::new(None);
        let seeds: Vec<u64> = (start..start.saturating_add(count)).collect();
        for_each_outcome(&seeds, jobs, |outcome| {
            let kinds = outcome.failure_kinds();
            if !kinds.iter().any(|kind| expected.contains(kind)) {
                if !outcome.passed() {
                    println!(
                        "seed {} failed with other kinds than expected: {}",
                        outcome.seed,
                        kinds.join(", ")
                    );
                }
                return true;
            }
            // With two threads, a later seed may fail first; the report keeps the lowest.
            let mut found = found.lock().expect("found");
            if found.as_ref().is_none_or(|earlier| earlier.seed > outcome.seed) {
                *found = Some(outcome);
            }
            false
        });
        match found.into_inner().expect("found") {
            Some(outcome) => {
                print_failure(&outcome);
                println!(
                    "planted {} found at seed {} ({} seeds tried at most): {}",
                    features.join(", "),
                    outcome.seed,
                    outcome.seed - start + 1,
                    outcome.failure_kinds().join(", ")
                );
                true
            }
            None => {
                println!(
                    "planted {} NOT found in {count} seeds from {start}",
                    features.join(", ")
                );
                false
            }
        }
    }
}
