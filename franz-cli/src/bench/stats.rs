//! The counters of a benchmark: messages and bytes, latencies in an HDR histogram, a
//! progress line every second, and the final report as text and as one JSON line.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Largest latency the histograms record: one minute, in microseconds. Longer ones are
/// clamped to it.
const MAX_LATENCY_MICROS: u64 = 60_000_000;

/// Returns the real monotonic time; benchmarks measure the machine, not a simulation.
#[allow(clippy::disallowed_methods)] // The CLI runs on real time, never in a cluster.
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("the bounds are valid")
}

/// Counts since the start, and since the last progress line.
struct Counters {
    messages: u64,
    bytes: u64,
    errors: u64,
    latencies: Histogram<u64>,
    interval_messages: u64,
    interval_bytes: u64,
    interval_latencies: Histogram<u64>,
}

/// A benchmark's shared counters. Clones count into the same totals.
#[derive(Clone)]
pub struct Stats {
    counters: Arc<Mutex<Counters>>,
    started: tokio::time::Instant,
}

/// The figures of a finished benchmark.
pub struct Summary {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency percentiles in milliseconds (p50, p99, p99.9, max); `None` when the
    /// benchmark measures none.
    pub latency_ms: Option<[f64; 4]>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            counters: Arc::new(Mutex::new(Counters {
                messages: 0,
                bytes: 0,
                errors: 0,
                latencies: new_histogram(),
                interval_messages: 0,
                interval_bytes: 0,
                interval_latencies: new_histogram(),
            })),
            started: now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `messages` messages of `bytes` bytes in all.
    pub fn record(&self, messages: u64, bytes: u64) {
        let mut counters = self.lock();
        counters.messages += messages;
        counters.bytes += bytes;
        counters.interval_messages += messages;
        counters.interval_bytes += bytes;
    }

    /// Counts one message of `bytes` bytes that took `latency`.
    pub fn record_latency(&self, bytes: u64, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_MICROS);
        let mut counters = self.lock();
        counters.messages += 1;
        counters.bytes += bytes;
        counters.interval_messages += 1;
        counters.interval_bytes += bytes;
        counters
            .latencies
            .record(micros)
            .expect("clamped into the histogram's range");
        counters
            .interval_latencies
            .record(micros)
            .expect("clamped into the histogram's range");
    }

    pub fn record_error(&self) {
        self.lock().errors += 1;
    }

    pub fn messages(&self) -> u64 {
        self.lock().messages
    }

    /// Prints a progress line to stderr every second until the returned task is aborted.
    pub fn spawn_progress(&self, label: &'static str) -> tokio::task::JoinHandle<()> {
        let stats = self.clone();
        tokio::spawn(async move {
            let mut last = now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let at = now();
                let seconds = at.duration_since(last).as_secs_f64();
                last = at;
                eprintln!("{}", stats.take_interval(label, seconds));
            }
        })
    }

    /// Formats the counts since the last call as one progress line and resets them.
    fn take_interval(&self, label: &str, seconds: f64) -> String {
        let mut counters = self.lock();
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut line = format!(
            "{elapsed:6.1} s {label}: {:>10.0} msg/s {:>9.1} MiB/s",
            counters.interval_messages as f64 / seconds,
            counters.interval_bytes as f64 / seconds / MIB,
        );
        if !counters.interval_latencies.is_empty() {
            let latencies = &counters.interval_latencies;
            line.push_str(&format!(
                ", latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                millis(latencies.value_at_quantile(0.5)),
                millis(latencies.value_at_quantile(0.99)),
                millis(latencies.max()),
            ));
        }
        if counters.errors > 0 {
            line.push_str(&format!(", {} errors so far", counters.errors));
        }
        counters.interval_messages = 0;
        counters.interval_bytes = 0;
        counters.interval_latencies.reset();
        line
    }

    /// Returns the totals since the start, over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let counters = self.lock();
        let latencies = &counters.latencies;
        let latency_ms = (!latencies.is_empty()).then(|| {
            [
                millis(latencies.value_at_quantile(0.5)),
                millis(latencies.value_at_quantile(0.99)),
                millis(latencies.value_at_quantile(0.999)),
                millis(latencies.max()),
            ]
        });
        Summary {
            messages: counters.messages,
            bytes: counters.bytes,
            errors: counters.errors,
            elapsed,
            latency_ms,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Summary {
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / MIB / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Prints the summary for people to stderr and as one JSON line to stdout, with
    /// `settings` (the benchmark's arguments). `latency` is a label and a JSON key for a
    /// benchmark that measures latencies. The key is always present, and null without
    /// samples, so that scripts find the same shape every time.
    pub fn print(&self, bench: &str, latency: Option<(&str, &str)>, settings: Value) {
        eprintln!(
            "{bench}: {} messages, {:.1} MiB in {:.2} s: {:.0} msg/s, {:.1} MiB/s{}",
            self.messages,
            self.bytes as f64 / MIB,
            self.elapsed.as_secs_f64(),
            self.messages_per_second(),
            self.mib_per_second(),
            if self.errors > 0 {
                format!(", {} errors", self.errors)
            } else {
                String::new()
            }
        );
        if let (Some((label, _)), Some([p50, p99, p999, max])) = (latency, self.latency_ms) {
            eprintln!("{label} latency: p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms");
        }
        let mut report = json!({
            "bench": bench,
            "messages": self.messages,
            "bytes": self.bytes,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "messages_per_second": self.messages_per_second(),
            "mib_per_second": self.mib_per_second(),
            "settings": settings,
        });
        if let Some((_, key)) = latency {
            report[key] = match self.latency_ms {
                Some([p50, p99, p999, max]) => json!({"p50": p50, "p99": p99, "p99.9": p999, "max": max}),
                None => Value::Null,
            };
        }
        println!("{report}");
    }
}
