//! The Franz broker binary: reads the configuration, starts a node and stops it cleanly
//! on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use franz_core::{RealDisk, SystemClock};
use franz_server::config::{FileConfig, ServerConfig};
use tracing::{error, info};

#[global_allocator]
static ALLOCATOR: franz_net::alloc::GuardedAllocator = franz_net::alloc::GuardedAllocator;

/// Runs a Franz broker node. With no options it serves Kafka clients on 127.0.0.1:9092,
/// the gRPC API on 127.0.0.1:9093, and keeps its data in ./franz-data. Options override
/// environment variables, which override the config file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TOML file with server settings; see docs/configuration.md for every key.
    #[arg(long, env = "FRANZ_CONFIG")]
    config: Option<PathBuf>,
    /// Address the Kafka listener binds, host:port [default: 127.0.0.1:9092].
    #[arg(long, env = "FRANZ_LISTENER")]
    listener: Option<String>,
    /// Address given to clients in Metadata responses, host:port [default: the listener].
    #[arg(long, env = "FRANZ_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// Address the gRPC listener binds, host:port [default: 127.0.0.1:9093].
    #[arg(long, env = "FRANZ_GRPC_LISTENER")]
    grpc_listener: Option<String>,
    /// Folder for partition logs and cluster metadata [default: ./franz-data].
    #[arg(long, env = "FRANZ_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This broker's id [default: 1].
    #[arg(long, env = "FRANZ_NODE_ID")]
    node_id: Option<i32>,
    /// Create unknown topics on first produce or metadata request (auto.create.topics.enable) [default: true].
    #[arg(long, env = "FRANZ_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Partitions of automatically created topics (num.partitions) [default: 1].
    #[arg(long, env = "FRANZ_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// Largest request frame in bytes; larger ones close the connection (socket.request.max.bytes) [default: 104857600].
    #[arg(long, env = "FRANZ_SOCKET_REQUEST_MAX_BYTES")]
    socket_request_max_bytes: Option<usize>,
    /// Milliseconds the first rebalance of an empty group waits for more members (group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, env = "FRANZ_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<i64>,
    /// Partitions of __consumer_offsets, fixed when it is first created (offsets.topic.num.partitions) [default: 50].
    #[arg(long, env = "FRANZ_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// Default for a topic setting, as KEY=VALUE with Kafka's name, for example retention.ms=86400000. Repeatable;
    /// the environment variable takes a comma-separated list.
    #[arg(long = "topic-default", env = "FRANZ_TOPIC_DEFAULTS", value_delimiter = ',')]
    topic_defaults: Vec<String>,
}

impl Args {
    fn into_config(self) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::default();
        if let Some(path) = &self.config {
            config.apply_file(FileConfig::load(path)?)?;
        }
        macro_rules! take {
            ($field:ident) => {
                if let Some(value) = self.$field {
                    config.$field = value;
                }
            };
        }
        take!(listener);
        take!(grpc_listener);
        take!(data_dir);
        take!(node_id);
        take!(auto_create_topics);
        take!(num_partitions);
        take!(socket_request_max_bytes);
        take!(group_initial_rebalance_delay_ms);
        take!(offsets_topic_num_partitions);
        if self.advertised_listener.is_some() {
            config.advertised_listener = self.advertised_listener;
        }
        for setting in self.topic_defaults {
            let (name, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("--topic-default {setting:?} is not KEY=VALUE"))?;
            config
                .topic_defaults
                .insert(name.trim().to_string(), value.trim().to_string());
        }
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            error!(%message, "franz-server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = args.into_config()?;
    let node = franz_server::start(config, RealDisk, Arc::new(SystemClock)).await?;
    wait_for_signal().await?;
    node.stop().await
}

/// Returns on SIGINT or SIGTERM.
#[cfg(not(madsim))]
async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|error| format!("installing the SIGTERM handler failed: {error}"))?;
    tokio::select! {
        biased;
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.map_err(|error| format!("waiting for SIGINT failed: {error}"))?;
            info!(signal = "SIGINT", "shutting down");
        }
        _ = terminate.recv() => info!(signal = "SIGTERM", "shutting down"),
    }
    Ok(())
}

/// Returns on SIGINT. The simulation has no SIGTERM, and the binary is built there only
/// so that clippy checks it.
#[cfg(madsim)]
async fn wait_for_signal() -> Result<(), String> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|error| format!("waiting for SIGINT failed: {error}"))?;
    info!(signal = "SIGINT", "shutting down");
    Ok(())
}
