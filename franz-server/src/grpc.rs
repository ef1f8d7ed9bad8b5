//! The gRPC listener: serves the `franz.v1.Franz` service (proto/franz/v1/franz.proto)
//! on the broker's topics and partition logs, the same ones the Kafka listener serves.
//!
//! Every call takes a [`TaskGuard`], so `Node::stop` waits for in-flight calls before it
//! closes the logs, and a call that arrives after shutdown began is UNAVAILABLE.
//! Subscriptions end when shutdown begins. This module never reads time or randomness
//! from the OS: the default timestamp comes from the broker's clock and the round-robin
//! start from `madsim::rand`.

mod status;
mod subscribe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use franz_core::Disk;
use franz_net::grpc::franz_server::{Franz, FranzServer};
use franz_net::grpc::{
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse, ListTopicsRequest,
    ListTopicsResponse, OffsetsForTimeRequest, OffsetsForTimeResponse, PartitionInfo, PartitionOffset, ProduceRecord,
    ProduceRequest, ProduceResponse, ProducedBatch, SubscribeRequest, TopicInfo,
};
use franz_net::partitioner::partition_for_key;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::broker::{validate_topic_name, Broker, Topic};
use crate::shutdown::{Shutdown, TaskGuard};
pub use subscribe::RecordStream;

/// Maximum time shutdown waits for gRPC connections to close once every call has ended.
/// A client that stops reading a subscription keeps its connection open, because the
/// records buffered for it cannot be sent. Past this time such connections are dropped.
#[cfg(not(madsim))]
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The `Franz` service over one broker.
pub struct FranzService<D: Disk> {
    broker: Arc<Broker<D>>,
    shutdown: Shutdown,
    /// Counter behind the round-robin choice of a partition for unkeyed records. It starts
    /// at a random value so that brokers do not all begin with partition 0.
    next_unkeyed: AtomicU32,
}

impl<D: Disk> FranzService<D> {
    pub fn new(broker: Arc<Broker<D>>, shutdown: Shutdown) -> FranzService<D> {
        FranzService {
            broker,
            shutdown,
            next_unkeyed: AtomicU32::new(madsim::rand::random()),
        }
    }

    /// Registers a call with the shutdown, or rejects it when shutdown has begun.
    fn begin_call(&self) -> Result<TaskGuard, Status> {
        let guard = self.shutdown.task();
        if self.shutdown.is_triggered() {
            return Err(Status::unavailable(
                "the broker is shutting down; retry on another broker or after the restart",
            ));
        }
        Ok(guard)
    }

    /// Returns an existing topic, NOT_FOUND when there is none.
    fn existing_topic(&self, name: &str) -> Result<Arc<Topic<D>>, Status> {
        validate_topic_name(name).map_err(|error| status::from_topic_error(&error))?;
        self.broker
            .topic(name)
            .ok_or_else(|| Status::not_found(format!("topic {name:?} does not exist")))
    }

    async fn topic_info(&self, topic: &Topic<D>) -> TopicInfo {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            partitions.push(PartitionInfo {
                partition: partition.index,
                log_start_offset: partition.log.log_start_offset().await,
                high_watermark: partition.high_watermark().await,
            });
        }
        TopicInfo {
            name: topic.name.clone(),
            id: topic.id.hyphenated().to_string(),
            internal: topic.is_internal(),
            partitions,
            configs: topic.configs.overrides.clone().into_iter().collect(),
        }
    }
}

#[tonic::async_trait]
impl<D: Disk> Franz for FranzService<D> {
    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let _guard = self.begin_call()?;
        let request = request.into_inner();
        if request.records.is_empty() {
            return Err(Status::invalid_argument(format!(
                "the produce request to topic {:?} has no records; send at least one",
                request.topic
            )));
        }
        validate_topic_name(&request.topic).map_err(|error| status::from_topic_error(&error))?;
        let topic = match self.broker.topic_or_create(&request.topic).await {
            Ok(Some(topic)) => topic,
            Ok(None) => {
                return Err(Status::not_found(format!(
                    "topic {:?} does not exist and auto_create_topics is off; create it first",
                    request.topic
                )))
            }
            Err(error) => return Err(status::from_topic_error(&error)),
        };
        if topic.is_internal() {
            return Err(Status::invalid_argument(format!(
                "topic {:?} is internal; clients may not write to it",
                topic.name
            )));
        }

        let unkeyed_partition = || {
            let turn = self.next_unkeyed.fetch_add(1, Ordering::Relaxed);
            (turn % topic.partitions.len() as u32) as i32
        };
        let now_ms = self.broker.clock().now_ms();
        let by_partition = assign_partitions(&topic, request.partition, request.records, now_ms, unkeyed_partition)?;

        let mut batches = Vec::with_capacity(by_partition.len());
        for (index, records) in by_partition {
            let partition = &topic.partitions[index as usize];
            let batch = encode_batch(&records)?;
            let appended = partition.append(batch).await.map_err(|error| {
                warn!(topic = %topic.name, partition = index, %error, "gRPC produce failed");
                status::from_append_error(&error)
            })?;
            debug!(topic = %topic.name, partition = index, base_offset = appended.base_offset, records = records.len(), "gRPC produce");
            batches.push(ProducedBatch {
                partition: index,
                base_offset: appended.base_offset,
                record_count: records.len() as i32,
            });
        }
        Ok(Response::new(ProduceResponse { batches }))
    }

    type SubscribeStream = RecordStream;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<RecordStream>, Status> {
        let guard = self.begin_call()?;
        let request = request.into_inner();
        let topic = self.existing_topic(&request.topic)?;
        let stream = subscribe::start(self.broker.clone(), topic, request, self.shutdown.clone(), guard).await?;
        Ok(Response::new(stream))
    }

    async fn list_topics(&self, _request: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        let _guard = self.begin_call()?;
        let mut topics = Vec::new();
        for topic in self.broker.topics() {
            topics.push(self.topic_info(&topic).await);
        }
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let _guard = self.begin_call()?;
        let request = request.into_inner();
        let partitions = match request.partitions {
            0 => self.broker.config.num_partitions,
            count => count,
        };
        let configs: BTreeMap<String, String> = request.configs.into_iter().collect();
        let topic = self
            .broker
            .create_topic(&request.name, partitions, configs, false)
            .await
            .map_err(|error| status::from_topic_error(&error))?;
        info!(topic = %topic.name, partitions, "created topic over gRPC");
        Ok(Response::new(CreateTopicResponse {
            topic: Some(self.topic_info(&topic).await),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let _guard = self.begin_call()?;
        let name = request.into_inner().name;
        validate_topic_name(&name).map_err(|error| status::from_topic_error(&error))?;
        self.broker
            .delete_topic(&name)
            .await
            .map_err(|error| status::from_topic_error(&error))?;
        info!(topic = %name, "deleted topic over gRPC");
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn offsets_for_time(
        &self,
        request: Request<OffsetsForTimeRequest>,
    ) -> Result<Response<OffsetsForTimeResponse>, Status> {
        let _guard = self.begin_call()?;
        let request = request.into_inner();
        if request.timestamp_ms < 0 {
            return Err(Status::invalid_argument(format!(
                "timestamp_ms {} is negative; give milliseconds since the Unix epoch",
                request.timestamp_ms
            )));
        }
        let topic = self.existing_topic(&request.topic)?;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let found = partition
                .log
                .offset_for_timestamp(request.timestamp_ms)
                .await
                .map_err(|error| status::from_log_error(&error))?;
            // A record at or past the high watermark is not visible to consumers yet.
            let high_watermark = partition.high_watermark().await;
            let found = found.filter(|found| found.offset < high_watermark);
            partitions.push(PartitionOffset {
                partition: partition.index,
                offset: found.map(|found| found.offset),
                timestamp_ms: found.map(|found| found.timestamp),
            });
        }
        Ok(Response::new(OffsetsForTimeResponse { partitions }))
    }
}

/// Checks every record and groups them by partition, in request order within each.
/// `unkeyed_partition` is called at most once, for the first unkeyed record.
fn assign_partitions<D: Disk>(
    topic: &Topic<D>,
    partition: Option<i32>,
    records: Vec<ProduceRecord>,
    now_ms: i64,
    unkeyed_partition: impl FnOnce() -> i32,
) -> Result<BTreeMap<i32, Vec<Record>>, Status> {
    let count = topic.partitions.len() as i32;
    if let Some(index) = partition {
        if topic.partition(index).is_none() {
            return Err(Status::invalid_argument(format!(
                "partition {index} does not exist: topic {:?} has partitions 0 to {}",
                topic.name,
                count - 1
            )));
        }
    }

    let mut unkeyed_partition = Some(unkeyed_partition);
    let mut unkeyed_index = None;
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for (position, record) in records.into_iter().enumerate() {
        let index = match (partition, &record.key) {
            (Some(index), _) => index,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => *unkeyed_index.get_or_insert_with(|| unkeyed_partition.take().map_or(0, |choose| choose())),
        };
        let records = by_partition.entry(index).or_default();
        let offset_delta = records.len() as i64;
        records.push(to_record(position, record, offset_delta, now_ms)?);
    }
    Ok(by_partition)
}

/// Builds the stored form of one request record. `offset_delta` is its place in its
/// partition's batch; the log assigns the real offsets.
fn to_record(position: usize, record: ProduceRecord, offset_delta: i64, now_ms: i64) -> Result<Record, Status> {
    let timestamp = record.timestamp_ms.unwrap_or(now_ms);
    if timestamp < 0 {
        return Err(Status::invalid_argument(format!(
            "record {position}: timestamp_ms {timestamp} is negative; give milliseconds since the Unix epoch"
        )));
    }
    let mut headers = IndexMap::with_capacity(record.headers.len());
    for header in record.headers {
        // NOTE: kafka-protocol 0.18 keeps a record's headers in a map, so one record
        // cannot carry two headers with the same key, which Kafka itself allows.
        if headers.contains_key(header.key.as_bytes()) {
            return Err(Status::invalid_argument(format!(
                "record {position}: header key {:?} appears twice; header keys must be distinct",
                header.key
            )));
        }
        headers.insert(StrBytes::from_string(header.key), header.value.map(Bytes::from));
    }
    Ok(Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta,
        sequence: -1,
        timestamp,
        key: record.key.map(Bytes::from),
        value: record.value.map(Bytes::from),
        headers,
        delete_horizon: false,
    })
}

fn encode_batch(records: &[Record]) -> Result<BytesMut, Status> {
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, records, &options)
        .map_err(|error| Status::invalid_argument(format!("encoding the record batch failed: {error}")))?;
    Ok(batch)
}

/// The gRPC listener, bound and ready to serve.
pub struct GrpcListener {
    #[cfg(not(madsim))]
    listener: tokio::net::TcpListener,
    #[cfg(madsim)]
    address: SocketAddr,
}

impl GrpcListener {
    /// Binds `address` (`host:port`; port 0 picks a free port) and returns the listener
    /// with the address it is bound to.
    #[cfg(not(madsim))]
    pub async fn bind(address: &str) -> Result<(GrpcListener, SocketAddr), String> {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|error| {
            format!("binding the gRPC listener to {address} failed: {error}; is another broker running on that port?")
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| format!("reading the gRPC listener's address failed: {error}"))?;
        Ok((GrpcListener { listener }, local_addr))
    }

    /// Parses `address`. madsim-tonic's server binds when it starts serving, so in the
    /// simulation the address must be an IP and a port, and a port of 0 stays 0 here.
    #[cfg(madsim)]
    pub async fn bind(address: &str) -> Result<(GrpcListener, SocketAddr), String> {
        let address: SocketAddr = address
            .parse()
            .map_err(|error| format!("invalid gRPC listener address {address:?}: {error}; give ip:port"))?;
        Ok((GrpcListener { address }, address))
    }
}

/// Serves the `Franz` service on `listener` until shutdown, then waits for the calls in
/// flight. Subscriptions end on shutdown by themselves.
pub async fn serve<D: Disk>(listener: GrpcListener, broker: Arc<Broker<D>>, shutdown: Shutdown) {
    let service = FranzServer::new(FranzService::new(broker, shutdown.clone()));
    let stopped = {
        let shutdown = shutdown.clone();
        async move { shutdown.wait().await }
    };
    let router = tonic::transport::Server::builder().add_service(service);

    #[cfg(not(madsim))]
    let result = {
        let incoming = tonic::transport::server::TcpIncoming::from(listener.listener).with_nodelay(Some(true));
        let serving = router.serve_with_incoming_shutdown(incoming, stopped);
        let drain_expired = async {
            shutdown.wait().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        };
        tokio::select! {
            biased;
            result = serving => result,
            _ = drain_expired => {
                warn!(timeout = ?DRAIN_TIMEOUT, "gRPC connections still open after shutdown; dropping them");
                Ok(())
            }
        }
    };
    #[cfg(madsim)]
    let result = router.serve_with_shutdown(listener.address, stopped).await;

    match result {
        Ok(()) => info!("gRPC listener stopped"),
        Err(error) => warn!(%error, "the gRPC listener failed"),
    }
}
