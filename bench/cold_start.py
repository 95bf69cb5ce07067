"""Cold start of each Lambda binary beside a minimal `lambda_runtime` echo function.

    python bench/cold_start.py [--runs 15] [--json] BINARY...

For every binary: start a stand-in Lambda Runtime API on 127.0.0.1 (a free port), exec the
binary with AWS_LAMBDA_RUNTIME_API pointing at it, and time exec -> its first
`GET /2018-06-01/runtime/invocation/next`, the moment a function is ready for work. Its
resident memory is read at that moment, then it is killed. Prints the median over the runs,
the ratio to the echo baseline (the binary named `echo`), and each binary's size as built and
stripped (of this machine's architecture: cross-building arm64 is not done here).
`bench/cold-start` builds the binaries and runs this.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NEXT = "/2018-06-01/runtime/invocation/next"


class Api(BaseHTTPRequestHandler):
    """Answers nothing useful: it notes when and how big the function was when it asked."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        if self.path == NEXT and server.first is None:
            server.first = time.perf_counter()
            server.rss_kb = rss_kb(server.pid)
            server.ready.set()
        self.send_response(503)
        self.end_headers()

    def do_POST(self):  # noqa: N802
        self.send_response(202)
        self.end_headers()

    def log_message(self, *_):
        pass


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def one_start(binary):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.first, server.rss_kb, server.pid = None, None, None
    server.ready = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": Path(binary).name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "cold-start",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        # What the template sets that a function insists on.
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:cold-start",
        # Any AWS call at start would go here and fail: a function must not make one.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.pid = proc.pid
    ok = server.ready.wait(timeout=10)
    proc.kill()
    proc.wait()
    server.shutdown()
    server.server_close()
    if not ok:
        raise SystemExit(f"{binary}: never asked for work within 10 s")
    return (server.first - start) * 1000, (server.rss_kb or 0) / 1024


def stripped_size(binary):
    strip = shutil.which("strip")
    if not strip:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bin"
        shutil.copy(binary, copy)
        subprocess.run([strip, str(copy)], check=True)
        return copy.stat().st_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # Round-robin over the binaries, so that a busy moment on a shared machine slows every
    # binary's starts alike instead of one binary's whole series (the ratios are the result).
    starts_of = {binary: [] for binary in args.binaries}
    for _ in range(args.runs):
        for binary in args.binaries:
            starts_of[binary].append(one_start(binary))
    rows = []
    for binary in args.binaries:
        starts = starts_of[binary]
        rows.append(
            {
                "binary": Path(binary).name,
                "init_ms": statistics.median(s[0] for s in starts),
                "rss_mb": statistics.median(s[1] for s in starts),
                "size_mb": Path(binary).stat().st_size / 2**20,
                "stripped_mb": (stripped_size(binary) or 0) / 2**20,
            }
        )
    echo = next((r for r in rows if r["binary"] == "echo"), None)
    for r in rows:
        r["init_vs_echo"] = r["init_ms"] / echo["init_ms"] if echo else None
    if args.json:
        print(json.dumps({"runs": args.runs, "binaries": rows}))
        return
    print(f"median of {args.runs} starts; exec -> first GET {NEXT}")
    print(f"{'':10}{'init ms':>9}{'vs echo':>9}{'RSS MB':>8}{'size MB':>9}{'stripped':>10}")
    for r in rows:
        ratio = f"{r['init_vs_echo']:.2f}x" if r["init_vs_echo"] else "-"
        print(f"{r['binary']:10}{r['init_ms']:9.1f}{ratio:>9}{r['rss_mb']:8.1f}{r['size_mb']:9.1f}{r['stripped_mb']:10.1f}")


if __name__ == "__main__":
    sys.exit(main())
