//! `franz produce`: one message per input line.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franz_core::batch::Compression;
use franz_net::client::producer::{DeliveryFuture, Producer, ProducerConfig};
use franz_net::client::records::ProducerRecord;
use franz_net::client::Cluster;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to; created on first use when the broker allows it.
    #[arg(short, long)]
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(short, long)]
    file: Option<std::path::PathBuf>,
    /// Split each line at the first occurrence of this text into key and value; lines
    /// without it get no key.
    #[arg(short = 'K', long)]
    key_separator: Option<String>,
    /// A header for every message, as KEY=VALUE (KEY alone for a null value). Repeatable;
    /// repeated keys are kept.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Partition to write to [default: by key, or one partition per batch for lines without a key].
    #[arg(short, long)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: all (every in-sync replica), 1 (the leader) or 0 (none).
    #[arg(long, default_value = "all", value_parser = ["all", "1", "0"])]
    acks: String,
    /// Compression of each batch.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Milliseconds a batch waits for more lines before it is sent.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Bytes at which a batch is sent without waiting.
    #[arg(long, default_value_t = 16384)]
    batch_size: usize,
}

fn parse_header(text: &str) -> (String, Option<Bytes>) {
    match text.split_once('=') {
        Some((key, value)) => (key.to_string(), Some(Bytes::copy_from_slice(value.as_bytes()))),
        None => (text.to_string(), None),
    }
}

/// Parses a `--compression` value that clap already checked against the codec names.
pub fn parse_compression(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Parses an `--acks` value that clap already checked: `all`, `1` or `0`.
pub fn parse_acks(text: &str) -> i16 {
    match text {
        "0" => 0,
        "1" => 1,
        _ => -1,
    }
}

#[allow(clippy::disallowed_methods)] // The CLI's progress and rate use the real clock.
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

pub async fn run(cluster: Arc<Cluster>, args: ProduceArgs) -> Result<(), String> {
    let acks = parse_acks(&args.acks);
    let config = ProducerConfig {
        acks,
        idempotence: acks == -1,
        compression: parse_compression(&args.compression),
        linger: Duration::from_millis(args.linger_ms),
        batch_size: args.batch_size.max(1),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(cluster, config)
        .await
        .map_err(|error| error.to_string())?;
    let headers: Vec<(String, Option<Bytes>)> = args.headers.iter().map(|text| parse_header(text)).collect();

    let input: Box<dyn BufRead> = match &args.file {
        #[allow(clippy::disallowed_types)] // The CLI reads the user's file; it never runs in a cluster.
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(|error| format!("opening {} failed: {error}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };

    let started = now();
    let mut last_progress = started;
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let mut sent: u64 = 0;
    let mut bytes: u64 = 0;
    for line in input.split(b'\n') {
        let mut line = line.map_err(|error| format!("reading input failed: {error}"))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = split_key(&line, args.key_separator.as_deref());
        bytes += line.len() as u64;
        let record = ProducerRecord {
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp: None,
        };
        let delivery = producer
            .send(&args.topic, args.partition, record)
            .await
            .map_err(|error| format!("sending to {} failed: {error}", args.topic))?;
        pending.push(delivery);
        sent += 1;
        // Bound the records in flight, and surface failures while the input is read.
        if pending.len() >= 10_000 {
            settle(&mut pending).await?;
        }
        if now().saturating_duration_since(last_progress) >= Duration::from_secs(1) {
            last_progress = now();
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!("{sent} messages sent ({:.0} msg/s)", sent as f64 / elapsed.max(1e-9));
        }
    }
    producer.flush().await;
    settle(&mut pending).await?;
    producer.close().await;

    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "{sent} messages ({bytes} bytes) sent to {} in {elapsed:.2} s: {:.0} msg/s, {:.2} MB/s",
        args.topic,
        sent as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    Ok(())
}

fn split_key(line: &[u8], separator: Option<&str>) -> (Option<Bytes>, Bytes) {
    let Some(separator) = separator.map(str::as_bytes).filter(|separator| !separator.is_empty()) else {
        return (None, Bytes::copy_from_slice(line));
    };
    match line.windows(separator.len()).position(|window| window == separator) {
        Some(at) => (
            Some(Bytes::copy_from_slice(&line[..at])),
            Bytes::copy_from_slice(&line[at + separator.len()..]),
        ),
        None => (None, Bytes::copy_from_slice(line)),
    }
}

async fn settle(pending: &mut Vec<DeliveryFuture>) -> Result<(), String> {
    for delivery in pending.drain(..) {
        delivery
            .wait()
            .await
            .map_err(|error| format!("a message was not stored: {error}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_splits_at_first_separator() {
        let (key, value) = split_key(b"k:v:w", Some(":"));
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
        assert_eq!(&value[..], b"v:w");
    }

    #[test]
    fn line_without_separator_has_no_key() {
        let (key, value) = split_key(b"plain", Some(":"));
        assert_eq!(key, None);
        assert_eq!(&value[..], b"plain");
    }

    #[test]
    fn header_without_value_is_null() {
        assert_eq!(parse_header("trace"), ("trace".to_string(), None));
        assert_eq!(parse_header("a=b=c").1.as_deref(), Some(&b"b=c"[..]));
    }
}
