//! The `franz` command-line tool: produce, consume and administer Franz or any
//! Kafka-compatible cluster.

mod admin;
mod bench;
mod consume;
mod produce;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use franz_net::client::{ClientConfig, Cluster};

/// Produces, consumes and administers a Franz cluster (or any Kafka-compatible one).
#[derive(Parser, Debug)]
#[command(name = "franz", version)]
struct Args {
    /// Brokers to bootstrap from, as comma-separated host:port.
    #[arg(
        long,
        global = true,
        env = "FRANZ_BROKERS",
        default_value = "127.0.0.1:9092",
        value_delimiter = ','
    )]
    brokers: Vec<String>,
    /// Seconds to wait for each broker response.
    #[arg(long, global = true, default_value_t = 30)]
    request_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sends one message per input line to a topic.
    Produce(produce::ProduceArgs),
    /// Prints messages of a topic.
    Consume(consume::ConsumeArgs),
    /// Creates, lists, describes, changes and deletes topics.
    #[command(subcommand)]
    Topic(admin::TopicCommand),
    /// Lists, describes, resets and deletes consumer groups.
    #[command(subcommand)]
    Group(admin::GroupCommand),
    /// Shows the cluster.
    #[command(subcommand)]
    Cluster(admin::ClusterCommand),
    /// Measures throughput and latency of this or any Kafka-compatible cluster.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Prints a shell completion script, for example `franz completions bash > /etc/bash_completion.d/franz`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if let Command::Completions { shell } = args.command {
        clap_complete::generate(shell, &mut Args::command(), "franz", &mut std::io::stdout());
        return Ok(());
    }
    let mut config = ClientConfig::new(args.brokers.clone());
    config.client_id = "franz-cli".to_string();
    config.request_timeout = Duration::from_secs(args.request_timeout.max(1));
    let cluster = connect(config).await?;
    match args.command {
        Command::Produce(produce) => produce::run(cluster, produce).await,
        Command::Consume(consume) => consume::run(cluster, consume).await,
        Command::Topic(command) => admin::run_topic(cluster, command).await,
        Command::Group(command) => admin::run_group(cluster, command).await,
        Command::Cluster(command) => admin::run_cluster(cluster, command).await,
        Command::Bench(command) => bench::run(cluster, command).await,
        Command::Completions { .. } => unreachable!("handled above"),
    }
}

async fn connect(config: ClientConfig) -> Result<Arc<Cluster>, String> {
    for broker in &config.bootstrap {
        let has_port = broker
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !has_port {
            return Err(format!(
                "broker address {broker:?} has no port; write host:port, for example 127.0.0.1:9092"
            ));
        }
    }
    Cluster::connect(config)
        .await
        .map_err(|error| format!("{error}\nstart a broker there, or pass --brokers (or set FRANZ_BROKERS)"))
}
