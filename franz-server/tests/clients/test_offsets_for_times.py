"""offsetsForTimes (ListOffsets by timestamp) through confluent-kafka and kafka-python.

Four records carry the producer timestamps 2, 4, 6 and 8 ms. A query returns the first
offset whose timestamp is at or after the requested one, and nothing for a time later
than every record.
"""

import confluent_kafka
import kafka

from support import ADMIN_TIMEOUT_S, confluent_consumer, create_topic

TIMESTAMPS = [2, 4, 6, 8]

# Query timestamp -> offset expected, for queries that find a record.
FOUND = {0: 0, 2: 0, 3: 1, 4: 1, 7: 3, 8: 3}
LATER_THAN_EVERY_RECORD = 9


def test_confluent_offsets_for_times(server):
    topic = "times-confluent"
    create_topic(server.bootstrap, topic, partitions=1)
    producer = confluent_kafka.Producer({"bootstrap.servers": server.bootstrap})
    for timestamp in TIMESTAMPS:
        producer.produce(topic, value=f"at {timestamp}".encode(), partition=0, timestamp=timestamp)
    assert producer.flush(ADMIN_TIMEOUT_S) == 0

    consumer = confluent_consumer(server.bootstrap)
    try:
        for query, offset in FOUND.items():
            [found] = consumer.offsets_for_times(
                [confluent_kafka.TopicPartition(topic, 0, query)], timeout=ADMIN_TIMEOUT_S
            )
            assert found.error is None, f"query {query}"
            assert found.offset == offset, f"query {query}"

        [missing] = consumer.offsets_for_times(
            [confluent_kafka.TopicPartition(topic, 0, LATER_THAN_EVERY_RECORD)], timeout=ADMIN_TIMEOUT_S
        )
        assert missing.error is None
        # librdkafka reports "no such record" as offset -1 (OFFSET_END).
        assert missing.offset == confluent_kafka.OFFSET_END
    finally:
        consumer.close()


def test_kafka_python_offsets_for_times(server):
    topic = "times-kafka-python"
    create_topic(server.bootstrap, topic, partitions=1)
    producer = kafka.KafkaProducer(bootstrap_servers=server.bootstrap)
    futures = [
        producer.send(topic, value=f"at {timestamp}".encode(), partition=0, timestamp_ms=timestamp)
        for timestamp in TIMESTAMPS
    ]
    producer.flush(timeout=ADMIN_TIMEOUT_S)
    assert [future.get(timeout=ADMIN_TIMEOUT_S).offset for future in futures] == [0, 1, 2, 3]
    producer.close(timeout=5)

    consumer = kafka.KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None)
    partition = kafka.TopicPartition(topic, 0)
    try:
        for query, offset in FOUND.items():
            found = consumer.offsets_for_times({partition: query})[partition]
            assert found is not None, f"query {query}"
            assert found.offset == offset, f"query {query}"
            assert found.timestamp == TIMESTAMPS[offset], f"query {query}"

        missing = consumer.offsets_for_times({partition: LATER_THAN_EVERY_RECORD})
        assert missing == {partition: None}
    finally:
        consumer.close()
