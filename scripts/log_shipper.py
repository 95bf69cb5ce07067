"""Lambda's log delivery, for the local stack: tails the functions' output under `cargo lambda
watch` and puts each function's lines into its CloudWatch Logs log group on moto, named as the
template names them (`/aws/lambda/<stack>-<function>`), so that `pipeline logs` reads the local
stack exactly as it reads a deployment.

Which function wrote a line is read off the line itself: the functions' JSON log lines carry
it in `span.function`, their EMF metric documents in `Function`. Anything else in the file
(cargo's own output) is not a function's log line and is skipped. A line's `timestamp` (RFC
3339) becomes its event time, as Lambda's JSON log format does; lines without one take the
time they were read.

    python scripts/log_shipper.py WATCH_LOG      # runs until killed; started by scripts/local-aws
"""
import contextlib
import datetime
import json
import os
import sys
import time

import boto3


def function_of(line):
    """The function that wrote this line and the line's own time in ms (or None), or None."""
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    span = doc.get("span")
    if isinstance(span, dict) and isinstance(span.get("function"), str):
        return span["function"], time_of(doc.get("timestamp"))
    if "_aws" in doc and isinstance(doc.get("Function"), str):
        return doc["Function"], None
    return None


def time_of(stamp):
    """Milliseconds since the epoch of an RFC 3339 time, or None."""
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def main(path):
    logs = boto3.client("logs", region_name=os.environ.get("AWS_REGION", "us-east-1"),
                        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        aws_access_key_id="test", aws_secret_access_key="test")
    stack = os.environ["PIPELINE_STACK"]
    stream = time.strftime("%Y/%m/%d/[$LATEST]local")
    ready = set()
    offset = 0
    pending = ""
    while True:
        try:
            with open(path, errors="replace") as fh:
                fh.seek(offset)
                chunk = fh.read()
                offset = fh.tell()
        except FileNotFoundError:
            chunk = ""
        pending += chunk
        *lines, pending = pending.split("\n")
        batches = {}
        now = int(time.time() * 1000)
        for raw in lines:
            line = raw.strip()
            found = function_of(line)
            if found:
                function, t_ms = found
                batches.setdefault(f"/aws/lambda/{stack}-{function}", []).append({"timestamp": t_ms or now, "message": line})
        for group, events in batches.items():
            events.sort(key=lambda e: e["timestamp"])  # PutLogEvents wants them in time order
            if group not in ready:
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_group(logGroupName=group)
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_stream(logGroupName=group, logStreamName=stream)
                ready.add(group)
            for i in range(0, len(events), 1000):
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 1000])
        time.sleep(0.3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
