#!/usr/bin/env python3
"""The streaming path's latency under a latency profile, without the emulator: a Monte Carlo of
one batch's critical path, with each call drawn from the profile (the same log-normal draws
`lambda-router --latency` makes).

    python3 bench/latency_model.py [--profile bench/latency/aws-us-east-1.json]
                                   [--write-concurrency 64] [--entities-per-batch 43]

Per execution (one batch document of 100 events): StartExecution; four Task states (validate,
enrich, detect, persist), each a transition plus a warm invocation; detect reads the batch's
entity states (one BatchGetItem; enrich read them too before 2026-12-08: `--enrich-reads`);
persist reads the batch's stored records and its
entity states, both at once since 2026-12-07 (`--sequential-persist-reads`: one after the
other, as before), then announces the batch's anomalies (one PutEvents, in the share of batches
that hold one: `--announce-share`, 1 - 0.99^100 at the sample stream's 1 % anomalies), then
commits one TransactWriteItems
per entity of the batch, `--write-concurrency` at a time, a round lasting as long as its
slowest; plus the stages' compute (`pipeline bench`: about 33 µs per event in all). An ingest
invocation of N records runs ⌈N/100⌉ executions, 4 at a time (INGEST_MAX_CONCURRENCY), and
ends with the slowest. docs/capacity.md gives what it printed and how to read it.
"""
import argparse
import json
import math
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Z99 = 2.326347874
COMPUTE_MS = 100 * 0.033


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=os.path.join(ROOT, "bench", "latency", "aws-us-east-1.json"))
    ap.add_argument("--write-concurrency", type=int, default=64)
    ap.add_argument("--entities-per-batch", type=int, default=43,
                    help="transactions per batch (the sample stream: 0.44 per event)")
    ap.add_argument("--ingest-concurrency", type=int, default=4)
    ap.add_argument("--announce-share", type=float, default=0.634,
                    help="share of batches with an anomaly to announce")
    ap.add_argument("--task-states", type=int, default=4,
                    help="Task states per execution (4: validate, enrich, detect, persist)")
    ap.add_argument("--enrich-reads", action="store_true",
                    help="enrich reads the entity states too (the code before 2026-12-08)")
    ap.add_argument("--sequential-persist-reads", action="store_true",
                    help="persist's two reads one after the other (the code before 2026-12-07)")
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with open(args.profile) as fh:
        calls = json.load(fh)["calls"]
    rng = random.Random(args.seed)

    def draw(name):
        s = calls.get(name) or calls[name.split(".")[0] + ".*"]
        sigma = math.log(s["p99_ms"] / s["p50_ms"]) / Z99
        return s["p50_ms"] * math.exp(sigma * rng.gauss(0, 1))

    # "reads": the reads of detect (and enrich, before) and persist, and persist's announcement.
    parts = {"start": [], "tasks": [], "reads": [], "writes": []}

    def execution():
        start = draw("states.StartExecution")
        tasks = sum(draw("lambda.Invoke") for _ in range(args.task_states))
        reads = sum(draw("dynamodb.BatchGetItem") for _ in range(2 if args.enrich_reads else 1))
        persist_reads = [draw("dynamodb.BatchGetItem") for _ in range(2)]
        reads += sum(persist_reads) if args.sequential_persist_reads else max(persist_reads)
        if rng.random() < args.announce_share:
            reads += draw("events.PutEvents")
        writes, left = 0.0, args.entities_per_batch
        while left > 0:
            n = min(args.write_concurrency, left)
            writes += max(draw("dynamodb.TransactWriteItems") for _ in range(n))
            left -= n
        for k, v in (("start", start), ("tasks", tasks), ("reads", reads), ("writes", writes)):
            parts[k].append(v)
        return start + tasks + reads + writes + COMPUTE_MS

    def pct(values, p):
        s = sorted(values)
        return s[int(p / 100 * (len(s) - 1))]

    records = [execution() for _ in range(args.runs)]
    print(f"profile {os.path.relpath(args.profile, ROOT)}, write concurrency {args.write_concurrency}, "
          f"{args.entities_per_batch} transactions per batch, persist's reads "
          f"{'one after the other' if args.sequential_persist_reads else 'at once'}, "
          f"{'enrich and detect' if args.enrich_reads else 'detect'} reading the states, "
          f"{args.announce_share:.0%} of batches announcing")
    print(f"record latency from ingest's invocation (one execution): p50 {pct(records, 50):.0f} ms, "
          f"p95 {pct(records, 95):.0f} ms, p99 {pct(records, 99):.0f} ms")
    print("  median shares: " + ", ".join(f"{k} {pct(v, 50):.0f} ms" for k, v in parts.items()))
    for batch in (100, 400, 1000):
        execs = math.ceil(batch / 100)
        waves = math.ceil(execs / args.ingest_concurrency)
        inv = [sum(max(execution() for _ in range(min(args.ingest_concurrency, execs - w * args.ingest_concurrency)))
                   for w in range(waves)) for _ in range(args.runs // 4)]
        mean = sum(inv) / len(inv)
        print(f"MSK batch {batch:>4}: invocation p50 {pct(inv, 50):.0f} ms, p99 {pct(inv, 99):.0f} ms; "
              f"{batch / mean * 1000:.0f} events/s per partition")


if __name__ == "__main__":
    main()
