"""End to end on the full local AWS stack (scripts/local-aws): the real ingest binary, the real
state machine definition executing on moto, the real stage binaries under `cargo lambda watch`,
DynamoDB and EventBridge on moto.

Run by scripts/test (which starts and stops the stack); alone:
    scripts/local-aws up && .venv/bin/pytest -q tests/e2e; scripts/local-aws down
"""
import base64
import contextlib
import json
import os
import re
import subprocess
import time
import zlib

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_env():
    with open(os.path.join(ROOT, ".venv", "local-aws", "env")) as fh:
        for line in fh:
            k, _, v = line.strip().removeprefix("export ").partition("=")
            os.environ[k] = v


load_env()


def client(name):
    return boto3.client(name, region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        aws_access_key_id="test", aws_secret_access_key="test")


def invoke_ingest_once(payload, timeout=300):
    """Invokes the real ingest binary through `cargo lambda invoke` (served by `cargo lambda watch`)."""
    path = os.path.join(ROOT, "target", f"e2e-{time.time_ns()}.json")
    with open(path, "w") as fh:
        json.dump(payload, fh)
    try:
        return subprocess.run(
            ["cargo", "lambda", "invoke", "ingest", "--data-file", path, "-A", "127.0.0.1", "-P", os.environ["WATCH_PORT"]],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        os.remove(path)


def invoke_ingest(payload):
    out = invoke_ingest_once(payload)
    assert out.returncode == 0, f"ingest failed: {out.stdout}\n{out.stderr}"
    return json.loads(out.stdout)


def sample(name):
    with open(os.path.join(ROOT, "events", name)) as fh:
        return json.load(fh)


def entity_states():
    """The entities table as {entity_id: state}: the state is raw-deflated JSON in a binary
    attribute (a JSON string on items stored before 2026-12-07)."""
    def state(attr):
        return json.loads(zlib.decompress(attr["B"], -15) if "B" in attr else attr["S"])
    return {i["entity_id"]["S"]: state(i["state"]) for i in scan(os.environ["ENTITIES_TABLE"])}


def scan(table):
    ddb = client("dynamodb")
    items, kwargs = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            # default=repr: entity states are binary attributes (bytes), which JSON cannot hold.
            return sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=repr))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def records():
    return {i["event_id"]["S"]: json.loads(i["record"]["S"]) for i in scan(os.environ["EVENTS_TABLE"])}


def executions(prefix):
    # Paged: a full-size backfill (BACKFILL_E2E_EVENTS=5000) leaves 1,000 executions or more.
    pages = client("stepfunctions").get_paginator("list_executions").paginate(
        stateMachineArn=os.environ["STATE_MACHINE_ARN"], PaginationConfig={"PageSize": 1000})
    found = [e for page in pages for e in page["executions"]]
    return sorted([e for e in found if e["name"].startswith(prefix)], key=lambda e: e["startDate"])


def entered_states(execution_arn):
    history = client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e], history


def pipeline(*args):
    """The `pipeline` CLI (built with `--features aws` by scripts/test) on the local stack."""
    out = subprocess.run([os.path.join(ROOT, "target", "debug", "pipeline"), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"pipeline {args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def pipeline_logs(*args, attempts=20):
    """`pipeline logs ... --json`, waiting for the shipper to deliver the last lines."""
    for _ in range(attempts):
        out = subprocess.run([os.path.join(ROOT, "target", "debug", "pipeline"), "logs", "--json", *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
        if out.returncode == 0 and '"persist done"' in out.stdout:
            return out.stdout
        time.sleep(0.5)
    raise AssertionError(f"pipeline logs {args}: {out.stdout}\n{out.stderr}")


def output(execution_arn):
    return json.loads(client("stepfunctions").describe_execution(executionArn=execution_arn)["output"])


def reconciles(report):
    c = report["counts"]
    return c["input"] == sum(c[k] for k in ("persisted", "duplicate", "updated", "stale", "conflict", "quarantined"))


def drain_anomaly_tap():
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName="pipeline-anomaly-tap")["QueueUrl"]
    got = []
    for _ in range(5):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in msgs:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if not msgs and got:
            break
    return got


def new_executions(prefix, before):
    seen = {e["executionArn"] for e in before}
    return [e for e in executions(prefix) if e["executionArn"] not in seen]


def test_msk_batch_runs_through_the_real_state_machine():
    drain_anomaly_tap()
    batch_id = json.loads(subprocess.run(
        [os.path.join(ROOT, "target", "debug", "pipeline"), "stage", "ingest", "events/ingest/msk-good.json",
         "--db", os.path.join(ROOT, "target", "e2e-stage.db")],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout)["batch_id"]
    before = executions(batch_id)
    response = invoke_ingest(sample("ingest/msk-good.json"))
    (receipt,) = response["batches"]
    assert receipt["batch_id"] == batch_id, "batch ids are deterministic from the batch content"
    stored = records()
    assert {f"evt-demo-00{i}" for i in range(1, 10)} <= set(stored)
    assert stored["evt-demo-007"]["detection"]["is_anomaly"] is True
    assert stored["evt-demo-001"]["provenance"]["kind"] == "kafka"
    (execution,) = new_executions(batch_id, before)
    assert execution["status"] == "SUCCEEDED"
    states, _ = entered_states(execution["executionArn"])
    assert states == ["Validate", "Enrich", "Detect", "Persist"]
    report = output(execution["executionArn"])
    assert reconciles(report)
    if not before:
        # The first delivery on this stack: everything is new, and the anomaly is announced.
        assert report["counts"]["persisted"] == 9
        announced = drain_anomaly_tap()
        assert [a["detail"]["event_id"] for a in announced] == ["evt-demo-007"], announced


def test_redelivered_msk_batch_changes_nothing_and_is_a_second_execution():
    invoke_ingest(sample("ingest/msk-good.json"))  # make sure it was delivered once
    drain_anomaly_tap()
    before = scan(os.environ["EVENTS_TABLE"]), scan(os.environ["ENTITIES_TABLE"])
    response = invoke_ingest(sample("ingest/msk-good.json"))
    (receipt,) = response["batches"]
    after = scan(os.environ["EVENTS_TABLE"]), scan(os.environ["ENTITIES_TABLE"])
    assert after == before
    runs = executions(receipt["batch_id"])
    assert len(runs) >= 2, [r["name"] for r in runs]
    assert len({r["name"] for r in runs}) == len(runs), "each delivery is its own execution"
    report = output(runs[-1]["executionArn"])
    assert report["counts"]["duplicate"] == 9 and reconciles(report)
    assert drain_anomaly_tap() == [], "a redelivery announces nothing"


def test_eventbridge_events_and_bad_records_are_quarantined_not_lost():
    invoke_ingest(sample("ingest/eventbridge-bad.json"))
    response = invoke_ingest(sample("ingest/msk-bad.json"))
    (receipt,) = response["batches"]
    report = output(executions(receipt["batch_id"])[-1]["executionArn"])  # the latest delivery
    assert report["counts"]["input"] == 5 and report["counts"]["quarantined"] == 5 and reconciles(report)
    quarantined = scan(os.environ["QUARANTINE_TABLE"])
    reasons = {r["code"] for q in quarantined for r in json.loads(q["record"]["S"])["item"]["reasons"]}
    assert {"bad_base64", "malformed_json", "schema", "unknown_currency"} <= reasons
    # `pipeline logs --batch` has a line for every event the batch quarantined, at ingest (its
    # span names no batch: the line does) and at validate, each reason kind named once.
    lines = [json.loads(x) for x in pipeline_logs("--batch", receipt["batch_id"]).splitlines()]
    quarantine_lines = [x for x in lines if x["message"]["message"] == "event quarantined"]
    assert sorted(x["source"] for x in quarantine_lines) == ["ingest"] * 2 + ["validate"] * 3, quarantine_lines
    by_event = {x["message"]["event_id"]: x["message"]["reasons"].split(",") for x in quarantine_lines}
    assert by_event["evt-bad-001"] == ["schema", "unknown_currency", "bad_timestamp"], by_event


def test_schema_registry_records_run_through_the_real_binaries():
    """Avro (Confluent, Glue, Glue zlib, plain, decoded by the event source mapping), JSON Schema
    (Confluent, Glue) and Protobuf (Confluent, Glue, plain) values, encoded by fastavro and Google's protobuf package, decoded by the real ingest binary
    with schemas/registry.json (PIPELINE_SCHEMA_REGISTRY on the local stack), stored by the real
    state machine; and each bad value quarantined alone."""
    response = invoke_ingest(sample("ingest/msk-registry.json"))
    (receipt,) = response["batches"]
    report = output(executions(receipt["batch_id"])[-1]["executionArn"])
    assert report["counts"]["input"] == 11 and report["counts"]["quarantined"] == 0 and reconciles(report)
    stored = records()
    wanted = {"evt-avro-001", "evt-avro-002", "evt-avro-003", "evt-avro-004", "evt-avro-008", "evt-avro-009", "evt-json-001",
              "evt-json-003", "evt-proto-001", "evt-proto-002", "evt-proto-003"}
    assert wanted <= set(stored), sorted(wanted - set(stored))
    assert stored["evt-proto-002"]["event"]["occurred_at"] == "2025-11-01T08:02:00Z"
    assert stored["evt-avro-002"]["event"]["attributes"]["status"] == "declined"
    assert stored["evt-avro-009"]["event"]["entity_id"] == "acct-0099", "entity_id from the record key"

    response = invoke_ingest(sample("ingest/msk-registry-bad.json"))
    (receipt,) = response["batches"]
    report = output(executions(receipt["batch_id"])[-1]["executionArn"])
    assert report["counts"]["input"] == 4 and report["counts"]["quarantined"] == 3 and reconciles(report)
    quarantined = scan(os.environ["QUARANTINE_TABLE"])
    reasons = {r["code"] for q in quarantined for r in json.loads(q["record"]["S"])["item"]["reasons"]}
    assert {"unknown_schema", "undecodable_value", "unmapped_field"} <= reasons


def kafka_event(events, offset):
    recs = [{"topic": "payments", "partition": 3, "offset": offset + i, "timestamp": 0, "timestampType": "CREATE_TIME",
             "key": None, "value": base64.b64encode(json.dumps(e).encode()).decode(), "headers": []}
            for i, e in enumerate(events)]
    return {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/x",
            "records": {"payments-3": recs}}


def test_a_failing_stage_is_retried_then_caught_and_the_batch_quarantined():
    events = [{"event_id": f"evt-fault-{i}", "event_type": "payment.authorized", "source": "e2e",
               "entity_id": "acct-fault", "occurred_at": "2026-11-01T10:00:00Z", "value": 10 + i, "currency": "EUR",
               "attributes": {"status": "approved"}} for i in range(3)]
    events[1]["attributes"]["fault_inject"] = "enrich"
    known = executions("")
    response = invoke_ingest(kafka_event(events, 5000))
    (receipt,) = response["batches"]
    (execution,) = new_executions(receipt["batch_id"], known)
    assert execution["status"] == "SUCCEEDED", "the quarantine path completes the execution"
    states, history = entered_states(execution["executionArn"])
    assert states == ["Validate", "Enrich", "EnrichFailed", "QuarantineBatch"], states
    attempts = [e for e in history if e["type"] in ("LambdaFunctionFailed", "TaskFailed")]
    assert len(attempts) >= 2, "the transient error was retried before being caught"
    report = output(execution["executionArn"])
    assert report["counts"]["quarantined"] == 3 and reconciles(report)
    stored = records()
    assert not any(k.startswith("evt-fault-") for k in stored)
    quarantined = [json.loads(q["record"]["S"])["item"] for q in scan(os.environ["QUARANTINE_TABLE"])]
    mine = [q for q in quarantined if (q.get("event_id") or "").startswith("evt-fault-")]
    assert len(mine) == 3 and all(q["stage"] == "enrich" for q in mine)
    assert all("Pipeline.Retryable.InjectedFault" in q["reasons"][0]["message"] for q in mine)

    # `pipeline watch` shows the execution with the stage that failed and its error, and the
    # counts from persist's summary line; `pipeline logs --batch` prints that batch's lines from
    # every function it reached, in time order (the log shipper plays Lambda's log delivery).
    view = json.loads(pipeline("watch", "--once", "--json"))
    (shown,) = [x for x in view["executions"] if x["name"] == execution["name"]]
    assert shown["status"] == "SUCCEEDED" and shown["failed_stage"] == "enrich", shown
    assert shown["error"] == "Pipeline.Retryable.InjectedFault", shown
    assert shown["counts"]["input"] == 3 and shown["counts"]["quarantined"] == 3, shown
    lines = [json.loads(x) for x in pipeline_logs("--batch", receipt["batch_id"]).splitlines()]
    sources = [x["source"] for x in lines]
    assert [s for i, s in enumerate(sources) if s not in sources[:i]] == ["ingest", "validate", "enrich", "persist"], sources
    assert [x["timestamp"] for x in lines] == sorted(x["timestamp"] for x in lines)
    failures = [x["message"] for x in lines if x["source"] == "enrich"]
    assert len(failures) >= 2 and all(f["error_type"] == "Pipeline.Retryable.InjectedFault" for f in failures)
    assert all(f["span"]["batch_id"] == receipt["batch_id"] for f in failures)
    assert lines[-1]["message"]["message"] == "persist done"


def watch_log_documents():
    docs = []
    with open(os.path.join(ROOT, ".venv", "local-aws", "watch.log"), errors="replace") as fh:
        for raw in fh:
            line = raw.strip()
            # Log lines that are not JSON documents (cargo's own output) are skipped.
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    docs.append(json.loads(line))
    return docs


def test_functions_log_json_with_correlation_fields_and_emf_metrics():
    invoke_ingest(sample("ingest/msk-good.json"))
    docs = watch_log_documents()
    logs = [d for d in docs if "level" in d]
    emf = [d for d in docs if "_aws" in d]
    # Stage lines carry every correlation field on their span.
    stage_lines = [d for d in logs if d.get("message") == "stage done"]
    assert {d["span"]["function"] for d in stage_lines} >= {"validate", "enrich", "detect"}
    for d in stage_lines:
        for field in ("request_id", "xray_trace_id", "execution", "batch_id"):
            assert d["span"].get(field), f"{field} missing in {d}"
        assert d["span"]["execution"].startswith(d["span"]["batch_id"] + "-")
    # Every line carries its own time (RFC 3339, UTC, ms): Lambda's JSON log format takes a line
    # without a valid timestamp as INFO whatever its level.
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert all(stamp.fullmatch(d.get("timestamp", "")) for d in logs), [d for d in logs if "timestamp" not in d][:1]
    # Per-event lines name the event, never carry its payload.
    anomaly_lines = [d for d in logs if d.get("message") == "anomaly scored"]
    assert any(d.get("event_id") == "evt-demo-007" for d in anomaly_lines)
    assert not any("payload" in d or "attributes" in d for d in logs if d.get("level") == "INFO")
    # EMF documents: one namespace, dimension Function, the dashboard's metric names.
    names = {m["Name"] for d in emf for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"ColdStart", "EventsIn", "EventsValid", "StageLatencyMs", "Persisted", "Duplicates", "EndToEndLagMs"} <= names, names
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in emf} == {"EventPipeline"}
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0] == "Function" for d in emf)
    assert {d["Function"] for d in emf} >= {"ingest", "validate", "enrich", "detect", "persist"}


def test_chaos_nothing_lost_nothing_counted_twice():
    """2,400 events in 24 batches through the real state machine with every stage failing at
    random 20 % of the time (an error before the work, a store throttle, or a failure after
    the work landed: the retry redoes work that is already stored), executions running
    concurrently on shared entities, then the whole input redelivered. Every event must end
    stored or quarantined, stored once, counted once in its entity, and every report must
    reconcile."""
    n, entities = 2400, 12
    events = [{"event_id": f"evt-chaos-{i:05}", "event_type": "payment.authorized", "source": "e2e",
               "entity_id": f"acct-chaos-{i % entities}",
               "occurred_at": f"2026-11-02T{8 + i // 600:02}:{(i // 10) % 60:02}:{i % 10 * 6:02}Z",
               "value": 10 + (i * 7919) % 90, "currency": "EUR",
               "attributes": {"status": "declined" if i % 9 == 0 else "approved", "fault_inject": "chaos:0.2"}}
              for i in range(n)]
    payload = kafka_event(events, 100_000)
    known = {e["executionArn"] for e in executions("")}

    receipts = []
    for delivery in range(2):  # the first delivery, then a redelivery of the same records
        for _ in range(5):  # as the event source mapping retries a failed invocation
            out = invoke_ingest_once(payload, timeout=1200)
            if out.returncode == 0:
                receipts.append(json.loads(out.stdout)["batches"])
                break
        else:
            raise AssertionError(f"delivery {delivery}: ingest kept failing: {out.stdout}\n{out.stderr}")
    first, again = receipts
    assert len(first) >= 20, f"{len(first)} batches"
    assert [r["batch_id"] for r in first] == [r["batch_id"] for r in again]

    ids = {e["event_id"] for e in events}
    stored = {k: v for k, v in records().items() if k in ids}
    quarantined = {json.loads(q["record"]["S"])["item"].get("event_id") for q in scan(os.environ["QUARANTINE_TABLE"])}
    lost = ids - set(stored) - quarantined
    assert not lost, f"{len(lost)} events neither stored nor quarantined, e.g. {sorted(lost)[:5]}"
    assert len(stored) >= n * 0.9, f"only {len(stored)} of {n} stored"

    # Counted once: each entity's count is exactly its stored records (none were stored before).
    states = entity_states()
    for k in range(entities):
        entity = f"acct-chaos-{k}"
        mine = [r for r in stored.values() if r["event"]["entity_id"] == entity]
        assert states[entity]["count"] == len(mine), (entity, states[entity]["count"], len(mine))

    # Every execution of these batches ended, and each one that succeeded reconciles; faults
    # were injected and retried.
    mine = [e for e in executions("") if e["executionArn"] not in known]
    assert mine and all(e["status"] in ("SUCCEEDED", "FAILED") for e in mine), {e["status"] for e in mine}
    retried = 0
    for e in mine:
        if e["status"] == "SUCCEEDED":
            assert reconciles(output(e["executionArn"])), e["name"]
        _, history = entered_states(e["executionArn"])
        retried += sum(1 for h in history if h["type"] in ("LambdaFunctionFailed", "TaskFailed"))
    assert retried >= 10, f"only {retried} injected failures: is fault injection on?"
    # The redelivery stored nothing new where the first delivery had stored its batch.
    redelivered = 0
    for r in again:
        report = output(executions(r["batch_id"])[-1]["executionArn"])
        assert reconciles(report), report["counts"]
        redelivered += report["counts"]["duplicate"]
    assert redelivered >= n * 0.9, f"the redelivery found only {redelivered} duplicates"


# ---------------------------------------------------------------------------------------------
# Backfill: `pipeline backfill` through the Distributed Map (statemachines/backfill.asl.json)
# ---------------------------------------------------------------------------------------------

# Objects of history and events in each: 20 × 250 here (about 45 s). BACKFILL_E2E_EVENTS=5000
# runs 20 × 5,000 (24 minutes on 2 cores, moto at 3.1 GB at most: docs/backfill.md).
BACKFILL_OBJECTS = 20
BACKFILL_EVENTS = int(os.environ.get("BACKFILL_E2E_EVENTS", "250"))
# Wall-clock fields: when the record was first stored, and how long after the event that was.
WALL_CLOCK = (("first_persisted_at",), ("enrichment", "ingestion_lag_ms"))


def backfill_inputs(tag, objects, per_object, entities, attributes=None):
    """JSON Lines objects of history: each entity's events in time order across the objects, a
    few value spikes, one event per object that validation quarantines and one line that is not
    JSON."""
    directory = os.path.join(ROOT, "target", f"e2e-backfill-{tag}")
    os.makedirs(directory, exist_ok=True)
    paths, i = [], 0
    for f in range(objects):
        path = os.path.join(directory, f"part-{f:02}.jsonl")
        with open(path, "w") as fh:
            for k in range(per_object):
                e, t = i % entities, i // entities
                event = {"event_id": f"evt-{tag}-{i:06}", "event_type": "payment.authorized", "source": "e2e",
                         "entity_id": f"acct-{tag}-{e:03}",
                         "occurred_at": f"2026-10-{1 + t // 1440 % 28:02}T{t // 60 % 24:02}:{t % 60:02}:{e % 60:02}Z",
                         "value": 20 + (i * 7919) % 50 + (900 if i % 997 == 0 else 0), "currency": "EUR",
                         "attributes": {"status": "approved", **(attributes or {})}}
                if k == 7:
                    event["currency"] = "EURO"  # quarantined by validate
                fh.write(json.dumps(event) + "\n")
                i += 1
            fh.write("not json at all\n")
        paths.append(path)
    return paths


def run_backfill(*args, timeout=1800):
    out = subprocess.run([os.path.join(ROOT, "target", "debug", "pipeline"), "backfill", "--json", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout, check=False)
    assert out.stdout.strip(), f"pipeline backfill {args}: no summary\n{out.stderr}"
    return out.returncode, json.loads(out.stdout)


def without_wall_clock(record):
    record = json.loads(json.dumps(record))
    for path in WALL_CLOCK:
        node = record
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return record


def test_backfill_equals_a_local_run_and_reruns_change_nothing():
    paths = backfill_inputs("bf", BACKFILL_OBJECTS, BACKFILL_EVENTS, entities=160)
    started = time.monotonic()
    code, first = run_backfill(*paths, "--shards", "20", "--prefix", "e2e-bf")
    took = time.monotonic() - started
    print(f"backfill: {first['plan']['events']} events in {took:.1f} s, {first['events_per_s']} events/s")
    assert code == 0 and first["status"] == "SUCCEEDED" and first["reconciled"], first
    total = BACKFILL_OBJECTS * (BACKFILL_EVENTS + 1)
    assert first["plan"]["events"] == total and first["plan"]["shards_used"] == 20, first["plan"]
    t = first["totals"]
    assert t["input"] == total and t["quarantined"] == 2 * BACKFILL_OBJECTS, t
    assert t["persisted"] == total - t["quarantined"] and t["duplicate"] == 0, t

    # The same input through `pipeline run` on the embedded store: the same records.
    db = os.path.join(ROOT, "target", "e2e-backfill-bf", "local.db")
    with contextlib.suppress(FileNotFoundError):
        os.remove(db)
    local = subprocess.run([os.path.join(ROOT, "target", "debug", "pipeline"), "run", *paths, "--db", db, "--json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert local.returncode == 0, local.stderr
    import sqlite3
    with contextlib.closing(sqlite3.connect(db)) as conn:
        expected = {eid: without_wall_clock(json.loads(rec)) for eid, rec in conn.execute("SELECT event_id, record FROM events")}
    stored = {k: v for k, v in records().items() if k.startswith("evt-bf-")}
    assert set(stored) == set(expected), (len(stored), len(expected))
    # The embedded store keeps the item's keys in its record too: compare what both hold.
    differ = [k for k in expected
              if without_wall_clock(stored[k]) != {f: expected[k].get(f) for f in without_wall_clock(stored[k])}]
    assert not differ, (len(differ), differ[:3], without_wall_clock(stored[differ[0]]), expected[differ[0]])
    assert {"event", "enrichment", "detection", "provenance"} <= set(without_wall_clock(stored["evt-bf-000000"]))
    assert sum(1 for r in expected.values() if r["detection"]["is_anomaly"]) > 0, "no anomaly at all: a weak comparison"

    # A rerun: every event a duplicate, nothing stored anew, nothing changed.
    code, again = run_backfill(*paths, "--shards", "20", "--prefix", "e2e-bf")
    assert code == 0 and again["reconciled"], again
    assert again["totals"]["duplicate"] == t["persisted"] and again["totals"]["persisted"] == 0, again["totals"]
    assert {k: v for k, v in records().items() if k.startswith("evt-bf-")} == stored


def test_backfill_child_with_failing_stages_is_retried_and_reconciles():
    """One object whose events make every stage fail at random (chaos:0.3): the pipeline
    executions of that shard retry their stages, and the backfill's totals still account for
    every event once."""
    paths = backfill_inputs("bfchaos", 1, 300, entities=1, attributes={"fault_inject": "chaos:0.3"})
    paths += backfill_inputs("bfcalm", 1, 300, entities=3)
    code, summary = run_backfill(*paths, "--shards", "2", "--prefix", "e2e-bfchaos")
    assert summary["status"] == "SUCCEEDED" and summary["reconciled"], summary
    assert code == 0
    assert summary["totals"]["input"] == 602, summary["totals"]
    retried = 0
    for e in executions(""):
        if e["startDate"].timestamp() < time.time() - 1800:
            continue
        _, history = entered_states(e["executionArn"])
        inputs = [h for h in history if h["type"] == "ExecutionStarted"]
        if inputs and "bfchaos" in inputs[0]["executionStartedEventDetails"].get("input", ""):
            retried += sum(1 for h in history if h["type"] in ("LambdaFunctionFailed", "TaskFailed"))
    assert retried >= 3, f"only {retried} failed stage attempts: was fault injection on?"


def test_backfill_next_to_live_traffic_stays_exact():
    """A backfill and live MSK batches on the same entities at the same time: both commit the
    entities' state with their records, so every event is stored once and each entity's count
    is exactly its stored records (detection sees the two streams interleaved: docs/backfill.md)."""
    paths = backfill_inputs("mix", 2, 300, entities=5)
    live = [{"event_id": f"evt-live-mix-{i:04}", "event_type": "payment.authorized", "source": "e2e",
             "entity_id": f"acct-mix-{i % 5:03}", "occurred_at": f"2026-11-20T10:{i // 10 % 60:02}:{i % 10 * 6:02}Z",
             "value": 30 + i % 20, "currency": "EUR", "attributes": {"status": "approved"}} for i in range(200)]
    backfill = subprocess.Popen([os.path.join(ROOT, "target", "debug", "pipeline"), "backfill", "--json", *paths,
                                 "--shards", "4", "--prefix", "e2e-mix"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the backfill's first batches are running
        for n in range(2):
            invoke_ingest(kafka_event(live[n * 100:(n + 1) * 100], 200_000 + n * 100))
        out, err = backfill.communicate(timeout=900)
    finally:
        if backfill.poll() is None:
            backfill.kill()
    assert backfill.returncode == 0, f"{out}\n{err}"
    summary = json.loads(out)
    assert summary["reconciled"] and summary["totals"]["input"] == 602, summary["totals"]

    stored = {k: v for k, v in records().items() if "-mix-" in k}
    history = {f"evt-mix-{i:06}" for i in range(600)} - {"evt-mix-000007", "evt-mix-000307"}
    assert history <= set(stored), sorted(history - set(stored))[:5]
    assert {e["event_id"] for e in live} <= set(stored)
    states = entity_states()
    for k in range(5):
        entity = f"acct-mix-{k:03}"
        mine = [r for r in stored.values() if r["event"]["entity_id"] == entity]
        assert states[entity]["count"] == len(mine), (entity, states[entity]["count"], len(mine))
