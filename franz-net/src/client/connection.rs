//! One connection to one broker: ApiVersions negotiation, then one request at a time.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::net::TcpStream;

use super::error::{ClientError, Result};
use crate::frame;

/// Largest response frame the client reads, in bytes.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// A connection to one broker. Requests are sent one at a time; the caller serializes
/// access (the cluster keeps each connection behind a mutex).
pub struct Connection {
    address: String,
    stream: TcpStream,
    client_id: String,
    next_correlation_id: i32,
    /// Versions the broker advertised, by API key.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and learns the broker's API versions.
    pub async fn connect(address: &str, client_id: &str) -> Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| ClientError::Connect {
                address: address.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            address: address.to_string(),
            stream,
            client_id: client_id.to_string(),
            next_correlation_id: 0,
            versions: BTreeMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("franz"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: ApiVersionsResponse = connection.send_version(request, 3).await?;
        if response.error_code != 0 {
            return Err(ClientError::broker("ApiVersions", response.error_code, None));
        }
        connection.versions = response
            .api_keys
            .iter()
            .map(|key| (key.api_key, (key.min_version, key.max_version)))
            .collect();
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Returns the highest version of `R` that both sides speak, the client speaking
    /// `min..=max`.
    pub fn version_for<R: Request>(&self, min: i16, max: i16) -> Result<i16> {
        let unsupported = || ClientError::UnsupportedApi {
            address: self.address.clone(),
            api: api_name(R::KEY),
            min,
            max,
        };
        let (broker_min, broker_max) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let version = max.min(broker_max).min(R::VERSIONS.max);
        if version < min.max(broker_min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` at the highest common version within `min..=max`.
    pub async fn send<R: Request>(&mut self, request: R, min: i16, max: i16) -> Result<(R::Response, i16)> {
        let version = self.version_for::<R>(min, max)?;
        let response = self.send_version(request, version).await?;
        Ok((response, version))
    }

    /// Sends `request` without reading a response, for a Produce with acks=0.
    pub async fn send_without_response<R: Request>(&mut self, request: R, min: i16, max: i16) -> Result<()> {
        let version = self.version_for::<R>(min, max)?;
        self.write_request(&request, version).await?;
        Ok(())
    }

    async fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let api = api_name(R::KEY);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut payload = BytesMut::new();
        let encoded = header
            .encode(&mut payload, R::header_version(version))
            .and_then(|()| request.encode(&mut payload, version));
        encoded
            .map_err(|error| ClientError::InvalidArgument(format!("encoding {api} v{version} failed: {error:#}")))?;
        let io_error = |source| ClientError::Io {
            address: self.address.clone(),
            source,
        };
        frame::write_frame(&mut self.stream, &payload).await.map_err(io_error)?;
        Ok(correlation_id)
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn send_version<R: Request>(&mut self, request: R, version: i16) -> Result<R::Response> {
        let api = api_name(R::KEY);
        let correlation_id = self.write_request(&request, version).await?;
        let response = frame::read_frame(&mut self.stream, MAX_RESPONSE_BYTES).await;
        let protocol_error = |message: String| ClientError::Protocol {
            address: self.address.clone(),
            api,
            message,
        };
        let mut response = match response {
            Ok(Some(payload)) => payload.freeze(),
            Ok(None) => {
                return Err(ClientError::Io {
                    address: self.address.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the broker closed the connection"),
                })
            }
            Err(error) => return Err(protocol_error(error.to_string())),
        };
        let header = ResponseHeader::decode(&mut response, <R::Response as HeaderVersion>::header_version(version))
            .map_err(|error| protocol_error(format!("{error:#}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol_error(format!(
                "correlation id {} does not match the request's {correlation_id}",
                header.correlation_id
            )));
        }
        let body = R::Response::decode(&mut response, version).map_err(|error| protocol_error(format!("{error:#}")))?;
        if response.has_remaining() {
            return Err(protocol_error(format!(
                "{} bytes left after the response",
                response.remaining()
            )));
        }
        Ok(body)
    }
}

/// Returns the name of an API key, for messages.
pub fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Produce) => "Produce",
        Ok(ApiKey::Fetch) => "Fetch",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::CreateTopics) => "CreateTopics",
        Ok(ApiKey::DeleteTopics) => "DeleteTopics",
        Ok(ApiKey::DeleteRecords) => "DeleteRecords",
        Ok(ApiKey::InitProducerId) => "InitProducerId",
        Ok(ApiKey::DescribeConfigs) => "DescribeConfigs",
        Ok(ApiKey::AlterConfigs) => "AlterConfigs",
        Ok(ApiKey::CreatePartitions) => "CreatePartitions",
        Ok(ApiKey::DeleteGroups) => "DeleteGroups",
        Ok(ApiKey::IncrementalAlterConfigs) => "IncrementalAlterConfigs",
        Ok(ApiKey::OffsetDelete) => "OffsetDelete",
        Ok(ApiKey::DescribeCluster) => "DescribeCluster",
        _ => "an API",
    }
}
