//! Starts and stops a broker node: opens the data folder, binds the Kafka and gRPC
//! listeners and runs the background timers (retention, scheduled flushes, checkpoints, group
//! timeouts). The binary and the simulation tests both start the node through here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use franz_core::{Clock, Disk};
use tokio::net::TcpListener;
use tracing::info;

use crate::broker::Broker;
use crate::config::ServerConfig;
use crate::groups::GroupService;
use crate::grpc::{self, GrpcListener};
use crate::kafka::{self, Context};
use crate::shutdown::Shutdown;

/// How often logs sync when `flush.ms` or `flush.messages` are due without appends.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often every partition writes its checkpoint, so that recovery scans less.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// A running node.
pub struct Node<D: Disk> {
    pub local_addr: SocketAddr,
    /// Address the gRPC listener is bound to. In the simulation it is the configured
    /// address as given, because madsim-tonic binds only when it starts serving.
    pub grpc_local_addr: SocketAddr,
    pub broker: Arc<Broker<D>>,
    shutdown: Shutdown,
    listener_task: tokio::task::JoinHandle<()>,
    grpc_task: tokio::task::JoinHandle<()>,
    timer_task: tokio::task::JoinHandle<()>,
}

/// Opens the data folder and starts serving.
pub async fn start<D: Disk>(config: ServerConfig, disk: D, clock: Arc<dyn Clock>) -> Result<Node<D>, String> {
    config
        .validate()
        .map_err(|reason| format!("invalid configuration: {reason}"))?;
    let listener = TcpListener::bind(&config.listener).await.map_err(|error| {
        format!(
            "binding the Kafka listener to {} failed: {error}; is another broker running on that port?",
            config.listener
        )
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|error| format!("reading the listener's address failed: {error}"))?;
    let (grpc_listener, grpc_local_addr) = GrpcListener::bind(&config.grpc_listener).await?;

    // Clients must get the address really bound, for example when the port is 0.
    let mut config = config;
    if config.advertised_listener.is_none() {
        config.advertised_listener = Some(local_addr.to_string());
    }
    let broker = Broker::open(config, disk, clock)
        .await
        .map_err(|error| format!("opening the data folder failed: {error}"))?;
    let groups = GroupService::open(broker.clone()).await?;
    let shutdown = Shutdown::new();
    let context = Arc::new(Context {
        broker: broker.clone(),
        groups,
        shutdown: shutdown.clone(),
    });

    let listener_task = tokio::spawn(kafka::serve(listener, context.clone()));
    let grpc_task = tokio::spawn(grpc::serve(grpc_listener, broker.clone(), shutdown.clone()));
    tokio::spawn(context.groups.clone().run_ticks(shutdown.clone()));
    let timer_task = tokio::spawn(run_timers(context));
    info!(
        listener = %local_addr,
        grpc_listener = %grpc_local_addr,
        data_dir = %broker.config.data_dir.display(),
        cluster_id = broker.cluster_id(),
        "franz-server started"
    );
    Ok(Node {
        local_addr,
        grpc_local_addr,
        broker,
        shutdown,
        listener_task,
        grpc_task,
        timer_task,
    })
}

impl<D: Disk> Node<D> {
    /// Stops the node cleanly: stops accepting, lets connections finish the requests they
    /// are serving and ends gRPC subscriptions, then flushes, checkpoints and closes every log.
    pub async fn stop(self) -> Result<(), String> {
        info!("franz-server stopping");
        self.shutdown.trigger();
        self.broker.wake_all_fetches();
        let _ = self.listener_task.await;
        let _ = self.grpc_task.await;
        self.shutdown.wait_for_tasks().await;
        let _ = self.timer_task.await;
        self.broker
            .close()
            .await
            .map_err(|error| format!("closing the partition logs failed: {error}"))?;
        info!("franz-server stopped cleanly");
        Ok(())
    }
}

async fn run_timers<D: Disk>(context: Arc<Context<D>>) {
    let broker = &context.broker;
    // Retention and checkpoints run every so many flush checks, counted in ticks so that
    // no clock is read here.
    let tick_ms = FLUSH_CHECK_INTERVAL.as_millis() as u64;
    let retention_every = (broker.config.retention_check_interval_ms / tick_ms).max(1);
    let checkpoint_every = (CHECKPOINT_INTERVAL.as_millis() as u64 / tick_ms).max(1);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = context.shutdown.wait() => return,
            _ = tokio::time::sleep(FLUSH_CHECK_INTERVAL) => {}
        }
        ticks += 1;
        broker.flush_and_checkpoint(ticks % checkpoint_every == 0).await;
        if ticks % retention_every == 0 {
            broker.enforce_retention().await;
        }
    }
}
