//! The `franz` binary against a real broker started in the test process on loopback.

use std::process::{Command, Output};
use std::sync::Arc;

use franz_core::{RealDisk, SystemClock};
use franz_server::ServerConfig;

struct Broker {
    node: franz_server::Node<RealDisk>,
    _data_dir: tempfile::TempDir,
}

impl Broker {
    async fn start(initial_rebalance_delay_ms: i64) -> Broker {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let config = ServerConfig {
            listener: "127.0.0.1:0".to_string(),
            grpc_listener: "127.0.0.1:0".to_string(),
            data_dir: data_dir.path().to_path_buf(),
            group_initial_rebalance_delay_ms: initial_rebalance_delay_ms,
            offsets_topic_num_partitions: 3,
            ..ServerConfig::default()
        };
        let node = franz_server::start(config, RealDisk, Arc::new(SystemClock))
            .await
            .expect("broker starts");
        Broker {
            node,
            _data_dir: data_dir,
        }
    }

    fn address(&self) -> String {
        self.node.local_addr.to_string()
    }

    /// Runs `franz` with these arguments and `stdin`, against this broker.
    async fn franz(&self, args: &[&str], stdin: &str) -> Output {
        run_franz(&self.address(), args, stdin).await
    }
}

async fn run_franz(brokers: &str, args: &[&str], stdin: &str) -> Output {
    let brokers = brokers.to_string();
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let stdin = stdin.as_bytes().to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_franz"))
            .args(&args)
            .env("FRANZ_BROKERS", &brokers)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start franz");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&stdin)
            .expect("write stdin");
        child.wait_with_output().expect("franz finishes")
    })
    .await
    .expect("blocking task")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

#[test]
fn produce_consume_round_trip() {
    run(async {
        let broker = Broker::start(0).await;
        let created = broker.franz(&["topic", "create", "lines", "-p", "3"], "").await;
        assert_success(&created, "topic create");

        let input: String = (0..10_000).map(|n| format!("key-{}:value-{n}\n", n % 7)).collect();
        let produced = broker
            .franz(
                &[
                    "produce",
                    "-t",
                    "lines",
                    "-K",
                    ":",
                    "-H",
                    "origin=cli",
                    "-H",
                    "origin=test",
                    "-H",
                    "empty",
                ],
                &input,
            )
            .await;
        assert_success(&produced, "produce");
        assert!(String::from_utf8_lossy(&produced.stderr).contains("10000 messages"));

        let consumed = broker
            .franz(&["consume", "-t", "lines", "--from-beginning", "--format", "json"], "")
            .await;
        assert_success(&consumed, "consume");
        let lines: Vec<serde_json::Value> = stdout(&consumed)
            .lines()
            .map(|line| serde_json::from_str(line).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 10_000);

        let mut values: Vec<i64> = Vec::new();
        for line in &lines {
            let value = line["value"].as_str().expect("value");
            let number: i64 = value.trim_start_matches("value-").parse().expect("number");
            assert_eq!(line["key"].as_str(), Some(format!("key-{}", number % 7).as_str()));
            let headers = line["headers"].as_array().expect("headers");
            assert_eq!(headers.len(), 3);
            assert_eq!(headers[0]["value"], "cli");
            assert_eq!(headers[1]["value"], "test");
            assert!(headers[2]["value"].is_null());
            values.push(number);
        }
        values.sort_unstable();
        assert_eq!(values, (0..10_000).collect::<Vec<_>>());

        // Each key stays on one partition, in produce order.
        let mut per_key: std::collections::BTreeMap<String, (i64, Vec<i64>)> = Default::default();
        for line in &lines {
            let key = line["key"].as_str().expect("key").to_string();
            let partition = line["partition"].as_i64().expect("partition");
            let number: i64 = line["value"].as_str().expect("value")[6..].parse().expect("number");
            let entry = per_key.entry(key).or_insert((partition, Vec::new()));
            assert_eq!(entry.0, partition, "a key moved between partitions");
            entry.1.push(number);
        }
        for (key, (_, numbers)) in per_key {
            assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{key} out of order");
        }
    });
}

#[test]
fn group_splits_between_two_consumers() {
    run(async {
        // A rebalance delay long enough for both consumers to join the first generation.
        let broker = Broker::start(3_000).await;
        assert_success(
            &broker.franz(&["topic", "create", "shared", "-p", "2"], "").await,
            "create",
        );
        for partition in ["0", "1"] {
            let input: String = (0..50).map(|n| format!("p{partition}-{n}\n")).collect();
            let produced = broker
                .franz(&["produce", "-t", "shared", "-p", partition], &input)
                .await;
            assert_success(&produced, "produce");
        }

        let args = [
            "consume",
            "-t",
            "shared",
            "-g",
            "pair",
            "--from-beginning",
            "--follow",
            "-n",
            "50",
        ];
        let (first, second) = tokio::join!(broker.franz(&args, ""), broker.franz(&args, ""));
        assert_success(&first, "first consumer");
        assert_success(&second, "second consumer");
        let mut all: Vec<String> = stdout(&first)
            .lines()
            .chain(stdout(&second).lines())
            .map(str::to_string)
            .collect();
        assert_eq!(stdout(&first).lines().count(), 50);
        assert_eq!(stdout(&second).lines().count(), 50);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100, "every message once across the two consumers");

        let described = broker.franz(&["group", "describe", "pair"], "").await;
        assert_success(&described, "group describe");
        assert!(
            stdout(&described).contains("shared\t0\t50\t50\t0"),
            "{}",
            stdout(&described)
        );
        assert!(
            stdout(&described).contains("shared\t1\t50\t50\t0"),
            "{}",
            stdout(&described)
        );
    });
}

#[test]
fn from_time_starts_at_right_record() {
    run(async {
        let broker = Broker::start(0).await;
        let before = broker.franz(&["produce", "-t", "timed"], "old-1\nold-2\n").await;
        assert_success(&before, "first produce");
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let boundary = humantime_now();
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let after = broker.franz(&["produce", "-t", "timed"], "new-1\nnew-2\n").await;
        assert_success(&after, "second produce");

        let consumed = broker
            .franz(&["consume", "-t", "timed", "--from-time", &boundary], "")
            .await;
        assert_success(&consumed, "consume from time");
        assert_eq!(stdout(&consumed), "new-1\nnew-2\n");

        let relative = broker
            .franz(&["consume", "-t", "timed", "--from-time", "-1h"], "")
            .await;
        assert_success(&relative, "consume from -1h");
        assert_eq!(stdout(&relative), "old-1\nold-2\nnew-1\nnew-2\n");
    });
}

/// Returns the current time in RFC 3339 with seconds precision, rounded up.
#[allow(clippy::disallowed_methods)] // The test compares with the CLI's wall clock.
fn humantime_now() -> String {
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    humantime::format_rfc3339_seconds(now).to_string()
}

#[test]
fn topic_and_group_administration() {
    run(async {
        let broker = Broker::start(0).await;
        let created = broker
            .franz(
                &["topic", "create", "admin", "-p", "2", "-c", "retention.ms=86400000"],
                "",
            )
            .await;
        assert_success(&created, "topic create");
        let listed = broker.franz(&["topic", "list"], "").await;
        assert!(stdout(&listed).contains("admin\tpartitions 2"), "{}", stdout(&listed));

        let altered = broker
            .franz(
                &[
                    "topic",
                    "alter-config",
                    "admin",
                    "--set",
                    "retention.ms=1000000",
                    "--set",
                    "max.message.bytes=2048",
                ],
                "",
            )
            .await;
        assert_success(&altered, "alter-config");
        let described = broker.franz(&["topic", "describe", "admin"], "").await;
        assert!(
            stdout(&described).contains("retention.ms=1000000"),
            "{}",
            stdout(&described)
        );
        assert!(
            stdout(&described).contains("max.message.bytes=2048"),
            "{}",
            stdout(&described)
        );

        let grown = broker.franz(&["topic", "add-partitions", "admin", "-p", "4"], "").await;
        assert_success(&grown, "add-partitions");
        let described = broker.franz(&["topic", "describe", "admin"], "").await;
        assert!(stdout(&described).contains("partitions 4"), "{}", stdout(&described));

        let produced = broker.franz(&["produce", "-t", "admin", "-p", "0"], "a\nb\nc\n").await;
        assert_success(&produced, "produce");
        let consumed = broker
            .franz(&["consume", "-t", "admin", "-g", "readers", "--from-beginning"], "")
            .await;
        assert_eq!(stdout(&consumed), "a\nb\nc\n");
        let groups = broker.franz(&["group", "list"], "").await;
        assert!(stdout(&groups).contains("readers"), "{}", stdout(&groups));

        let reset = broker
            .franz(
                &["group", "reset-offsets", "readers", "-t", "admin", "--to-offset", "1"],
                "",
            )
            .await;
        assert_success(&reset, "reset-offsets");
        // Partition 0 has three records; the empty ones stay at their end, 0.
        assert!(stdout(&reset).contains("admin\t0\t1"), "{}", stdout(&reset));
        assert!(stdout(&reset).contains("admin\t1\t0"), "{}", stdout(&reset));
        let again = broker.franz(&["consume", "-t", "admin", "-g", "readers"], "").await;
        assert_eq!(stdout(&again), "b\nc\n");

        assert_success(&broker.franz(&["group", "delete", "readers"], "").await, "group delete");
        let groups = broker.franz(&["group", "list"], "").await;
        assert!(!stdout(&groups).contains("readers"), "{}", stdout(&groups));

        assert_success(&broker.franz(&["topic", "delete", "admin"], "").await, "topic delete");
        let listed = broker.franz(&["topic", "list"], "").await;
        assert!(!stdout(&listed).contains("admin"), "{}", stdout(&listed));

        let info = broker.franz(&["cluster", "info"], "").await;
        assert!(
            stdout(&info).contains(&format!("broker 1  {}", broker.address())),
            "{}",
            stdout(&info)
        );
    });
}

#[test]
fn errors_are_clear_and_fail() {
    run(async {
        let broker = Broker::start(0).await;
        let unknown = broker.franz(&["consume", "-t", "missing-topic"], "").await;
        assert!(!unknown.status.success());
        assert!(
            String::from_utf8_lossy(&unknown.stderr).contains("does not exist"),
            "{}",
            String::from_utf8_lossy(&unknown.stderr)
        );

        let unreachable = run_franz("127.0.0.1:1", &["topic", "list"], "").await;
        assert!(!unreachable.status.success());
        let message = String::from_utf8_lossy(&unreachable.stderr);
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(message.contains("--brokers"), "{message}");

        let invalid = broker.franz(&["produce", "--acks", "2", "-t", "x"], "").await;
        assert_eq!(invalid.status.code(), Some(2), "clap exits with 2 on invalid arguments");

        let bad_name = broker.franz(&["topic", "create", "bad name"], "").await;
        assert!(!bad_name.status.success());
        assert!(String::from_utf8_lossy(&bad_name.stderr).contains("InvalidTopicException"));
    });
}

#[test]
fn group_count_commits_only_printed() {
    run(async {
        let broker = Broker::start(0).await;
        let input: String = (1..=10).map(|n| format!("{n}\n")).collect();
        assert_success(&broker.franz(&["produce", "-t", "counted"], &input).await, "produce");

        let args = [
            "consume",
            "-t",
            "counted",
            "-g",
            "counters",
            "--from-beginning",
            "-n",
            "3",
        ];
        let first = broker.franz(&args, "").await;
        assert_success(&first, "first consume");
        assert_eq!(stdout(&first), "1\n2\n3\n");
        let second = broker.franz(&args, "").await;
        assert_success(&second, "second consume");
        assert_eq!(
            stdout(&second),
            "4\n5\n6\n",
            "the group resumes after the last printed message"
        );
    });
}

#[test]
fn invalid_names_and_addresses_are_named() {
    run(async {
        let broker = Broker::start(0).await;
        let produced = broker.franz(&["produce", "-t", "bad topic!"], "x\n").await;
        assert!(!produced.status.success());
        let message = String::from_utf8_lossy(&produced.stderr);
        assert!(message.contains("InvalidTopicException"), "{message}");

        let no_port = run_franz("localhost", &["topic", "list"], "").await;
        assert!(!no_port.status.success());
        let message = String::from_utf8_lossy(&no_port.stderr);
        assert!(message.contains("has no port"), "{message}");
    });
}

#[test]
fn completions_name_the_commands() {
    run(async {
        let output = run_franz("127.0.0.1:1", &["completions", "bash"], "").await;
        assert_success(&output, "completions");
        let script = stdout(&output);
        assert!(script.contains("franz"), "{script}");
        assert!(script.contains("reset-offsets"), "the script lists subcommands");
    });
}

/// Returns the JSON object on the last line of a bench command's stdout.
fn bench_result(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    let line = text.lines().last().expect("the bench printed a result line");
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{line:?} is not JSON: {error}"))
}

#[test]
fn bench_commands_report_json() {
    run(async {
        let broker = Broker::start(0).await;

        let produced = broker
            .franz(
                &[
                    "bench",
                    "produce",
                    "-t",
                    "bench",
                    "--partitions",
                    "3",
                    "--config",
                    "flush.messages=1",
                    "--count",
                    "3000",
                    "--message-size",
                    "100",
                    "--producers",
                    "2",
                ],
                "",
            )
            .await;
        assert_success(&produced, "bench produce");
        let result = bench_result(&produced);
        assert_eq!(result["bench"], "produce");
        assert_eq!(result["messages"], 3000);
        assert_eq!(result["bytes"], 300_000);
        assert_eq!(result["errors"], 0);
        assert!(result["ack_latency_ms"]["p99"].as_f64().expect("a p99") > 0.0);
        let described = broker.franz(&["topic", "describe", "bench"], "").await;
        assert!(
            stdout(&described).contains("flush.messages"),
            "the topic got its setting"
        );

        let consumed = broker
            .franz(&["bench", "consume", "-t", "bench", "--consumers", "2"], "")
            .await;
        assert_success(&consumed, "bench consume");
        let result = bench_result(&consumed);
        assert_eq!(result["messages"], 3000, "every produced message is read once");
        assert_eq!(result["bytes"], 300_000);

        let limited = broker
            .franz(&["bench", "consume", "-t", "bench", "--count", "500"], "")
            .await;
        assert_success(&limited, "bench consume --count");
        assert_eq!(
            bench_result(&limited)["messages"],
            500,
            "--count stops at exactly that many"
        );

        let timed = broker
            .franz(
                &[
                    "bench",
                    "e2e",
                    "-t",
                    "latency",
                    "--rate",
                    "500",
                    "--duration",
                    "1s",
                    "--message-size",
                    "64",
                ],
                "",
            )
            .await;
        assert_success(&timed, "bench e2e");
        let result = bench_result(&timed);
        let messages = result["messages"].as_u64().expect("a count");
        assert!(
            (400..=500).contains(&messages),
            "about 500 messages in 1 s, got {messages}"
        );
        assert!(result["end_to_end_latency_ms"]["max"].as_f64().expect("a max") > 0.0);

        let invalid = broker.franz(&["bench", "produce", "--producers", "0"], "").await;
        assert!(!invalid.status.success(), "zero producers is rejected");
    });
}
