"""Message sets, producers, consumers and comparisons shared by the client tests.

Every wait here has a deadline, and every helper raises (or the test asserts) when the
deadline passes, so a broker that stops responding fails the test instead of hanging it.
"""

import random
import time
from dataclasses import dataclass, field

import confluent_kafka
import kafka
from confluent_kafka.admin import AdminClient, NewTopic

COMPRESSION_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

PRODUCE_TIMEOUT_S = 30.0
CONSUME_TIMEOUT_S = 30.0
ADMIN_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Message:
    """One record as a client sees it: key, value and headers, each possibly null."""

    key: bytes | None
    value: bytes | None
    headers: tuple = field(default_factory=tuple)


@dataclass(frozen=True)
class Consumed:
    """A record read back, with where it was stored."""

    partition: int
    offset: int
    message: Message


def make_messages(count, seed, kafka_python_compatible=False):
    """Build `count` messages that cycle through the awkward cases.

    Keys and values are null, empty, short text or text with random bytes. Headers are
    absent, repeated under one key, empty, binary or null-valued. kafka-python 3.0.12
    rejects a null header value and a record whose key and value are both null, so with
    `kafka_python_compatible=True` such a header value becomes b"null" and such a
    record gets an empty value.
    """
    rng = random.Random(seed)
    messages = []
    for i in range(count):
        if i % 7 == 0:
            key = None
        elif i % 7 == 1:
            key = b""
        else:
            key = f"key-{i}".encode() + rng.randbytes(rng.randrange(0, 8))

        if i % 11 == 0:
            value = b"" if kafka_python_compatible and key is None else None
        elif i % 11 == 1:
            value = b""
        else:
            # Repeated text compresses, the random tail checks that bytes survive.
            value = f"value {i} ".encode() * rng.randrange(1, 30) + rng.randbytes(rng.randrange(0, 40))

        null_value = b"null" if kafka_python_compatible else None
        match i % 5:
            case 0:
                headers = ()
            case 1:
                headers = (("trace", null_value),)
            case 2:
                headers = (("repeated", b"first"), ("repeated", b"second"), ("repeated", null_value))
            case 3:
                headers = (("empty", b""), ("binary", rng.randbytes(16)))
            case _:
                headers = (("index", str(i).encode()), ("", b"nameless"))
        messages.append(Message(key, value, headers))
    return messages


def split_by_partition(messages, partitions):
    """Return {partition: [message, ...]} for messages sent round-robin by index."""
    expected = {partition: [] for partition in range(partitions)}
    for i, message in enumerate(messages):
        expected[i % partitions].append(message)
    return expected


def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    futures[name].result(timeout=ADMIN_TIMEOUT_S)


def produce_confluent(bootstrap, topic, messages, partitions, **config):
    """Send messages round-robin over the partitions with confluent-kafka and wait for
    every delivery. Returns [(partition, offset)] in send order and raises on any error."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, **config})
    delivered = [None] * len(messages)
    errors = []

    def on_delivery(error, record, index):
        if error is not None:
            errors.append((index, error))
        else:
            delivered[index] = (record.partition(), record.offset())

    deadline = time.monotonic() + PRODUCE_TIMEOUT_S
    for i, message in enumerate(messages):
        while True:
            try:
                producer.produce(
                    topic,
                    key=message.key,
                    value=message.value,
                    headers=list(message.headers),
                    partition=i % partitions,
                    on_delivery=lambda error, record, index=i: on_delivery(error, record, index),
                )
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the producer queue stayed full for {PRODUCE_TIMEOUT_S} s")
                producer.poll(0.05)
    remaining = producer.flush(max(0.0, deadline - time.monotonic()))

    assert remaining == 0, f"{remaining} messages not delivered within {PRODUCE_TIMEOUT_S} s"
    assert errors == [], f"delivery failed: {errors[:5]}"
    return delivered


def produce_kafka_python(bootstrap, topic, messages, partitions, **config):
    """Send messages round-robin over the partitions with kafka-python and wait for
    every delivery. Returns [(partition, offset)] in send order and raises on any error."""
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, **config)
    try:
        futures = [
            producer.send(
                topic,
                key=message.key,
                value=message.value,
                headers=list(message.headers),
                partition=i % partitions,
            )
            for i, message in enumerate(messages)
        ]
        producer.flush(timeout=PRODUCE_TIMEOUT_S)
        metadata = [future.get(timeout=PRODUCE_TIMEOUT_S) for future in futures]
    finally:
        producer.close(timeout=5)
    return [(record.partition, record.offset) for record in metadata]


def confluent_consumer(bootstrap, **config):
    # confluent-kafka requires a group id even for assigned partitions, but nothing commits.
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": "franz-client-tests-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **config,
    }
    return confluent_kafka.Consumer(settings)


def consume_confluent(bootstrap, topic, partitions, count):
    """Read `count` records from the start of every partition with confluent-kafka.

    Returns {partition: [Consumed, ...]} in offset order. Fails when `count` records do
    not arrive within the deadline or a partition contains more records than were read.
    """
    consumer = confluent_consumer(bootstrap)
    consumed = {partition: [] for partition in range(partitions)}
    total = 0
    try:
        consumer.assign(
            [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)]
        )
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while total < count and time.monotonic() < deadline:
            for record in consumer.consume(num_messages=1000, timeout=0.5):
                if record.error() is not None:
                    raise AssertionError(f"consume failed: {record.error()}")
                headers = tuple(record.headers() or ())
                message = Message(record.key(), record.value(), headers)
                consumed[record.partition()].append(Consumed(record.partition(), record.offset(), message))
                total += 1
        assert total == count, f"read {total} of {count} records within {CONSUME_TIMEOUT_S} s"

        for partition in range(partitions):
            low, high = consumer.get_watermark_offsets(
                confluent_kafka.TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S
            )
            assert (low, high) == (0, len(consumed[partition])), f"watermarks of partition {partition}"
    finally:
        consumer.close()
    return consumed


def consume_kafka_python(bootstrap, topic, partitions, count):
    """Read `count` records from the start of every partition with kafka-python.

    Returns {partition: [Consumed, ...]} in offset order, as consume_confluent does.
    """
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumed = {partition: [] for partition in range(partitions)}
    total = 0
    try:
        assigned = [kafka.TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while total < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=2000).values():
                for record in records:
                    message = Message(record.key, record.value, tuple(record.headers or ()))
                    consumed[record.partition].append(Consumed(record.partition, record.offset, message))
                    total += 1
        assert total == count, f"read {total} of {count} records within {CONSUME_TIMEOUT_S} s"

        end_offsets = consumer.end_offsets(assigned)
        for tp in assigned:
            assert end_offsets[tp] == len(consumed[tp.partition]), f"end offset of partition {tp.partition}"
    finally:
        consumer.close()
    return consumed


def assert_partition_contents(expected, consumed):
    """Assert that each partition contains exactly the expected messages, in order, at
    offsets 0, 1, 2, ... The failure names the first record that differs."""
    assert sorted(consumed) == sorted(expected), "partitions read"
    for partition, messages in expected.items():
        records = consumed[partition]
        offsets = [record.offset for record in records]
        assert offsets == list(range(len(records))), f"offsets of partition {partition} are not 0..n-1"
        for index, (want, record) in enumerate(zip(messages, records)):
            assert record.message == want, f"partition {partition}, offset {index}"
        assert len(records) == len(messages), f"record count of partition {partition}"


CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass(frozen=True)
class StoredBatch:
    """Header fields of one record batch in a partition's segment files."""

    base_offset: int
    size: int
    codec: int
    producer_id: int
    base_sequence: int
    record_count: int


def read_stored_batches(data_dir, topic, partition):
    """Parse the v2 record batch headers in the partition's .log segments, in order.

    Reads the broker's files directly (the partition folder is `<topic>-<partition>`),
    so call it only after the writes are acknowledged. A batch's size includes its
    12-byte offset and length prefix, as Kafka's max.message.bytes counts it.
    """
    batches = []
    folder = data_dir / f"{topic}-{partition}"
    for segment in sorted(folder.glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + 61 <= len(data):
            base_offset = int.from_bytes(data[position : position + 8], "big", signed=True)
            length = int.from_bytes(data[position + 8 : position + 12], "big", signed=True)
            attributes = int.from_bytes(data[position + 21 : position + 23], "big")
            producer_id = int.from_bytes(data[position + 43 : position + 51], "big", signed=True)
            base_sequence = int.from_bytes(data[position + 53 : position + 57], "big", signed=True)
            record_count = int.from_bytes(data[position + 57 : position + 61], "big", signed=True)
            batch = StoredBatch(base_offset, 12 + length, attributes & 0x07, producer_id, base_sequence, record_count)
            batches.append(batch)
            position += 12 + length
    return batches


def assert_stored_codec(data_dir, topic, partitions, codec):
    """Assert that the topic's batches are stored with the codec the client was given.

    librdkafka and kafka-python may send a small batch uncompressed when compressing it
    does not save space, so uncompressed batches are allowed as long as at least 90% of
    the records sit in batches of the given codec.
    """
    for partition in range(partitions):
        batches = read_stored_batches(data_dir, topic, partition)
        codecs = {batch.codec for batch in batches}
        assert codecs <= {CODEC_IDS[codec], CODEC_IDS["none"]}, f"codecs stored in partition {partition}"

        total = sum(batch.record_count for batch in batches)
        compressed = sum(batch.record_count for batch in batches if batch.codec == CODEC_IDS[codec])
        assert compressed >= 0.9 * total, f"records stored with {codec} in partition {partition}"
