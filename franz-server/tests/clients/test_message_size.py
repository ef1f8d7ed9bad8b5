"""max.message.bytes: a record batch of exactly the limit is appended, one byte more is
rejected with MESSAGE_TOO_LARGE.

The limit applies to the whole batch, including its 61-byte header, so each test sends
a single uncompressed record without key or headers and sizes its value so that the
batch lands exactly on the limit. The stored batch size is read back from the
partition's segment file to check that arithmetic.
"""

import confluent_kafka
import kafka
import kafka.errors

from support import ADMIN_TIMEOUT_S, consume_confluent, create_topic, read_stored_batches

MAX_MESSAGE_BYTES = 1000
BATCH_HEADER_BYTES = 61


def varint_size(value):
    """Return the encoded size of a zigzag varint, as record fields use."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def single_record_batch_size(value_size):
    """Return the size of a v2 batch holding one record with a null key, no headers and
    timestamp and offset deltas of 0."""
    body = (
        1  # attributes
        + varint_size(0)  # timestamp delta
        + varint_size(0)  # offset delta
        + varint_size(-1)  # null key
        + varint_size(value_size)
        + value_size
        + varint_size(0)  # header count
    )
    return BATCH_HEADER_BYTES + varint_size(body) + body


def value_size_for_batch(batch_size):
    for value_size in range(batch_size, 0, -1):
        if single_record_batch_size(value_size) == batch_size:
            return value_size
    raise ValueError(f"no single-record batch is exactly {batch_size} bytes")


def test_batch_size_arithmetic():
    assert single_record_batch_size(930) == 1000
    assert value_size_for_batch(1000) == 930
    assert single_record_batch_size(931) == 1001


def send_with_confluent(bootstrap, topic, value):
    """Send one record and return the delivery error, or None when it was appended."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": "none",
            "linger.ms": 0,
            # The client's own limit must not reject the record before it reaches the broker.
            "message.max.bytes": 10 * MAX_MESSAGE_BYTES,
        }
    )
    results = []
    producer.produce(topic, value=value, partition=0, on_delivery=lambda error, record: results.append(error))
    assert producer.flush(ADMIN_TIMEOUT_S) == 0
    assert len(results) == 1
    return results[0]


def test_confluent_message_at_limit(server):
    topic = "max-bytes-confluent"
    create_topic(server.bootstrap, topic, config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
    value_size = value_size_for_batch(MAX_MESSAGE_BYTES)

    accepted = send_with_confluent(server.bootstrap, topic, b"a" * value_size)
    assert accepted is None
    [stored] = read_stored_batches(server.data_dir, topic, 0)
    assert stored.size == MAX_MESSAGE_BYTES
    assert stored.record_count == 1

    rejected = send_with_confluent(server.bootstrap, topic, b"b" * (value_size + 1))
    assert rejected is not None
    assert rejected.code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE

    [record] = consume_confluent(server.bootstrap, topic, 1, 1)[0]
    assert record.message.value == b"a" * value_size


def test_kafka_python_message_at_limit(server):
    topic = "max-bytes-kafka-python"
    create_topic(server.bootstrap, topic, config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
    value_size = value_size_for_batch(MAX_MESSAGE_BYTES)
    producer = kafka.KafkaProducer(
        bootstrap_servers=server.bootstrap,
        linger_ms=0,
        retries=0,
        max_request_size=10 * MAX_MESSAGE_BYTES,
    )
    try:
        metadata = producer.send(topic, value=b"a" * value_size, partition=0).get(timeout=ADMIN_TIMEOUT_S)
        assert metadata.offset == 0
        [stored] = read_stored_batches(server.data_dir, topic, 0)
        assert stored.size == MAX_MESSAGE_BYTES

        future = producer.send(topic, value=b"b" * (value_size + 1), partition=0)
        try:
            future.get(timeout=ADMIN_TIMEOUT_S)
        except kafka.errors.MessageSizeTooLargeError:
            pass
        else:
            raise AssertionError("a batch one byte over max.message.bytes was appended")
    finally:
        producer.close(timeout=5)

    assert len(read_stored_batches(server.data_dir, topic, 0)) == 1
