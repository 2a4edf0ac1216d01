"""Serving benchmark: cold start, single-image latency and batch throughput of `mlflow models serve`.

    python benchmarks/bench_serve.py --model models:/digits-clusters@champion --dataset digits

Cold start is process start to the first answered /invocations request, in two parts: loading
(process start → ``/ping`` answers, the model loaded) and the first answer (→ the first request
answered). ``--repeats`` servers are started one after another; medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

import numpy as np
from stack import model_server  # benchmarks/stack.py, beside this script
import report  # benchmarks/report.py, beside this script


def encoded_images(dataset: str, n: int) -> list[str]:
    from registry.promote import png_base64
    from selector.stages.data import load_dataset

    data = load_dataset(dataset)
    return [png_base64(data.images[i % len(data)]) for i in range(n)]


def post(port: int, rows: list[str]) -> float:
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/digits-clusters@champion")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--single", type=int, default=50, help="single-image requests for the latency figures")
    parser.add_argument("--batches", type=int, default=5, help="batches of 256 for the throughput figure")
    parser.add_argument("--repeats", type=int, default=3, help="server starts for the cold-start figures")
    args = parser.parse_args()

    images = encoded_images(args.dataset, 256)
    loads, firsts, single, batch = [], [], [], []
    for repeat in range(args.repeats):
        with model_server(args.model) as (port, loaded):
            loads.append(loaded)
            first = post(port, images[:1])
            firsts.append(first)
            if repeat == 0:
                single = [post(port, images[i % 256: i % 256 + 1]) for i in range(args.single)]
                batch = [post(port, images) for _ in range(args.batches)]
    p50, p95 = np.percentile(single, [50, 95])
    cold = statistics.median(a + b for a, b in zip(loads, firsts))
    rows = [(f"loading: process start → /ping (median of {args.repeats})", f"{statistics.median(loads):.1f} s"),
            ("first answer after loading", f"{statistics.median(firsts) * 1000:.0f} ms"),
            ("cold start (process → first answer)", f"{cold:.1f} s"),
            (f"single image p50 ({args.single} requests)", f"{p50 * 1000:.1f} ms"),
            ("single image p95", f"{p95 * 1000:.1f} ms"),
            (f"batch of 256, median of {args.batches}", f"{statistics.median(batch):.2f} s"),
            ("batch throughput", f"{256 / statistics.median(batch):.0f} images/s")]
    print(f"model {args.model}")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    report.run(main, "bench_serve: " + __doc__.strip().splitlines()[0])
