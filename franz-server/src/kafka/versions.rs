//! The Kafka APIs and versions this broker implements, which ApiVersions advertises.
//!
//! Each range is what the handlers really serve, within what kafka-protocol 0.18 encodes.
//! Produce stops at v12 and Fetch at v12 because later versions name topics by id only.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// `(API, lowest version, highest version)` for every served API.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
];

/// Produce is advertised from v0 although only v3 and later are served, as Kafka 4.0 does
/// (KAFKA-18659). Older librdkafka releases, such as the 2.0.2 inside Debian 12's kcat,
/// compress with gzip, snappy or lz4 only when the broker lists Produce v0. Clients use
/// the highest common version, so none sends v0-v2 because of this, and a request that
/// does gets UNSUPPORTED_VERSION.
const PRODUCE_ADVERTISED_MIN: i16 = 0;

/// Returns whether `version` of `api_key` is served.
pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(key, min, max)| *key == api_key && (*min..=*max).contains(&version))
}

/// Builds the ApiVersions response body listing every served API.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let min = if *key == ApiKey::Produce {
                PRODUCE_ADVERTISED_MIN
            } else {
                *min
            };
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
