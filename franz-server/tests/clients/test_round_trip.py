"""Round trips of 10,000 records through the broker with each client library and codec.

Every record is read back with both confluent-kafka and kafka-python, and each
partition must return exactly what was sent, in order: keys, values and headers,
including null and empty ones.
"""

import pytest

from support import (
    COMPRESSION_CODECS,
    assert_partition_contents,
    assert_stored_codec,
    consume_confluent,
    consume_kafka_python,
    create_topic,
    make_messages,
    produce_confluent,
    produce_kafka_python,
    split_by_partition,
)

MESSAGE_COUNT = 10_000
PARTITIONS = 3


def assert_readable_by_both_clients(server, topic, messages):
    expected = split_by_partition(messages, PARTITIONS)

    by_confluent = consume_confluent(server.bootstrap, topic, PARTITIONS, len(messages))
    assert_partition_contents(expected, by_confluent)

    by_kafka_python = consume_kafka_python(server.bootstrap, topic, PARTITIONS, len(messages))
    assert_partition_contents(expected, by_kafka_python)


@pytest.mark.parametrize("codec", COMPRESSION_CODECS)
def test_confluent_producer_round_trip(server, codec):
    topic = f"round-trip-confluent-{codec}"
    create_topic(server.bootstrap, topic, PARTITIONS)
    messages = make_messages(MESSAGE_COUNT, seed=1)

    delivered = produce_confluent(server.bootstrap, topic, messages, PARTITIONS, **{"compression.type": codec})

    expected_offsets = [(i % PARTITIONS, i // PARTITIONS) for i in range(MESSAGE_COUNT)]
    assert delivered == expected_offsets
    assert_stored_codec(server.data_dir, topic, PARTITIONS, codec)
    assert_readable_by_both_clients(server, topic, messages)


@pytest.mark.parametrize("codec", COMPRESSION_CODECS)
def test_kafka_python_producer_round_trip(server, codec):
    topic = f"round-trip-kafka-python-{codec}"
    create_topic(server.bootstrap, topic, PARTITIONS)
    messages = make_messages(MESSAGE_COUNT, seed=2, kafka_python_compatible=True)

    compression = None if codec == "none" else codec
    delivered = produce_kafka_python(server.bootstrap, topic, messages, PARTITIONS, compression_type=compression)

    expected_offsets = [(i % PARTITIONS, i // PARTITIONS) for i in range(MESSAGE_COUNT)]
    assert delivered == expected_offsets
    assert_stored_codec(server.data_dir, topic, PARTITIONS, codec)
    assert_readable_by_both_clients(server, topic, messages)
