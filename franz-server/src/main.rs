//! The Franz broker binary.
//!
//! For now it opens every partition log under the data folder, recovering any that a crash
//! left unclean, reports what it found and closes them cleanly on Ctrl-C. The Kafka
//! listener is the next step.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use franz_core::{Disk, Log, LogConfig, RealDisk, SystemClock};
use tracing::{error, info};

/// Runs a Franz broker node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Folder that contains one sub-folder per partition (`<topic>-<partition>`).
    #[arg(long, env = "FRANZ_DATA_DIR", default_value = "./franz-data")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            error!(%message, "franz-server stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let disk = RealDisk;
    let data_dir = &args.data_dir;
    disk.create_dir_all(data_dir)
        .await
        .map_err(|error| format!("creating the data folder {} failed: {error}", data_dir.display()))?;
    let entries = disk
        .list_dir(data_dir)
        .await
        .map_err(|error| format!("listing the data folder {} failed: {error}", data_dir.display()))?;

    let mut logs = Vec::new();
    for partition_dir in entries {
        if !disk
            .exists(&partition_dir.join("partition.checkpoint"))
            .await
            .unwrap_or(false)
        {
            continue;
        }
        let log = Log::open(disk, Arc::new(SystemClock), partition_dir.clone(), LogConfig::default())
            .await
            .map_err(|error| error.to_string())?;
        info!(
            partition = %partition_dir.display(),
            log_start_offset = log.log_start_offset().await,
            log_end_offset = log.log_end_offset().await,
            "partition ready"
        );
        logs.push(log);
    }
    info!(data_dir = %data_dir.display(), partitions = logs.len(), "franz-server started; the Kafka listener is not built yet, press Ctrl-C to stop");

    tokio::signal::ctrl_c()
        .await
        .map_err(|error| format!("waiting for Ctrl-C failed: {error}"))?;
    for log in logs {
        let dir = log.dir().to_path_buf();
        log.close()
            .await
            .map_err(|error| format!("closing {} failed: {error}", dir.display()))?;
    }
    info!("franz-server stopped cleanly");
    Ok(())
}
