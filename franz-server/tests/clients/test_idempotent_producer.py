"""An idempotent confluent-kafka producer: every record stored once, offsets contiguous."""

import confluent_kafka

from support import ADMIN_TIMEOUT_S, consume_confluent, create_topic, read_stored_batches

MESSAGE_COUNT = 1000


def test_idempotent_producer_stores_each_record_once(server):
    topic = "idempotent"
    create_topic(server.bootstrap, topic, partitions=1)
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": server.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Small batches, so that several requests with their own sequences are in flight.
            "batch.num.messages": 50,
            "max.in.flight.requests.per.connection": 5,
        }
    )
    offsets = {}
    errors = []

    def on_delivery(error, record):
        if error is not None:
            errors.append(error)
        else:
            offsets[int(record.value())] = record.offset()

    for i in range(MESSAGE_COUNT):
        producer.produce(topic, value=str(i).encode(), partition=0, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(ADMIN_TIMEOUT_S) == 0
    assert errors == []
    assert offsets == {i: i for i in range(MESSAGE_COUNT)}

    batches = read_stored_batches(server.data_dir, topic, 0)
    assert {batch.producer_id for batch in batches} != {-1}, "batches were stored without a producer id"
    assert len({batch.producer_id for batch in batches}) == 1
    sequences = [batch.base_sequence for batch in batches]
    expected_sequences = [batch.base_offset for batch in batches]
    assert sequences == expected_sequences, "base sequences should follow the offsets of a fresh producer"
    assert sum(batch.record_count for batch in batches) == MESSAGE_COUNT

    consumed = consume_confluent(server.bootstrap, topic, 1, MESSAGE_COUNT)[0]
    assert [record.offset for record in consumed] == list(range(MESSAGE_COUNT))
    assert [record.message.value for record in consumed] == [str(i).encode() for i in range(MESSAGE_COUNT)]
