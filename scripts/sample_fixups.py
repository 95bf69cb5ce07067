"""The two stage samples under events/ that no stage emits, derived from ones that one does;
called by scripts/make-samples (one subcommand each):

    python3 scripts/sample_fixups.py enrich-bad                  # events/enrich/bad.json
    python3 scripts/sample_fixups.py persist-bad VALIDATED_BAD   # events/persist/bad.json
"""

import copy
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def save(doc, path):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


def enrich_bad():
    """A valid ISO 4217 currency the FX table has no rate for, beside a normal event."""
    b = load("events/enrich/good.json")
    kes = copy.deepcopy(b["events"][7])
    kes["event"]["event_id"] = "evt-demo-201"
    kes["event"]["currency"] = "KES"
    ok = copy.deepcopy(b["events"][7])
    ok["event"]["event_id"] = "evt-demo-202"
    save(
        {
            "batch_id": "b-enrich-bad-sample",
            "received_at": b["received_at"],
            "input_count": 2,
            "events": [kes, ok],
            "quarantine": [],
        },
        "events/enrich/bad.json",
    )


def persist_bad(validated_bad):
    """Same event_id and version as evt-demo-001 with another value (a conflict once the good
    sample is stored), plus the quarantine entries validate produced for the bad sample."""
    b = load("events/persist/good.json")
    v = load(validated_bad)
    ev = copy.deepcopy(b["events"][0])
    ev["event"]["value"] = 99.0
    save(
        {
            "batch_id": "b-persist-bad-sample",
            "received_at": b["received_at"],
            "input_count": 1 + len(v["quarantine"]),
            "events": [ev],
            "quarantine": v["quarantine"],
        },
        "events/persist/bad.json",
    )


def main(argv):
    commands = {"enrich-bad": enrich_bad, "persist-bad": persist_bad}
    if not argv or argv[0] not in commands:
        sys.exit(f"usage: sample_fixups.py {{{'|'.join(commands)}}} [ARG]")
    commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
