//! `franz consume`: prints messages as text or JSON lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use franz_net::client::admin::{Admin, LATEST};
use franz_net::client::consumer::{Consumer, ConsumerConfig, Message, OffsetReset};
use franz_net::client::Cluster;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(short, long)]
    topic: String,
    /// Consumer group: partitions are shared with the group's other members, and
    /// positions are committed and resumed.
    #[arg(short, long)]
    group: Option<String>,
    /// Read only this partition (not with --group).
    #[arg(short, long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Start at the earliest offset where nothing is committed [default: the end].
    #[arg(long)]
    from_beginning: bool,
    /// Start every partition at this offset.
    #[arg(long, conflicts_with_all = ["from_beginning", "from_time"], value_parser = clap::value_parser!(i64).range(0..))]
    offset: Option<i64>,
    /// Start at the first message at or after this time: RFC 3339
    /// (2026-12-04T10:00:00Z) or relative to now (-1h, -30m, -10s, -2d).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "from_beginning")]
    from_time: Option<String>,
    /// Stop after this many messages.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Keep waiting for new messages instead of stopping at the end of the topic.
    #[arg(short, long)]
    follow: bool,
    /// text prints each value on its own line; json prints key, value, headers,
    /// partition, offset and timestamp.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// With --format text, print the key before the value, separated by this text.
    #[arg(long)]
    key_separator: Option<String>,
}

/// Parses `--from-time` into milliseconds since the epoch.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(relative) = text.strip_prefix('-') {
        let duration = humantime::parse_duration(relative)
            .map_err(|error| format!("invalid relative time {text:?}: {error}; use forms like -1h, -30m, -2d"))?;
        return Ok(now_ms - duration.as_millis() as i64);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|error| {
        format!(
            "invalid time {text:?}: {error}; use RFC 3339 (2026-12-04T10:00:00Z) or a relative time (-1h, -30m, -2d)"
        )
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("time {text:?} is before 1970"))?;
    Ok(since_epoch.as_millis() as i64)
}

#[allow(clippy::disallowed_methods)] // Relative times count back from the real clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn lossy(bytes: &Option<bytes::Bytes>) -> serde_json::Value {
    match bytes {
        Some(bytes) => serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
        None => serde_json::Value::Null,
    }
}

fn render(message: &Message, args: &ConsumeArgs) -> Vec<u8> {
    let record = &message.record;
    if args.format == "json" {
        let headers: Vec<serde_json::Value> = record
            .headers
            .iter()
            .map(|(key, value)| serde_json::json!({ "key": key, "value": lossy(value) }))
            .collect();
        let line = serde_json::json!({
            "topic": message.topic,
            "partition": message.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": lossy(&record.key),
            "value": lossy(&record.value),
            "headers": headers,
        });
        let mut out = line.to_string().into_bytes();
        out.push(b'\n');
        return out;
    }
    let mut out = Vec::new();
    if let Some(separator) = &args.key_separator {
        out.extend_from_slice(record.key.as_deref().unwrap_or_default());
        out.extend_from_slice(separator.as_bytes());
    }
    out.extend_from_slice(record.value.as_deref().unwrap_or_default());
    out.push(b'\n');
    out
}

pub async fn run(cluster: Arc<Cluster>, args: ConsumeArgs) -> Result<(), String> {
    let admin = Admin::new(cluster.clone());
    let info = admin
        .describe_topic(&args.topic)
        .await
        .map_err(|error| format!("{error}; list topics with `franz topic list`"))?;
    let config = ConsumerConfig {
        group_id: args.group.clone(),
        offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(cluster, config);
    let start_time = args
        .from_time
        .as_deref()
        .map(|text| parse_time(text, now_ms()))
        .transpose()?;

    if args.group.is_some() {
        consumer
            .subscribe(std::slice::from_ref(&args.topic))
            .map_err(|error| error.to_string())?;
    } else {
        let partitions: Vec<(String, i32)> = match args.partition {
            Some(partition) => vec![(args.topic.clone(), partition)],
            None => info
                .partitions
                .iter()
                .map(|partition| (args.topic.clone(), partition.index))
                .collect(),
        };
        consumer.assign(&partitions);
        apply_start(&mut consumer, &args, start_time).await?;
    }

    // Without --follow the command stops once every partition reached the end it had
    // when the command started.
    let ends: BTreeMap<i32, i64> = admin
        .list_offsets(&args.topic, LATEST)
        .await
        .map_err(|error| error.to_string())?;
    let mut printed: u64 = 0;
    let mut positioned_assignment: Vec<(String, i32)> = consumer.assignment();
    let stdout = std::io::stdout();
    'polling: loop {
        let messages = consumer
            .poll(Duration::from_millis(500))
            .await
            .map_err(|error| error.to_string())?;
        let assignment = consumer.assignment();
        if args.group.is_some() && assignment != positioned_assignment {
            // A new assignment: explicit start positions apply to it.
            positioned_assignment = assignment;
            if args.offset.is_some() || start_time.is_some() {
                apply_start(&mut consumer, &args, start_time).await?;
                continue;
            }
        }
        let mut out = stdout.lock();
        for (index, message) in messages.iter().enumerate() {
            if let Err(error) = out.write_all(&render(message, &args)) {
                return Err(format!("writing to stdout failed: {error}"));
            }
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                // The poll moved positions past every fetched message. Move them back to
                // the first one not printed, so that a group commits only what was shown.
                let mut first_unprinted: BTreeMap<(String, i32), i64> = BTreeMap::new();
                for later in &messages[index + 1..] {
                    first_unprinted
                        .entry((later.topic.clone(), later.partition))
                        .or_insert(later.record.offset);
                }
                for ((topic, partition), offset) in first_unprinted {
                    consumer.seek(&topic, partition, offset);
                }
                break 'polling;
            }
        }
        drop(out);
        if !args.follow && messages.is_empty() && reached_ends(&consumer, &ends, &args.topic) {
            break;
        }
    }
    let _ = std::io::stdout().flush();
    let started_at_end = !args.from_beginning && args.offset.is_none() && start_time.is_none();
    if printed == 0 && !args.follow && started_at_end {
        eprintln!(
            "no new messages in {}: reading starts at the end; use --from-beginning to read what is stored, or --follow to wait",
            args.topic
        );
    }
    consumer.close().await.map_err(|error| error.to_string())
}

async fn apply_start(consumer: &mut Consumer, args: &ConsumeArgs, start_time: Option<i64>) -> Result<(), String> {
    if let Some(offset) = args.offset {
        for (topic, partition) in consumer.assignment() {
            consumer.seek(&topic, partition, offset);
        }
    } else if let Some(timestamp) = start_time {
        consumer
            .seek_to_time(&args.topic, timestamp)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// Returns whether every assigned partition's position reached its end offset.
fn reached_ends(consumer: &Consumer, ends: &BTreeMap<i32, i64>, topic: &str) -> bool {
    let assignment = consumer.assignment();
    !assignment.is_empty()
        && assignment.iter().all(|(assigned_topic, partition)| {
            assigned_topic != topic
                || consumer
                    .position(assigned_topic, *partition)
                    .is_some_and(|position| position >= ends.get(partition).copied().unwrap_or(0))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_time_counts_back() {
        assert_eq!(parse_time("-1h", 10_000_000), Ok(10_000_000 - 3_600_000));
        assert_eq!(parse_time("-30s", 100_000), Ok(70_000));
    }

    #[test]
    fn rfc3339_time_parses() {
        assert_eq!(parse_time("1970-01-01T00:00:02Z", 0), Ok(2_000));
    }

    #[test]
    fn invalid_time_is_rejected() {
        assert!(parse_time("yesterday", 0).is_err());
    }
}
