"""The peer a user would otherwise pick: the same stages written in Python, validating with
fastjsonschema (what Powertools for AWS Lambda (Python) uses for its validator) against the
same contract, with JSON parsed and written at every stage boundary as in Step Functions.

    python bench/peer.py STREAM.jsonl [--rounds N] [--json]

Prints events/s for validate alone (parse the batch document, validate every event, write the
validated document) and for the chain validate -> enrich -> detect. Enrich and detect do the
work ours do in kind, simplified (FX conversion and hour of the week; a per-entity running
mean and variance of the log amount, and failures in the last ten minutes), so the comparison
is generous to the peer. `bench/compare` runs it beside `pipeline bench` on the same stream.
"""

import argparse
import json
import math
import sys
import time
from collections import defaultdict, deque
from datetime import datetime
from pathlib import Path

import fastjsonschema

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100


def batches(path):
    """The stream cut into ingest batch documents (JSON text), 100 events each."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    docs = []
    for start in range(0, len(lines), BATCH):
        events = []
        for n, line in enumerate(lines[start : start + BATCH], start + 1):
            try:
                payload = json.loads(line)
            except ValueError:
                payload = line
            events.append({"payload": payload, "provenance": {"path": str(path), "line": n}})
        doc = {
            "batch_id": f"b-{start:08d}",
            "received_at": "2026-11-27T00:00:00Z",
            "input_count": len(events),
            "events": events,
            "quarantine": [],
        }
        docs.append(json.dumps(doc))
    return docs, len(lines)


def validate_stage(text, check):
    doc = json.loads(text)
    valid, quarantine = [], list(doc["quarantine"])
    for e in doc["events"]:
        try:
            check(e["payload"])
            valid.append({"event": e["payload"], "provenance": e["provenance"]})
        except fastjsonschema.JsonSchemaException as err:
            quarantine.append({"payload": e["payload"], "reasons": [str(err)]})
    doc["events"], doc["quarantine"] = valid, quarantine
    return json.dumps(doc)


def enrich_stage(text, rates):
    doc = json.loads(text)
    for e in doc["events"]:
        ev = e["event"]
        when = datetime.fromisoformat(ev["occurred_at"].replace("Z", "+00:00"))
        rate = rates.get(ev.get("currency") or "USD", 1.0)
        e["enrichment"] = {
            "base_value": (ev.get("value") or 0.0) * rate,
            "hour_of_week": when.weekday() * 24 + when.hour,
        }
    return json.dumps(doc)


class Detector:
    def __init__(self):
        self.stats = defaultdict(lambda: [0, 0.0, 0.0])
        self.failures = defaultdict(deque)

    def stage(self, text):
        doc = json.loads(text)
        for e in doc["events"]:
            ev, enr = e["event"], e["enrichment"]
            entity = ev["entity_id"]
            x = math.log1p(abs(enr["base_value"]))
            n, mean, m2 = self.stats[entity]
            std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
            z = abs(x - mean) / std if std > 0 else 0.0
            n += 1
            delta = x - mean
            mean += delta / n
            m2 += delta * (x - mean)
            self.stats[entity] = [n, mean, m2]
            reasons = []
            if n > 10 and z > 4:
                reasons.append({"code": "value", "z": round(z, 2)})
            if ev["event_type"].endswith((".declined", ".failed")):
                t = datetime.fromisoformat(ev["occurred_at"].replace("Z", "+00:00")).timestamp()
                window = self.failures[entity]
                window.append(t)
                while window and window[0] < t - 600:
                    window.popleft()
                if len(window) > 5:
                    reasons.append({"code": "failure_burst", "count": len(window)})
            e["detection"] = {"score": z, "is_anomaly": bool(reasons), "reasons": reasons}
        return json.dumps(doc)


def best(rounds, fn):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    schema = json.loads((ROOT / "contract/event.v1.schema.json").read_text())
    check = fastjsonschema.compile(schema)
    rates = json.loads((ROOT / "config/fx.json").read_text())["rates"]
    docs, events = batches(args.stream)

    def validate_only():
        for d in docs:
            validate_stage(d, check)

    def chain():
        detector = Detector()
        for d in docs:
            detector.stage(enrich_stage(validate_stage(d, check), rates))

    figures = {
        "validate": events / best(args.rounds, validate_only),
        "chain": events / best(args.rounds, chain),
    }
    if args.json:
        print(json.dumps({"events": events, "events_per_s": figures}))
    else:
        for name, rate in figures.items():
            print(f"{name:10} {rate:10.0f} events/s")


if __name__ == "__main__":
    sys.exit(main())
