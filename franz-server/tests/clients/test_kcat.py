"""kcat against the broker: produce with keys, -H headers and each -z codec, and consume
records written by confluent-kafka as JSON.

kcat reads one message per input line, so these message sets are text only.
"""

import json
import subprocess

import pytest

from support import (
    COMPRESSION_CODECS,
    Message,
    assert_partition_contents,
    assert_stored_codec,
    consume_confluent,
    create_topic,
    produce_confluent,
)

KCAT_TIMEOUT_S = 30.0

# Every message of one kcat invocation gets the same -H headers: a repeated key, a
# null value (a name without "=") and an empty value.
KCAT_HEADER_ARGS = ["-H", "repeated=first", "-H", "repeated=second", "-H", "nullvalue", "-H", "empty="]
KCAT_HEADERS = (("repeated", b"first"), ("repeated", b"second"), ("nullvalue", None), ("empty", b""))


def run_kcat(arguments, input_bytes=None):
    result = subprocess.run(
        ["kcat", *arguments], input=input_bytes, capture_output=True, timeout=KCAT_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, f"kcat {' '.join(arguments)} failed: {result.stderr.decode(errors='replace')}"
    return result


def kcat_produce(bootstrap, topic, lines, codec, null_empty):
    """Send one message per line to partition 0, keys split off at the first ':'.

    With `null_empty` kcat sends an empty key or value as null (-Z).
    """
    arguments = ["-b", bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", *KCAT_HEADER_ARGS]
    if codec != "none":
        arguments += ["-z", codec]
    if null_empty:
        arguments.append("-Z")
    run_kcat(arguments, input_bytes=b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("codec", COMPRESSION_CODECS)
def test_kcat_producer_round_trip(server, codec):
    topic = f"kcat-produce-{codec}"
    create_topic(server.bootstrap, topic, partitions=1)
    lines = [f"key-{i}:value {i} ".encode() * (1 + i % 9) for i in range(500)]
    lines += [b":empty key", b"empty value:", b":"]
    null_lines = [b":null key", b"null value:", b":"]

    kcat_produce(server.bootstrap, topic, lines, codec, null_empty=False)
    kcat_produce(server.bootstrap, topic, null_lines, codec, null_empty=True)

    expected = []
    for line in lines:
        key, value = line.split(b":", 1)
        expected.append(Message(key, value, KCAT_HEADERS))
    expected += [
        Message(None, b"null key", KCAT_HEADERS),
        Message(b"null value", None, KCAT_HEADERS),
        Message(None, None, KCAT_HEADERS),
    ]
    # Debian's kcat 1.7.1 bundles librdkafka 2.0.2, which sends gzip, snappy and lz4
    # uncompressed unless ApiVersions lists Produce v0, so this checks that the broker
    # lists it.
    assert_stored_codec(server.data_dir, topic, 1, codec)
    consumed = consume_confluent(server.bootstrap, topic, 1, len(expected))
    assert_partition_contents({0: expected}, consumed)


def decode_or_none(text):
    return None if text is None else text.encode()


def test_kcat_consumer_reads_confluent_records(server):
    topic = "kcat-consume"
    partitions = 2
    create_topic(server.bootstrap, topic, partitions)
    messages = []
    for i in range(300):
        key = f"key-{i}".encode()
        if i % 10 == 0:
            key = None
        elif i % 10 == 1:
            key = b""
        value = f"value {i}".encode()
        if i % 10 == 2:
            value = None
        elif i % 10 == 3:
            value = b""
        headers = (("repeated", b"a"), ("repeated", None), ("index", str(i).encode())) if i % 2 else ()
        messages.append(Message(key, value, headers))
    produce_confluent(server.bootstrap, topic, messages, partitions, **{"compression.type": "lz4"})

    # -Z keeps null and empty apart: null keys and values print as JSON null.
    output = run_kcat(["-b", server.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-Z"]).stdout
    consumed = {partition: [] for partition in range(partitions)}
    for line in output.decode().splitlines():
        record = json.loads(line)
        flat = record.get("headers") or []
        headers = tuple((flat[j], decode_or_none(flat[j + 1])) for j in range(0, len(flat), 2))
        message = Message(decode_or_none(record["key"]), decode_or_none(record["payload"]), headers)
        consumed[record["partition"]].append((record["offset"], message))

    for partition in range(partitions):
        expected = messages[partition::partitions]
        records = consumed[partition]
        assert [offset for offset, _ in records] == list(range(len(expected))), f"offsets of partition {partition}"
        assert [message for _, message in records] == expected, f"records of partition {partition}"
