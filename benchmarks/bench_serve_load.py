"""A bounded load test of `mlflow models serve` on loopback: good and bad requests mixed, from several
client threads at once; every answer's status counted, the server's memory before and after.

    python benchmarks/bench_serve_load.py --model models:/digits-clusters@champion --requests 2000 --threads 4

Bad kinds: garbage base64, a non-image, an empty batch, a wrong column, a number where an image
belongs, a body that is not JSON, a 30,000 × 30,000 PNG, a batch over the row limit. The server must
answer every bad one 4xx and every good one 200, with no 5xx and no crash.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import os
import random
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack import free_port  # benchmarks/stack.py, beside this script
import report  # benchmarks/report.py, beside this script


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server's workers), MiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total / 1024


def split(rows) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}}).encode()


def request_kinds(dataset: str) -> dict[str, bytes]:
    from PIL import Image

    from registry.model import MAX_IMAGE_ROWS
    from registry.promote import png_base64
    from selector.stages.data import load_dataset

    data = load_dataset(dataset)
    good = [png_base64(data.images[i]) for i in range(16)]
    buffer = io.BytesIO()
    Image.new("L", (30_000, 30_000)).save(buffer, format="PNG")
    return {
        "good: 1 image": split(good[:1]),
        "good: 16 images": split(good),
        "bad: garbage base64": split(["%%% not base64 %%%"]),
        "bad: not an image": split([base64.b64encode(b"plain text, not a picture").decode()]),
        "bad: empty batch": json.dumps({"dataframe_split": {"columns": ["image"], "data": []}}).encode(),
        "bad: wrong column": json.dumps({"dataframe_split": {"columns": ["picture"], "data": [[good[0]]]}}).encode(),
        "bad: a number": split([12345]),
        "bad: not JSON": b"{this is not json",
        "bad: 900-megapixel PNG": split([base64.b64encode(buffer.getvalue()).decode()]),
        f"bad: {MAX_IMAGE_ROWS + 1} rows": split(good[:1] * (MAX_IMAGE_ROWS + 1)),
    }


def send(port: int, body: bytes) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code
    except OSError:
        return -1  # no answer at all: the connection failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/digits-clusters@champion")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--good_share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kinds = request_kinds(args.dataset)
    good = [k for k in kinds if k.startswith("good")]
    bad = [k for k in kinds if k.startswith("bad")]
    rng = random.Random(args.seed)
    plan = [rng.choice(good) if rng.random() < args.good_share else rng.choice(bad) for _ in range(args.requests)]

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="serve-load-", suffix=".log", delete=False)
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", args.model, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=dict(os.environ))
    counts: dict[str, collections.Counter] = {k: collections.Counter() for k in kinds}
    lock = threading.Lock()
    try:
        while send(port, kinds["good: 1 image"]) != 200:
            if server.poll() is not None:
                raise SystemExit(f"server exited; see {log.name}")
            time.sleep(0.5)
        before = tree_rss_mib(server.pid)
        queue = list(enumerate(plan))
        peak = [before]

        def client():
            while True:
                with lock:
                    if not queue:
                        return
                    _, kind = queue.pop()
                status = send(port, kinds[kind])
                with lock:
                    counts[kind][status] += 1

        def watch():
            while any(t.is_alive() for t in threads):
                peak[0] = max(peak[0], tree_rss_mib(server.pid))
                time.sleep(0.5)

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        watcher = threading.Thread(target=watch)
        watcher.start()
        for thread in threads:
            thread.join()
        watcher.join()
        seconds = time.perf_counter() - start
        after = tree_rss_mib(server.pid)
        alive = server.poll() is None and send(port, kinds["good: 1 image"]) == 200
    finally:
        server.terminate()
        server.wait(timeout=30)

    statuses = collections.Counter()
    for counter in counts.values():
        statuses.update(counter)
    server_errors = sum(n for status, n in statuses.items() if status >= 500 or status < 0)
    wrong = sum(n for kind, counter in counts.items() for status, n in counter.items()
                if (kind.startswith("good") and status != 200) or (kind.startswith("bad") and not 400 <= status < 500))
    print(f"model {args.model}: {args.requests} requests from {args.threads} threads in {seconds:.1f} s "
          f"({args.requests / seconds:.0f} requests/s); server alive afterwards: {alive}")
    print("| request | sent | answers |\n|---|---|---|")
    for kind, counter in counts.items():
        print(f"| {kind} | {sum(counter.values())} | {', '.join(f'{s}: {n}' for s, n in sorted(counter.items()))} |")
    print(f"\n5xx or no answer: {server_errors}; wrong status: {wrong}; server memory (RSS, all its processes): "
          f"{before:.0f} MiB before, {peak[0]:.0f} MiB peak, {after:.0f} MiB after")
    if server_errors or wrong or not alive:
        raise SystemExit(1)


if __name__ == "__main__":
    report.run(main, "bench_serve_load: " + __doc__.strip().splitlines()[0])
