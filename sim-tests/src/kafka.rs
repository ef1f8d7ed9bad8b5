//! A minimal Kafka client for simulation tests: one connection, one request at a time,
//! encoded and decoded with kafka-protocol.

use std::io;

use bytes::{Buf, BytesMut};
use franz_net::frame;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::net::TcpStream;

pub struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Connection {
    pub async fn connect(address: &str) -> io::Result<Connection> {
        Ok(Connection {
            stream: TcpStream::connect(address).await?,
            next_correlation_id: 1,
        })
    }

    /// Sends one request and returns its decoded response. An error means the outcome is
    /// unknown: the broker may or may not have served the request.
    pub async fn send(&mut self, api_key: ApiKey, version: i16, request: &RequestKind) -> io::Result<ResponseKind> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sim-client")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, api_key.request_header_version(version))
            .map_err(invalid)?;
        request.encode(&mut payload, version).map_err(invalid)?;
        frame::write_frame(&mut self.stream, &payload).await?;

        let response = frame::read_frame(&mut self.stream, 64 * 1024 * 1024)
            .await
            .map_err(|error| io::Error::other(error.to_string()))?;
        let mut response = response
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the broker closed the connection"))?
            .freeze();
        let header =
            ResponseHeader::decode(&mut response, api_key.response_header_version(version)).map_err(invalid)?;
        if header.correlation_id != correlation_id {
            return Err(invalid(format!(
                "response correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        let body = ResponseKind::decode(api_key, &mut response, version).map_err(invalid)?;
        if response.has_remaining() {
            return Err(invalid(format!(
                "{} bytes left after the response",
                response.remaining()
            )));
        }
        Ok(body)
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
