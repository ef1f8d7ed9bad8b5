//! The Kafka listener: accepts connections, reads request frames, decodes them with
//! franz-net's codec and routes each one by API key to its handler.
//!
//! A connection serves its requests one at a time, in order, as Kafka's do, so the
//! responses come back in request order. Shutdown stops accepting, lets each connection
//! finish the request it is serving, and closes it.

mod admin;
mod configs;
mod errors;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
pub mod versions;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use franz_core::Disk;
use franz_net::codec::{self, DecodeError};
use franz_net::fetch_encoding;
use franz_net::frame::{self, FrameError};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::groups::GroupService;
use crate::shutdown::Shutdown;

/// The broker state shared by every request handler.
pub struct Context<D: Disk> {
    pub broker: Arc<Broker<D>>,
    pub groups: Arc<GroupService<D>>,
    pub shutdown: Shutdown,
}

/// A decoded request as handlers see it.
pub struct Request {
    pub header: RequestHeader,
    pub version: i16,
    /// The client's address, for JoinGroup's client host.
    pub peer: SocketAddr,
}

/// Accepts connections until shutdown, each served by its own task.
pub async fn serve<D: Disk>(listener: TcpListener, context: Arc<Context<D>>) {
    let shutdown = context.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                debug!(%peer, "accepted connection");
                let guard = shutdown.task();
                let context = context.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, context).await;
                    drop(guard);
                });
            }
            Err(error) => {
                warn!(%error, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    info!("Kafka listener stopped accepting connections");
}

async fn serve_connection<D: Disk>(stream: TcpStream, peer: SocketAddr, context: Arc<Context<D>>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let max_bytes = context.broker.config.socket_request_max_bytes;
    loop {
        let read = tokio::select! {
            biased;
            _ = context.shutdown.wait() => break,
            read = frame::read_frame(&mut reader, max_bytes) => read,
        };
        let payload = match read {
            Ok(Some(payload)) => payload.freeze(),
            Ok(None) => break,
            Err(FrameError::TooLarge { size, max }) => {
                warn!(%peer, size, max, "closing connection: request larger than socket.request.max.bytes");
                break;
            }
            Err(error) => {
                debug!(%peer, %error, "closing connection");
                break;
            }
        };
        let (response, keep_open) = process(&context, payload, peer).await;
        if let Some(response) = response {
            if let Err(error) = frame::write_frame_chunks(&mut writer, &response).await {
                debug!(%peer, %error, "writing a response failed; closing connection");
                break;
            }
        }
        if !keep_open {
            break;
        }
    }
    let _ = writer.shutdown().await;
    debug!(%peer, "connection closed");
}

/// Decodes and serves one request. Returns the response payload as chunks to write in
/// order, if there is a response, and whether the connection stays open.
async fn process<D: Disk>(context: &Context<D>, payload: Bytes, peer: SocketAddr) -> (Option<Vec<Bytes>>, bool) {
    // KIP-511: an ApiVersions request of a version this broker does not serve gets a v0
    // response with the supported list, read from the fixed prefix alone, because the
    // rest of a newer header may not parse.
    if let Ok(prefix) = codec::request_prefix(&payload) {
        let is_api_versions = prefix.api_key == ApiKey::ApiVersions as i16;
        if is_api_versions && !versions::is_supported(ApiKey::ApiVersions, prefix.api_version) {
            let response = ResponseKind::ApiVersions(versions::api_versions_response(
                ResponseError::UnsupportedVersion.code(),
            ));
            return (encode(ApiKey::ApiVersions, 0, prefix.correlation_id, &response), true);
        }
    }
    let request = match codec::decode_header(payload) {
        Ok(request) => request,
        Err(DecodeError::UnknownApiKey { prefix }) => {
            warn!(%peer, api_key = prefix.api_key, api_version = prefix.api_version, "unknown API key; responding UNSUPPORTED_VERSION");
            let response = codec::encode_unknown_api_response(prefix.correlation_id);
            return (Some(vec![response.freeze()]), true);
        }
        Err(error) => {
            warn!(%peer, %error, "closing connection: undecodable request header");
            return (None, false);
        }
    };
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;

    if !versions::is_supported(api_key, version) {
        warn!(%peer, ?api_key, version, "unsupported API version; responding UNSUPPORTED_VERSION and closing");
        let response = codec::encode_unknown_api_response(correlation_id);
        return (Some(vec![response.freeze()]), false);
    }

    let body = match codec::decode_body(api_key, version, request.body) {
        Ok(body) => body,
        Err(error) => {
            warn!(%peer, %error, "closing connection: malformed request");
            return (None, false);
        }
    };
    let request = Request {
        header: request.header,
        version,
        peer,
    };
    match dispatch(context, &request, body).await {
        Some(response) => (encode(api_key, version, correlation_id, &response), true),
        None => (None, true),
    }
}

fn encode(api_key: ApiKey, version: i16, correlation_id: i32, response: &ResponseKind) -> Option<Vec<Bytes>> {
    // A fetch response's record data goes to the socket without a copy.
    if let ResponseKind::Fetch(fetch) = response {
        if fetch_encoding::VERSIONS.contains(&version) {
            return match fetch_encoding::encode_fetch_response(version, correlation_id, fetch) {
                Ok(chunks) => Some(chunks),
                Err(error) => {
                    warn!(?api_key, version, %error, "encoding a response failed");
                    None
                }
            };
        }
    }
    match codec::encode_response(api_key, version, correlation_id, response) {
        Ok(payload) => Some(vec![payload.freeze()]),
        Err(error) => {
            warn!(?api_key, version, %error, "encoding a response failed");
            None
        }
    }
}

/// Routes a request to its handler. `None` means no response is sent (acks=0).
async fn dispatch<D: Disk>(context: &Context<D>, request: &Request, body: RequestKind) -> Option<ResponseKind> {
    let response = match body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(versions::api_versions_response(0)),
        RequestKind::Metadata(body) => ResponseKind::Metadata(metadata::metadata(context, request, body).await),
        RequestKind::Produce(body) => {
            return produce::produce(context, request, body)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(body) => ResponseKind::Fetch(fetch::fetch(context, request, body).await),
        RequestKind::ListOffsets(body) => {
            ResponseKind::ListOffsets(list_offsets::list_offsets(context, request, body).await)
        }
        RequestKind::DeleteRecords(body) => {
            ResponseKind::DeleteRecords(list_offsets::delete_records(context, body).await)
        }
        RequestKind::DescribeCluster(body) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(context, request, body))
        }
        RequestKind::CreateTopics(body) => {
            ResponseKind::CreateTopics(admin::create_topics(context, request, body).await)
        }
        RequestKind::DeleteTopics(body) => {
            ResponseKind::DeleteTopics(admin::delete_topics(context, request, body).await)
        }
        RequestKind::CreatePartitions(body) => {
            ResponseKind::CreatePartitions(admin::create_partitions(context, body).await)
        }
        RequestKind::InitProducerId(body) => ResponseKind::InitProducerId(admin::init_producer_id(context, body).await),
        RequestKind::DescribeConfigs(body) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(context, request, body))
        }
        RequestKind::AlterConfigs(body) => ResponseKind::AlterConfigs(configs::alter_configs(context, body).await),
        RequestKind::IncrementalAlterConfigs(body) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(context, body).await)
        }
        other => return groups::dispatch(context, request, other).await,
    };
    Some(response)
}
