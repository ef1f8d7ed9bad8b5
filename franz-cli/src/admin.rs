//! `franz topic`, `franz group` and `franz cluster`.

use std::collections::BTreeMap;
use std::sync::Arc;

use franz_net::client::admin::{Admin, ConfigChange, EARLIEST, LATEST};
use franz_net::client::Cluster;

use crate::consume::parse_time;

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Creates a topic.
    Create {
        topic: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(short, long)]
        partitions: Option<i32>,
        /// A topic setting as KEY=VALUE with Kafka's name, for example retention.ms=86400000. Repeatable.
        #[arg(short, long = "config")]
        configs: Vec<String>,
    },
    /// Lists topics with their partition counts.
    List {
        /// Include internal topics such as __consumer_offsets.
        #[arg(long)]
        internal: bool,
    },
    /// Shows a topic's partitions, offsets and settings that differ from the defaults.
    Describe { topic: String },
    /// Deletes a topic and all its messages.
    Delete { topic: String },
    /// Changes a topic's settings.
    AlterConfig {
        topic: String,
        /// A setting to set, as KEY=VALUE. Repeatable.
        #[arg(long = "set")]
        set: Vec<String>,
        /// A setting to return to its default. Repeatable.
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Raises a topic's partition count.
    AddPartitions {
        topic: String,
        /// The new total number of partitions.
        #[arg(short, long)]
        partitions: i32,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// Lists consumer groups and their states.
    List,
    /// Shows a group's members, assignments, committed offsets and lag.
    Describe { group: String },
    /// Moves a group's committed offsets for a topic; the group must have no members.
    ResetOffsets {
        /// The group whose offsets move.
        group: String,
        /// The topic whose partitions' offsets move.
        #[arg(short, long)]
        topic: String,
        /// To the earliest offset of each partition.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the end of each partition.
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To this offset in every partition, or the nearest offset each partition has.
        #[arg(long, group = "target")]
        to_offset: Option<i64>,
        /// To the first message at or after this time (RFC 3339 or -1h style).
        #[arg(long, group = "target", allow_hyphen_values = true)]
        to_time: Option<String>,
    },
    /// Deletes a group and its committed offsets; the group must have no members.
    Delete { group: String },
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Shows the cluster id, the controller and the brokers.
    Info,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .ok_or_else(|| format!("setting {text:?} is not KEY=VALUE"))
}

pub async fn run_topic(cluster: Arc<Cluster>, command: TopicCommand) -> Result<(), String> {
    let admin = Admin::new(cluster);
    match command {
        TopicCommand::Create {
            topic,
            partitions,
            configs,
        } => {
            let configs: BTreeMap<String, String> = configs
                .iter()
                .map(|text| parse_setting(text))
                .collect::<Result<_, _>>()?;
            admin
                .create_topic(&topic, partitions.unwrap_or(-1), &configs)
                .await
                .map_err(|error| error.to_string())?;
            println!("created topic {topic}");
        }
        TopicCommand::List { internal } => {
            let topics = admin.list_topics().await.map_err(|error| error.to_string())?;
            for topic in topics.iter().filter(|topic| internal || !topic.internal) {
                println!("{}\tpartitions {}", topic.name, topic.partitions.len());
            }
        }
        TopicCommand::Describe { topic } => {
            let info = admin
                .describe_topic(&topic)
                .await
                .map_err(|error| format!("{error}; list topics with `franz topic list`"))?;
            let starts = admin
                .list_offsets(&topic, EARLIEST)
                .await
                .map_err(|error| error.to_string())?;
            let ends = admin
                .list_offsets(&topic, LATEST)
                .await
                .map_err(|error| error.to_string())?;
            println!(
                "topic {}  id {}  partitions {}",
                info.name,
                info.id,
                info.partitions.len()
            );
            println!("partition\tleader\treplicas\tisr\tlog start\tend");
            for partition in &info.partitions {
                println!(
                    "{}\t{}\t{:?}\t{:?}\t{}\t{}",
                    partition.index,
                    partition.leader,
                    partition.replicas,
                    partition.isr,
                    starts.get(&partition.index).copied().unwrap_or(-1),
                    ends.get(&partition.index).copied().unwrap_or(-1)
                );
            }
            let configs = admin
                .describe_topic_configs(&topic)
                .await
                .map_err(|error| error.to_string())?;
            let overrides: Vec<_> = configs.iter().filter(|config| config.is_override).collect();
            if !overrides.is_empty() {
                println!("settings:");
                for config in overrides {
                    println!("  {}={}", config.name, config.value.as_deref().unwrap_or(""));
                }
            }
        }
        TopicCommand::Delete { topic } => {
            admin.delete_topic(&topic).await.map_err(|error| error.to_string())?;
            println!("deleted topic {topic}");
        }
        TopicCommand::AlterConfig { topic, set, delete } => {
            let mut changes = Vec::new();
            for text in &set {
                let (key, value) = parse_setting(text)?;
                changes.push(ConfigChange::Set(key, value));
            }
            changes.extend(delete.into_iter().map(ConfigChange::Delete));
            if changes.is_empty() {
                return Err("nothing to change; pass --set KEY=VALUE or --delete KEY".to_string());
            }
            admin
                .alter_topic_configs(&topic, &changes)
                .await
                .map_err(|error| error.to_string())?;
            println!("changed {} setting(s) of {topic}", changes.len());
        }
        TopicCommand::AddPartitions { topic, partitions } => {
            admin
                .create_partitions(&topic, partitions)
                .await
                .map_err(|error| error.to_string())?;
            println!("topic {topic} now has {partitions} partitions");
        }
    }
    Ok(())
}

pub async fn run_group(cluster: Arc<Cluster>, command: GroupCommand) -> Result<(), String> {
    let admin = Admin::new(cluster);
    match command {
        GroupCommand::List => {
            for group in admin.list_groups().await.map_err(|error| error.to_string())? {
                println!("{}\t{}\t{}", group.group_id, group.state, group.protocol_type);
            }
        }
        GroupCommand::Describe { group } => {
            let description = admin.describe_group(&group).await.map_err(|error| error.to_string())?;
            println!(
                "group {}  state {}  protocol {}",
                description.group_id, description.state, description.protocol
            );
            for member in &description.members {
                println!(
                    "member {} ({}, {})",
                    member.member_id, member.client_id, member.client_host
                );
                for (topic, partitions) in &member.assignment {
                    println!("  {topic}: {partitions:?}");
                }
            }
            let committed = admin
                .committed_offsets(&group, None)
                .await
                .map_err(|error| error.to_string())?;
            if !committed.is_empty() {
                println!("topic\tpartition\tcommitted\tend\tlag");
            }
            let mut ends_by_topic: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
            for ((topic, partition), offset) in &committed {
                if !ends_by_topic.contains_key(topic) {
                    let ends = admin.list_offsets(topic, LATEST).await.unwrap_or_default();
                    ends_by_topic.insert(topic.clone(), ends);
                }
                let end = ends_by_topic[topic].get(partition).copied();
                let lag = end.map_or("-".to_string(), |end| (end - offset).max(0).to_string());
                let end = end.map_or("-".to_string(), |end| end.to_string());
                println!("{topic}\t{partition}\t{offset}\t{end}\t{lag}");
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            to_time,
        } => {
            let targets = if to_earliest {
                admin.list_offsets(&topic, EARLIEST).await
            } else if to_latest {
                admin.list_offsets(&topic, LATEST).await
            } else if let Some(offset) = to_offset {
                // Each partition gets the offset clamped to its log start and end.
                let starts = admin.list_offsets(&topic, EARLIEST).await;
                let ends = admin.list_offsets(&topic, LATEST).await;
                starts.and_then(|starts| {
                    ends.map(|ends| {
                        ends.iter()
                            .map(|(partition, end)| {
                                let start = starts.get(partition).copied().unwrap_or(0);
                                (*partition, offset.clamp(start, (*end).max(start)))
                            })
                            .collect()
                    })
                })
            } else if let Some(time) = to_time {
                let timestamp = parse_time(&time, now_ms())?;
                let found = admin.list_offsets(&topic, timestamp).await;
                let ends = admin.list_offsets(&topic, LATEST).await;
                found.and_then(|found| {
                    ends.map(|ends| {
                        found
                            .into_iter()
                            .map(|(partition, offset)| {
                                let end = ends.get(&partition).copied().unwrap_or(0);
                                (partition, if offset < 0 { end } else { offset })
                            })
                            .collect()
                    })
                })
            } else {
                return Err("choose where to: --to-earliest, --to-latest, --to-offset N or --to-time TIME".to_string());
            };
            let targets: BTreeMap<i32, i64> = targets.map_err(|error| error.to_string())?;
            let offsets = targets
                .iter()
                .map(|(partition, offset)| ((topic.clone(), *partition), *offset))
                .collect();
            admin
                .commit_offsets(&group, &offsets)
                .await
                .map_err(|error| format!("{error}; a group with active members cannot be reset: stop them first"))?;
            for (partition, offset) in targets {
                println!("{topic}\t{partition}\t{offset}");
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await.map_err(|error| error.to_string())?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

pub async fn run_cluster(cluster: Arc<Cluster>, command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Info => {
            let admin = Admin::new(cluster.clone());
            let topics = admin.list_topics().await.map_err(|error| error.to_string())?;
            println!("cluster id  {}", cluster.cluster_id().unwrap_or_default());
            println!("controller  {}", cluster.controller());
            for (node, address) in cluster.brokers() {
                println!("broker {node}  {address}");
            }
            println!("topics      {}", topics.iter().filter(|topic| !topic.internal).count());
        }
    }
    Ok(())
}

#[allow(clippy::disallowed_methods)] // Relative times count back from the real clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
