"""Topic administration through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient: create, list, describe, configure, grow and delete topics, and the
errors for an existing topic, an invalid name and an impossible replication factor.
"""

import confluent_kafka
import kafka.errors
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from support import ADMIN_TIMEOUT_S

RETENTION_MS = "3600000"
ALTERED_RETENTION_MS = "7200000"
MAX_MESSAGE_BYTES = "2000"


def confluent_result(futures, name):
    return futures[name].result(timeout=ADMIN_TIMEOUT_S)


def confluent_topic_configs(admin, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource], request_timeout=ADMIN_TIMEOUT_S)[resource].result(
        timeout=ADMIN_TIMEOUT_S
    )


def confluent_describe_topic(admin, topic):
    [future] = admin.describe_topics(
        confluent_kafka.TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S
    ).values()
    return future.result(timeout=ADMIN_TIMEOUT_S)


def confluent_error_code(admin, topic):
    """Create the topic and return the error code the create fails with."""
    futures = admin.create_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        confluent_result(futures, topic.topic)
    return raised.value.args[0].code()


def test_confluent_admin_topic_lifecycle(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    topic = "admin-confluent"
    configs = {"retention.ms": RETENTION_MS, "max.message.bytes": MAX_MESSAGE_BYTES}

    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1, config=configs)],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    assert confluent_result(futures, topic) is None

    description = confluent_describe_topic(admin, topic)
    assert description.name == topic
    assert [partition.id for partition in description.partitions] == [0, 1, 2]
    assert [partition.leader.id for partition in description.partitions] == [1, 1, 1]
    assert [[replica.id for replica in partition.replicas] for partition in description.partitions] == [[1]] * 3

    described = confluent_topic_configs(admin, topic)
    assert described["retention.ms"].value == RETENTION_MS
    assert described["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert described["max.message.bytes"].value == MAX_MESSAGE_BYTES
    assert described["cleanup.policy"].value == "delete"
    assert described["cleanup.policy"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    alteration = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", ALTERED_RETENTION_MS, incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    altered = admin.incremental_alter_configs([alteration], request_timeout=ADMIN_TIMEOUT_S)
    assert altered[alteration].result(timeout=ADMIN_TIMEOUT_S) is None
    described = confluent_topic_configs(admin, topic)
    assert described["retention.ms"].value == ALTERED_RETENTION_MS
    assert described["max.message.bytes"].value == "1048588"
    assert described["max.message.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    grown = admin.create_partitions([NewPartitions(topic, 5)], request_timeout=ADMIN_TIMEOUT_S)
    assert confluent_result(grown, topic) is None
    description = confluent_describe_topic(admin, topic)
    assert [partition.id for partition in description.partitions] == [0, 1, 2, 3, 4]

    deleted = admin.delete_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
    assert confluent_result(deleted, topic) is None
    with pytest.raises(KafkaException) as raised:
        confluent_describe_topic(admin, topic)
    assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_admin_list_topics(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    topics = ["admin-list-a", "admin-list-b"]
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1) for name in topics], request_timeout=ADMIN_TIMEOUT_S
    )
    for name in topics:
        assert confluent_result(futures, name) is None

    metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S)

    assert sorted(name for name in metadata.topics if not name.startswith("__")) == topics
    for name in topics:
        assert sorted(metadata.topics[name].partitions) == [0, 1]
        assert {partition.leader for partition in metadata.topics[name].partitions.values()} == {1}
    assert sorted(metadata.brokers) == [1]
    assert str(metadata.brokers[1]) == f"{server.bootstrap}/1"


def test_confluent_admin_errors(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    existing = NewTopic("admin-confluent-existing", num_partitions=1, replication_factor=1)
    assert confluent_result(admin.create_topics([existing]), existing.topic) is None

    assert confluent_error_code(admin, existing) == KafkaError.TOPIC_ALREADY_EXISTS
    invalid_name = NewTopic("bad name!", num_partitions=1, replication_factor=1)
    assert confluent_error_code(admin, invalid_name) == KafkaError.TOPIC_EXCEPTION
    three_replicas = NewTopic("admin-confluent-replicated", num_partitions=1, replication_factor=3)
    assert confluent_error_code(admin, three_replicas) == KafkaError.INVALID_REPLICATION_FACTOR

    with pytest.raises(KafkaException) as raised:
        confluent_describe_topic(admin, three_replicas.topic)
    assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_kafka_python_admin_topic_lifecycle(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    topic = "admin-kafka-python"
    try:
        created = admin.create_topics(
            {
                topic: {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "configs": {"retention.ms": RETENTION_MS, "max.message.bytes": MAX_MESSAGE_BYTES},
                }
            }
        )
        assert [(result["name"], result["error_code"]) for result in created["topics"]] == [(topic, 0)]

        assert topic in admin.list_topics()
        [description] = admin.describe_topics([topic])
        assert description["name"] == topic
        assert description["error_code"] == 0
        assert sorted(partition["partition_index"] for partition in description["partitions"]) == [0, 1, 2]

        resource = KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic)
        described = admin.describe_configs([resource])["topic"][topic]
        assert sorted(described) == ["max.message.bytes", "retention.ms"], "topic overrides"
        assert described["retention.ms"]["value"] == RETENTION_MS
        assert described["max.message.bytes"]["value"] == MAX_MESSAGE_BYTES

        alteration = KafkaPythonConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"retention.ms": ALTERED_RETENTION_MS}
        )
        admin.alter_configs([alteration], incremental=True)
        described = admin.describe_configs([KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic)])
        assert described["topic"][topic]["retention.ms"]["value"] == ALTERED_RETENTION_MS
        assert described["topic"][topic]["max.message.bytes"]["value"] == MAX_MESSAGE_BYTES

        admin.create_partitions({topic: 5})
        [description] = admin.describe_topics([topic])
        assert sorted(partition["partition_index"] for partition in description["partitions"]) == [0, 1, 2, 3, 4]

        admin.delete_topics([topic])
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_kafka_python_admin_errors(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    existing = "admin-kafka-python-existing"
    try:
        admin.create_topics({existing: {"num_partitions": 1, "replication_factor": 1}})

        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            admin.create_topics({existing: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(kafka.errors.InvalidTopicError):
            admin.create_topics({"bad name!": {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(kafka.errors.InvalidReplicationFactorError):
            admin.create_topics({"admin-kafka-python-replicated": {"num_partitions": 1, "replication_factor": 3}})

        assert "admin-kafka-python-replicated" not in admin.list_topics()
    finally:
        admin.close()
