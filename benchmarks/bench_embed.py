"""Images/s of the `embed` stage against the bare model forward on tensors already in memory.

Same model, batch size, device and images: the bare forward is the limit (no decoding, no resizing,
no DataLoader); `embed` reads the images as PNG files from a folder and decodes and resizes them in
DataLoader workers while the model runs.

    python benchmarks/bench_embed.py --encoder efficientnet_lite0 --n_images 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--n_images", type=int, default=1024, help="the first N digits")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from selector.stages.data import encode_png, load_dataset
    from selector.stages.embedding import embed
    from selector.stages.encoders import create_encoder, resolve_device, stack

    data = load_dataset("digits")
    n = min(args.n_images, len(data))
    images = data.images.arrays[:n]
    folder = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    for i, image in enumerate(images):
        (folder / f"{i:05d}.png").write_bytes(encode_png(image))
    subset = load_dataset(str(folder))
    device = resolve_device(args.device)
    encoder = create_encoder(args.encoder, device=device, mode=data.images.mode)  # kept where it matters
    tensors = stack([encoder.preprocess(image) for image in images])
    encoder.forward(tensors[: args.batch_size])  # warm-up (allocations, cuDNN autotune)

    bare, staged = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for i in range(0, n, args.batch_size):
            encoder.forward(tensors[i:i + args.batch_size])
        bare.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        result = embed(subset, args.encoder, batch_size=args.batch_size, device=device, use_cache=False,
                       progress=False)
        staged.append(n / (time.perf_counter() - start))
        assert result.vectors.shape[0] == n and np.isfinite(result.vectors).all()

    b, s = statistics.median(bare), statistics.median(staged)
    print(f"\n{args.encoder} on {n} digits, batch {args.batch_size}, {device}, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats}")
    print("| path | images/s (median) | runs |\n|---|---|---|")
    print(f"| bare forward on in-memory tensors | {b:.1f} | {', '.join(f'{x:.1f}' for x in bare)} |")
    print(f"| `embed` stage (decode + resize + forward, DataLoader) | {s:.1f} | {', '.join(f'{x:.1f}' for x in staged)} |")
    print(f"ratio embed / bare: {s / b:.2f}")


if __name__ == "__main__":
    report.run(main, "bench_embed: " + __doc__.strip().splitlines()[0])
