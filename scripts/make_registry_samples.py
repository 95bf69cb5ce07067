#!/usr/bin/env python3
"""Writes the schema-registry MSK sample events, encoded by the real encoders.

    .venv/bin/pip install -c scripts/tools.txt fastavro protobuf
    .venv/bin/python scripts/make_registry_samples.py

Avro bodies come from fastavro (the encoder Python producers use) against the schema in
schemas/registry.json; Protobuf bodies from Google's protobuf package, for the message
plant.SensorReading whose descriptor set this script writes into registry.json (a Confluent
Protobuf value carries the message-index list, here the single byte 0: the first message); the Confluent header is magic byte 0 and the big-endian schema id; the
AWS Glue header is version byte 3, a compression byte (0 none, 5 zlib) and the 16-byte schema
version UUID, with zlib bodies compressed by Python's zlib. Output is deterministic:

- events/ingest/msk-registry.json: one record per format and wire format, all good: Avro
  (Confluent, Confluent with entity_id mapped from the record key, Glue, Glue zlib, plain on
  a registered topic, and as the event source mapping
  hands it over when it decoded the value to JSON itself: JSON bytes with
  valueSchemaMetadata), JSON Schema (Confluent, Glue), Protobuf (Confluent, Glue, plain);
- events/ingest/msk-registry-bad.json: an unknown schema id, Avro bytes cut short, a JSON
  value without a mapped field, and one good record beside them.
"""

import base64
import io
import json
import struct
import uuid
import zlib
from pathlib import Path

import fastavro
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_PATH = ROOT / "schemas" / "registry.json"
REGISTRY = json.loads(REGISTRY_PATH.read_text())

# plant.SensorReading, as protoc would describe sensor.proto:
#   message SensorReading { string reading_id = 1; string sensor = 2; double celsius = 3;
#                           int64 at_seconds = 4; string line = 5; }
F = descriptor_pb2.FieldDescriptorProto
PROTO_FILE = descriptor_pb2.FileDescriptorProto(name="plant/sensor.proto", package="plant", syntax="proto3")
_message = PROTO_FILE.message_type.add(name="SensorReading")
for number, (field, kind) in enumerate(
    [("reading_id", F.TYPE_STRING), ("sensor", F.TYPE_STRING), ("celsius", F.TYPE_DOUBLE),
     ("at_seconds", F.TYPE_INT64), ("line", F.TYPE_STRING)],
    start=1,
):
    _message.field.add(name=field, number=number, type=kind, label=F.LABEL_OPTIONAL)
_pool = descriptor_pool.DescriptorPool()
_pool.Add(PROTO_FILE)
SensorReading = message_factory.GetMessageClass(_pool.FindMessageTypeByName("plant.SensorReading"))
PROTO = next(s for s in REGISTRY["schemas"] if s["name"] == "sensor-reading-proto-v1")
PROTO["descriptor_set"] = base64.b64encode(
    descriptor_pb2.FileDescriptorSet(file=[PROTO_FILE]).SerializeToString()
).decode()
GLUE_PROTO = uuid.UUID(PROTO["glue_version_id"]).bytes
SENSOR_JSON = next(s for s in REGISTRY["schemas"] if s["name"] == "sensor-reading-v1")
GLUE_JSON = uuid.UUID(SENSOR_JSON["glue_version_id"]).bytes
PAYMENT = next(s for s in REGISTRY["schemas"] if s["name"] == "payment-authorized-v1")
AVRO = fastavro.parse_schema(PAYMENT["schema"])
CONFLUENT_PAYMENT = PAYMENT["confluent_id"]
GLUE_PAYMENT = uuid.UUID(PAYMENT["glue_version_id"]).bytes
# The same Avro record, registered again with a mapping that takes entity_id from the record
# key (a producer keying by account): written here so the two entries cannot drift apart.
KEYED = {
    "name": "payment-authorized-keyed-v1",
    "format": "avro",
    "confluent_id": 104,
    "schema": PAYMENT["schema"],
    "mapping": {**PAYMENT["mapping"], "entity_id": {"key": ""}},
}
REGISTRY["schemas"] = [s for s in REGISTRY["schemas"] if s["name"] != KEYED["name"]] + [KEYED]
REGISTRY_PATH.write_text(json.dumps(REGISTRY, indent=2) + "\n")
CONFLUENT_SENSOR = 102
BASE_MS = 1761984000000  # 2025-11-01T08:00:00Z


def avro(record):
    out = io.BytesIO()
    fastavro.schemaless_writer(out, AVRO, record)
    return out.getvalue()


def confluent(schema_id, body):
    return b"\x00" + struct.pack(">I", schema_id) + body


def glue(body, compress=False, version=GLUE_PAYMENT):
    if compress:
        return b"\x03\x05" + version + zlib.compress(body)
    return b"\x03\x00" + version + body


def reading(i):
    return SensorReading(
        reading_id=f"evt-proto-{i:03}", sensor="sensor-9", celsius=18.0 + i, at_seconds=1761984000 + i * 60, line="B"
    ).SerializeToString()


def payment(i, status="approved"):
    return {
        "payment_id": f"evt-avro-{i:03}",
        "account_id": "acct-0042",
        "amount": 20.0 + i,
        "currency": "EUR",
        "authorized_at": BASE_MS + i * 60_000,
        "status": status,
        "country": "DE",
        "merchant": "grocer",
    }


def record(topic, partition, offset, value, key=b"acct-0042"):
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": BASE_MS + offset,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(key).decode(),
        "value": base64.b64encode(value).decode(),
        "headers": [],
    }


def event(records):
    partitions = {}
    for r in records:
        partitions.setdefault(f"{r['topic']}-{r['partition']}", []).append(r)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/payments/abcd1234-ab12-cd34-ef56-abcdef123456-1",
        "bootstrapServers": "b-1.payments.abcd12.c2.kafka.us-east-1.amazonaws.com:9098",
        "records": partitions,
    }


def write(name, doc):
    path = ROOT / "events" / "ingest" / name
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def sensor_json(i):
    return json.dumps(
        {"reading_id": f"evt-json-{i:03}", "sensor": "sensor-7", "celsius": 21.0 + i / 2, "at": 1761984000 + i, "line": "A"}
    ).encode()


def esm_decoded(topic, partition, offset, fields, schema_id):
    """A record as the event source mapping hands it over after decoding the value itself
    (schema registry configured with EventRecordFormat JSON): JSON bytes plus the metadata."""
    r = record(topic, partition, offset, json.dumps(fields).encode())
    r["valueSchemaMetadata"] = {"dataFormat": "AVRO", "schemaId": str(schema_id)}
    return r


sensor = sensor_json(1)
write(
    "msk-registry.json",
    event(
        [
            record("payments-avro", 0, 10, confluent(CONFLUENT_PAYMENT, avro(payment(1)))),
            record("payments-avro", 0, 11, glue(avro(payment(2, "declined")))),
            record("payments-avro", 0, 12, glue(avro(payment(3)), compress=True)),
            # entity_id from the record key (acct-0099), not from the record's account_id.
            record("payments-avro", 0, 13, confluent(KEYED["confluent_id"], avro(payment(9))), key=b"acct-0099"),
            record("payments-avro-plain", 0, 20, avro(payment(4))),
            esm_decoded("payments-avro-esm", 0, 15, payment(8), CONFLUENT_PAYMENT),
            record("sensors-json", 0, 30, confluent(CONFLUENT_SENSOR, sensor)),
            record("sensors-json", 0, 31, glue(sensor_json(3), version=GLUE_JSON)),
            # Confluent Protobuf: header, message-index list [0] written as the single byte 0.
            record("sensors-proto", 0, 40, confluent(PROTO["confluent_id"], b"\x00" + reading(1))),
            record("sensors-proto", 0, 41, glue(reading(2), version=GLUE_PROTO)),
            record("sensors-proto-plain", 0, 50, reading(3)),
        ]
    ),
)
missing = json.dumps({"reading_id": "evt-json-002", "celsius": 19.0}).encode()
write(
    "msk-registry-bad.json",
    event(
        [
            record("payments-avro", 1, 40, confluent(999, avro(payment(5)))),
            record("payments-avro", 1, 41, confluent(CONFLUENT_PAYMENT, avro(payment(6))[:7])),
            record("sensors-json", 1, 50, confluent(CONFLUENT_SENSOR, missing)),
            record("payments-avro", 1, 42, confluent(CONFLUENT_PAYMENT, avro(payment(7)))),
        ]
    ),
)
