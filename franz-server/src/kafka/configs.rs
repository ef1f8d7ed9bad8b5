//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics. Broker settings
//! can be described but only changed in the server configuration.

use std::collections::BTreeMap;

use franz_core::Disk;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::topic_error_code;
use super::{Context, Request};
use crate::topic_config::{ConfigType, TOPIC_SETTINGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs source of a read-only broker setting.
const SOURCE_STATIC_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub fn describe_configs<D: Disk>(
    context: &Context<D>,
    request: &Request,
    body: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = body
        .resources
        .into_iter()
        .map(|resource| {
            // A null list requests every setting. So does an empty one, which some
            // clients send by default.
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .filter(|keys| !keys.is_empty())
                .map(|keys| keys.iter().map(|key| key.as_str().to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|keys| keys.iter().any(|key| key == name));
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = context.broker.topic(resource.resource_name.as_str()) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(text(format!(
                                "topic {:?} does not exist",
                                resource.resource_name.as_str()
                            ))));
                    };
                    let configs = TOPIC_SETTINGS
                        .iter()
                        .filter(|setting| wanted(setting.name))
                        .map(|setting| {
                            let (value, source) = topic.configs.value(setting);
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(text(setting.name))
                                .with_value(Some(text(value)))
                                .with_config_source(source as i8)
                                .with_config_type(setting.config_type as i8);
                            if body.include_documentation {
                                entry = entry.with_documentation(Some(text(setting.documentation)));
                            }
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let configs = broker_settings(context)
                        .into_iter()
                        .filter(|(name, _, _)| wanted(name))
                        .map(|(name, value, config_type)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(text(name))
                                .with_value(Some(text(value)))
                                .with_read_only(true)
                                .with_config_source(SOURCE_STATIC_BROKER)
                                .with_config_type(config_type as i8)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(format!(
                        "resource type {other} is not supported (version {})",
                        request.version
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Broker settings that DescribeConfigs reports, all read-only.
fn broker_settings<D: Disk>(context: &Context<D>) -> Vec<(&'static str, String, ConfigType)> {
    let config = &context.broker.config;
    vec![
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            ConfigType::String,
        ),
        ("broker.id", config.node_id.to_string(), ConfigType::Int),
        ("log.dirs", config.data_dir.display().to_string(), ConfigType::String),
        ("num.partitions", config.num_partitions.to_string(), ConfigType::Int),
        (
            "offsets.topic.num.partitions",
            config.offsets_topic_num_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "socket.request.max.bytes",
            config.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
    ]
}

/// An error for one resource of an alter request.
struct AlterError {
    code: ResponseError,
    message: String,
}

async fn alter_topic<D: Disk>(
    context: &Context<D>,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), AlterError> {
    if resource_type != RESOURCE_TOPIC {
        return Err(AlterError {
            code: ResponseError::InvalidRequest,
            message: "only topic settings can be changed; broker settings come from the server configuration"
                .to_string(),
        });
    }
    let Some(topic) = context.broker.topic(name) else {
        return Err(AlterError {
            code: ResponseError::UnknownTopicOrPartition,
            message: format!("topic {name:?} does not exist"),
        });
    };
    let mut overrides = topic.configs.overrides.clone();
    change(&mut overrides).map_err(|message| AlterError {
        code: ResponseError::InvalidConfig,
        message,
    })?;
    context
        .broker
        .set_topic_configs(name, overrides, validate_only)
        .await
        .map_err(|error| AlterError {
            code: topic_error_code(&error),
            message: error.to_string(),
        })
}

/// AlterConfigs replaces all of a topic's settings with the ones given.
pub async fn alter_configs<D: Disk>(context: &Context<D>, body: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in body.resources {
        let replacement: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|config| {
                let value = config.value.as_ref()?;
                Some((config.name.as_str().to_string(), value.as_str().to_string()))
            })
            .collect();
        let outcome = alter_topic(
            context,
            resource.resource_type,
            resource.resource_name.as_str(),
            |overrides| {
                *overrides = replacement;
                Ok(())
            },
            body.validate_only,
        )
        .await;
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err(error) => response
                .with_error_code(error.code.code())
                .with_error_message(Some(text(error.message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs sets, deletes, appends to or subtracts from single settings.
pub async fn incremental_alter_configs<D: Disk>(
    context: &Context<D>,
    body: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in body.resources {
        let changes: Vec<(String, i8, Option<String>)> = resource
            .configs
            .iter()
            .map(|config| {
                (
                    config.name.as_str().to_string(),
                    config.config_operation,
                    config.value.as_ref().map(|value| value.as_str().to_string()),
                )
            })
            .collect();
        let outcome = alter_topic(
            context,
            resource.resource_type,
            resource.resource_name.as_str(),
            |overrides| apply_incremental(overrides, changes),
            body.validate_only,
        )
        .await;
        let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err(error) => response
                .with_error_code(error.code.code())
                .with_error_message(Some(text(error.message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn apply_incremental(
    overrides: &mut BTreeMap<String, String>,
    changes: Vec<(String, i8, Option<String>)>,
) -> Result<(), String> {
    for (name, operation, value) in changes {
        let setting = TOPIC_SETTINGS
            .iter()
            .find(|setting| setting.name == name)
            .ok_or_else(|| format!("unknown topic config {name:?}"))?;
        match operation {
            OP_SET => {
                let value = value.ok_or_else(|| format!("SET of {name} needs a value"))?;
                overrides.insert(name, value);
            }
            OP_DELETE => {
                overrides.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if setting.config_type != ConfigType::List {
                    return Err(format!("{name} is not a list; APPEND and SUBTRACT apply to lists only"));
                }
                let value = value.ok_or_else(|| format!("APPEND or SUBTRACT of {name} needs a value"))?;
                let current = overrides
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| setting.default.to_string());
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_string)
                    .collect();
                for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
                    if operation == OP_APPEND {
                        if !items.iter().any(|existing| existing == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|existing| existing != item);
                    }
                }
                overrides.insert(name, items.join(","));
            }
            other => return Err(format!("unknown config operation {other} for {name}")),
        }
    }
    Ok(())
}
