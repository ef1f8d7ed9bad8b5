"""A consumer group of three confluent-kafka consumers on a six-partition topic.

The members share the partitions, commit what they read, and after a broker restart a
new set of members resumes exactly at the committed offsets: records past them are
read again and nothing before them is.
"""

import time

import confluent_kafka

from support import ADMIN_TIMEOUT_S, create_topic, make_messages, produce_confluent

PARTITIONS = 6
MEMBERS = 3
GROUP = "franz-client-tests-group"
GROUP_TIMEOUT_S = 30.0


def group_consumer(bootstrap):
    return confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
        }
    )


def wait_for_balanced_assignment(consumers, topic):
    """Poll every member until each owns PARTITIONS / MEMBERS partitions and together
    they own all of them. Returns the records polled meanwhile, which the caller must
    count, and fails after GROUP_TIMEOUT_S."""
    polled = []
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for consumer in consumers:
            polled += [(consumer, record) for record in consumer.consume(num_messages=500, timeout=0.1)]
        assignments = [{tp.partition for tp in consumer.assignment() if tp.topic == topic} for consumer in consumers]
        owned = set().union(*assignments)
        if owned == set(range(PARTITIONS)) and all(len(a) == PARTITIONS // MEMBERS for a in assignments):
            return polled, assignments
    raise AssertionError(f"the group did not settle on one partition set per member within {GROUP_TIMEOUT_S} s")


def consume_and_commit(consumers, count, polled=()):
    """Poll the members round-robin until `count` records arrived, committing each
    member's records synchronously after each poll. Returns {(partition, offset): value}
    and fails on a record seen twice or on the deadline."""
    seen = {}

    def take(consumer, records):
        for record in records:
            assert record.error() is None, f"consume failed: {record.error()}"
            position = (record.partition(), record.offset())
            assert position not in seen, f"record at partition {position[0]} offset {position[1]} read twice"
            seen[position] = record.value()
        if records:
            consumer.commit(asynchronous=False)

    pending = {}
    for consumer, record in polled:
        pending.setdefault(consumer, []).append(record)
    for consumer, records in pending.items():
        take(consumer, records)

    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while len(seen) < count and time.monotonic() < deadline:
        for consumer in consumers:
            take(consumer, consumer.consume(num_messages=500, timeout=0.1))
    assert len(seen) == count, f"read {len(seen)} of {count} records within {GROUP_TIMEOUT_S} s"
    return seen


def consume_and_commit_partial(consumers, count, commit_offset, topic):
    """Read `count` records without committing them as they arrive, then have each member
    commit `commit_offset` for each partition it owns. Returns the records read."""
    seen = {}
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while len(seen) < count and time.monotonic() < deadline:
        for consumer in consumers:
            for record in consumer.consume(num_messages=500, timeout=0.1):
                assert record.error() is None, f"consume failed: {record.error()}"
                position = (record.partition(), record.offset())
                assert position not in seen, f"record at partition {position[0]} offset {position[1]} read twice"
                seen[position] = record.value()
    assert len(seen) == count, f"read {len(seen)} of {count} records within {GROUP_TIMEOUT_S} s"

    for consumer in consumers:
        owned = [tp.partition for tp in consumer.assignment() if tp.topic == topic]
        offsets = [confluent_kafka.TopicPartition(topic, p, commit_offset) for p in owned]
        consumer.commit(offsets=offsets, asynchronous=False)
    return seen


def drain_for_extra_records(consumers, seconds=2.0):
    """Poll for a short, fixed time and return any records that arrive."""
    extra = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for consumer in consumers:
            extra += [(record.partition(), record.offset()) for record in consumer.consume(num_messages=500, timeout=0.1)]
    return extra


def committed_offsets(consumer, topic):
    partitions = [confluent_kafka.TopicPartition(topic, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=ADMIN_TIMEOUT_S)}


def close_all(consumers):
    for consumer in consumers:
        consumer.close()


def expected_positions(messages, first_offsets):
    """Return {(partition, offset): value} of messages sent round-robin, starting at
    `first_offsets[partition]` in each partition."""
    positions = {}
    next_offsets = dict(first_offsets)
    for i, message in enumerate(messages):
        partition = i % PARTITIONS
        positions[(partition, next_offsets[partition])] = message.value
        next_offsets[partition] += 1
    return positions


def test_group_shares_partitions_and_resumes_after_restart(server):
    topic = "group-resume"
    create_topic(server.bootstrap, topic, PARTITIONS)
    first = make_messages(3000, seed=10)

    consumers = [group_consumer(server.bootstrap) for _ in range(MEMBERS)]
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        polled, assignments = wait_for_balanced_assignment(consumers, topic)
        assert polled == [], "the topic was empty, so nothing should have been read yet"

        produce_confluent(server.bootstrap, topic, first, PARTITIONS)
        seen = consume_and_commit(consumers, len(first))
        assert seen == expected_positions(first, {p: 0 for p in range(PARTITIONS)})

        for consumer, owned in zip(consumers, assignments):
            assert {tp.partition for tp in consumer.assignment()} == owned, "the assignment changed while reading"
        assert drain_for_extra_records(consumers) == []

        # Commit only up to the middle of a second batch, so its tail must be read again.
        second = make_messages(600, seed=11)
        produce_confluent(server.bootstrap, topic, second, PARTITIONS)
        per_partition = len(first) // PARTITIONS
        half = len(second) // PARTITIONS // 2
        second_seen = consume_and_commit_partial(consumers, len(second), per_partition + half, topic)
        assert second_seen == expected_positions(second, {p: per_partition for p in range(PARTITIONS)})
        committed = committed_offsets(consumers[0], topic)
        assert committed == {p: per_partition + half for p in range(PARTITIONS)}
    finally:
        close_all(consumers)

    server.restart()

    third = make_messages(600, seed=12)
    produce_confluent(server.bootstrap, topic, third, PARTITIONS)
    resumed = [group_consumer(server.bootstrap) for _ in range(MEMBERS)]
    try:
        assert committed_offsets(resumed[0], topic) == {p: per_partition + half for p in range(PARTITIONS)}
        for consumer in resumed:
            consumer.subscribe([topic])

        second_tail = [message for i, message in enumerate(second) if i // PARTITIONS >= half]
        expected = {}
        expected.update(expected_positions(second_tail, {p: per_partition + half for p in range(PARTITIONS)}))
        per_partition_second = len(second) // PARTITIONS
        expected.update(expected_positions(third, {p: per_partition + per_partition_second for p in range(PARTITIONS)}))

        seen = consume_and_commit(resumed, len(expected))
        assert seen == expected
        assert drain_for_extra_records(resumed) == []
    finally:
        close_all(resumed)
