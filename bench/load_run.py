#!/usr/bin/env python3
"""A load run of the streaming path on the local stack (scripts/local-aws): MSK batches of one
partition sent to the real ingest binary one after another, as Lambda's event source mapping
does for a partition, through the real state machine and stage binaries; then, per batch size,
sustained events/s per partition, latency from ingest's invocation to the stored record (p50,
p95, p99) and each stage's batch duration (from the functions' `StageLatencyMs` EMF metric).

    LAMBDA_ROUTER_LATENCY=bench/latency/aws-us-east-1.json scripts/local-aws up
    .venv/bin/python bench/load_run.py --batches 20 --batch-size 100 --batch-size 500 [--json]
    scripts/local-aws down

Bounded: `--batches` batches of each size, each invocation with a timeout; loopback only (the
stack's own ports). The figures are the emulator's plus the latency profile's (docs/capacity.md
says how to read them).
"""
import argparse
import json
import os
import sys
import time
import urllib.request
from base64 import b64encode
from datetime import datetime

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_env():
    with open(os.path.join(ROOT, ".venv", "local-aws", "env")) as fh:
        for line in fh:
            k, _, v = line.strip().removeprefix("export ").partition("=")
            os.environ[k] = v


def router_profile():
    """The latency profile the running stack's router loaded (it says so in its log), not this
    process's environment: the router is the one that delays."""
    try:
        with open(os.path.join(ROOT, ".venv", "local-aws", "router.log")) as fh:
            for line in fh:
                if line.startswith("lambda-router: latency profile "):
                    return line.removeprefix("lambda-router: latency profile ").strip()
    except OSError:
        pass
    return ""


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def msk_event(events, offset):
    recs = [{"topic": "load", "partition": 0, "offset": offset + i, "timestamp": 0, "timestampType": "CREATE_TIME",
             "key": None, "value": b64encode(json.dumps(e).encode()).decode(), "headers": []}
            for i, e in enumerate(events)]
    return {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/x",
            "records": {"load-0": recs}}


def invoke_ingest(payload, timeout):
    url = f"http://127.0.0.1:{os.environ['WATCH_PORT']}/2015-03-31/functions/ingest/invocations"
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def stored_at(ids):
    ddb = boto3.client("dynamodb", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    out = {}
    keys = [{"event_id": {"S": i}} for i in ids]
    for n in range(0, len(keys), 100):
        req = {os.environ["EVENTS_TABLE"]: {"Keys": keys[n:n + 100], "ProjectionExpression": "event_id, #r",
                                            "ExpressionAttributeNames": {"#r": "record"}}}
        while req:
            page = ddb.batch_get_item(RequestItems=req)
            for item in page["Responses"].get(os.environ["EVENTS_TABLE"], []):
                record = json.loads(item["record"]["S"])
                out[item["event_id"]["S"]] = datetime.fromisoformat(
                    record["first_persisted_at"].replace("Z", "+00:00")).timestamp()
            req = page.get("UnprocessedKeys") or None
    return out


def stage_durations(since):
    """Each stage's `StageLatencyMs` values from the functions' EMF lines written since `since`."""
    by_stage = {}
    path = os.path.join(ROOT, ".venv", "local-aws", "watch.log")
    with open(path, errors="replace") as fh:
        for line in fh:
            start = line.find("{")
            if start < 0 or "StageLatencyMs" not in line:
                continue
            try:
                doc = json.loads(line[start:])
            except json.JSONDecodeError:
                continue
            ts = doc.get("_aws", {}).get("Timestamp", 0) / 1000
            values = doc.get("StageLatencyMs")
            values = values if isinstance(values, list) else [values]
            if ts >= since:
                by_stage.setdefault(doc.get("Function", "?"), []).extend(
                    v for v in values if isinstance(v, (int, float)))
    return {k: {"n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)} for k, v in sorted(by_stage.items())}


def run(batch_size, batches, entities, timeout):
    run_id = f"{batch_size}-{time.time_ns()}"
    started, invoked, ids = time.time(), [], []
    for k in range(batches):
        events = [{"event_id": f"evt-load-{run_id}-{k}-{i}", "event_type": "payment.authorized", "source": "load",
                   "entity_id": f"acct-load-{(k * batch_size + i) % entities}",
                   "occurred_at": datetime.fromtimestamp(started + k + i / batch_size).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                   "value": 10 + (k * 31 + i * 7) % 90, "currency": "EUR", "attributes": {"status": "approved"}}
                  for i in range(batch_size)]
        t0 = time.time()
        invoke_ingest(msk_event(events, k * batch_size), timeout)
        invoked.append((t0, time.time(), [e["event_id"] for e in events]))
        ids += invoked[-1][2]
    wall = time.time() - started
    stored = stored_at(ids)
    latencies = [(stored[i] - t0) * 1000 for t0, _, batch in invoked for i in batch if i in stored]
    return {
        "batch_size": batch_size, "batches": batches, "events": len(ids), "stored": len(stored),
        "events_per_s_per_partition": round(len(ids) / wall, 1),
        "invocation_s": {"p50": round(percentile([b - a for a, b, _ in invoked], 50), 3),
                         "max": round(max(b - a for a, b, _ in invoked), 3)},
        "latency_ms": {p: round(percentile(latencies, int(p[1:])), 1) for p in ("p50", "p95", "p99")},
        "stages": stage_durations(started),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=20, help="batches per batch size (default 20)")
    ap.add_argument("--batch-size", type=int, action="append", help="records per MSK batch (repeatable; default 100)")
    ap.add_argument("--entities", type=int, default=50, help="entities the events spread over (default 50)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one ingest invocation may take")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not 1 <= args.batches <= 1000:
        sys.exit("--batches must be 1 … 1000")
    load_env()
    results = [run(b, args.batches, args.entities, args.timeout) for b in (args.batch_size or [100])]
    profile = router_profile()
    if args.json:
        print(json.dumps({"latency_profile": profile, "runs": results}))
        return 0
    print(f"latency profile: {profile or 'none (emulator only)'}")
    print(f"{'batch':>6} {'events':>7} {'ev/s/partition':>15} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  stages p50/p99 ms")
    for r in results:
        stages = ", ".join(f"{k} {v['p50_ms']:.0f}/{v['p99_ms']:.0f}" for k, v in r["stages"].items())
        lat = r["latency_ms"]
        print(f"{r['batch_size']:>6} {r['events']:>7} {r['events_per_s_per_partition']:>15} "
              f"{lat['p50']:>8} {lat['p95']:>8} {lat['p99']:>8}  {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
