//! Prints append and read throughput of a partition log on real files.
//!
//! Run: `cargo run --release -p franz-core --example log_bench -- [folder]`. The folder
//! defaults to a new temporary one; pass a folder on the disk you want to measure.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// The tests' helpers build batches with kafka-protocol's encoder, as a client would.
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use franz_core::{FlushPolicy, Log, LogConfig, RealDisk, SystemClock};

const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;

fn batch() -> BytesMut {
    common::batch(RECORDS_PER_BATCH, 1_700_000_000_000, VALUE_BYTES)
}

async fn append_run(dir: &std::path::Path, name: &str, flush: FlushPolicy, producers: usize, batches: usize) {
    let config = LogConfig {
        flush,
        ..LogConfig::default()
    };
    let log = Arc::new(
        Log::open(RealDisk, Arc::new(SystemClock), dir.join(name), config)
            .await
            .expect("open"),
    );
    let template = batch();
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let log = log.clone();
            let template = template.clone();
            tokio::spawn(async move {
                for _ in 0..batches / producers {
                    log.append(template.clone(), 0).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer");
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = (batches * template.len()) as f64;
    println!(
        "append  {name:<28} producers {producers:>2}  {:>9.0} batches/s  {:>8.1} MiB/s",
        batches as f64 / seconds,
        bytes / seconds / (1024.0 * 1024.0)
    );

    if name.starts_with("os") {
        let started = Instant::now();
        let mut offset = 0;
        let mut read_bytes = 0;
        let end = log.log_end_offset().await;
        while offset < end {
            let read = log.read(offset, 1024 * 1024).await.expect("read");
            read_bytes += read.records.len();
            let mut position = 0;
            while position < read.records.len() {
                let header = franz_core::batch::BatchHeader::parse(&read.records[position..]).expect("header");
                offset = header.next_offset();
                position += header.size();
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "read    {name:<28} 1 MiB fetches   {:>8.1} MiB/s",
            read_bytes as f64 / seconds / (1024.0 * 1024.0)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let temporary = tempfile::tempdir().expect("temporary folder");
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    println!(
        "batches of {RECORDS_PER_BATCH} records x {VALUE_BYTES} bytes, folder {}",
        dir.display()
    );
    append_run(&dir, "os-flush", FlushPolicy::Os, 1, 20_000).await;
    append_run(&dir, "fsync-every-append", FlushPolicy::EveryAppend, 1, 2_000).await;
    append_run(&dir, "fsync-every-append-16", FlushPolicy::EveryAppend, 16, 2_000).await;
}
