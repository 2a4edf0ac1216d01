"""The embedding stage: images → vectors, batched, on a GPU when there is one, cached on disk.

The cache is keyed by the data set's content fingerprint and the encoder's identity (name,
checkpoint digest, image size, colour mode), so a second call with the same inputs loads a file
and never builds the model.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selector.cache import cache_path
from selector.stages.data import Dataset, ImageDecodeError
from selector.files import read_verified, unreadable, write_cache
from selector.machine import available_cores
from selector.stages.encoders import check_request, create_encoder, encoders_taking, get_encoder, identity

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Where embeddings are cached: ``embeddings`` under the cache root (``selector.cache``)."""
    return cache_path("embeddings")


@dataclass
class Embeddings:
    """Vectors for the images that could be read, with their ids and labels."""

    vectors: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    dataset: str
    encoder: dict
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cache_hit: bool = False
    cache_path: Path | None = None
    device: str = "cpu"
    key: str = ""  # identifies these vectors: data content + encoder identity (cache key, study identity)

    @property
    def images_per_second(self) -> float:
        return len(self.vectors) / self.seconds if self.seconds > 0 else float("nan")


class _Items:
    """A torch map-style data set over the images; unreadable ones come back as ``None``."""

    def __init__(self, images, preprocess):
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        try:
            return index, self.preprocess(self.images[index])
        except ImageDecodeError as exc:
            return index, str(exc)


def _collate(items):
    from selector.stages.encoders import stack

    good = [(i, t) for i, t in items if not isinstance(t, str)]
    bad = [(i, t) for i, t in items if isinstance(t, str)]
    return [i for i, _ in good], stack([t for _, t in good]) if good else None, bad


def default_workers(n_items: int) -> int:
    """Decode in worker processes only when there is enough work to pay for starting them."""
    cpus = available_cores()
    return 0 if n_items < 512 or cpus < 2 else min(4, cpus - 1)


def forward_prepared(encoder, prepared: list, batch_size: int) -> np.ndarray:
    """Vectors for preprocessed images, ``batch_size`` of them at a time through the encoder."""
    from selector.stages.encoders import stack

    if not prepared:
        return np.zeros((0, encoder.dim or 0), np.float32)
    return np.concatenate([encoder.forward(stack(prepared[i:i + batch_size]))
                           for i in range(0, len(prepared), batch_size)])


def run_encoder(encoder, images, batch_size: int, num_workers: int | None = None, progress: bool = True):
    """Preprocess (in DataLoader workers) and forward every image; returns (kept indices, vectors, errors)."""
    kept, vectors, errors = run_stages(encoder, images, (encoder.stage,), batch_size, num_workers, progress)
    return kept, vectors[0], errors


def run_stages(encoder, images, stages: tuple[int, ...], batch_size: int, num_workers: int | None = None,
               progress: bool = True):
    """``run_encoder`` for several of the network's stages in one pass (0 = its final embedding);
    returns (kept indices, one array of vectors per stage, errors)."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    workers = default_workers(len(images)) if num_workers is None else num_workers
    loader = DataLoader(
        _Items(images, encoder.preprocess),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=encoder.device.startswith("cuda"),
        persistent_workers=False,
    )
    kept, chunks, errors = [], [[] for _ in stages], []
    with tqdm(total=len(images), desc=f"embed {encoder.name}", unit="img", disable=not progress) as bar:
        for indices, tensor, bad in loader:
            if tensor is not None:
                for chunk, out in zip(chunks, encoder.forward_stages(tensor, tuple(stages))):
                    chunk.append(out)
                kept.extend(indices)
            errors.extend(bad)
            bar.update(len(indices) + len(bad))
    dim = encoder.dim or 0
    vectors = [np.concatenate(chunk).astype(np.float32, copy=False) if chunk else np.zeros((0, dim), np.float32)
               for chunk in chunks]
    return np.asarray(kept, dtype=np.int64), vectors, errors


def _cache_key(dataset: Dataset, encoder_identity: dict) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "data": dataset.fingerprint, "encoder": encoder_identity},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def check_embed_request(dataset: Dataset, encoder: str, checkpoint: str = "", image_size: int = 0,
                        batch_size: int = 64) -> str:
    """Everything that can be wrong with a request, found before any run or file is written."""
    return check_encoder_request(dataset.kind, dataset.name, encoder, checkpoint, image_size, batch_size)


def check_encoder_request(kind: str, source: str, encoder: str, checkpoint: str = "", image_size: int = 0,
                          batch_size: int = 64) -> str:
    """``check_embed_request`` for a data set named ``source`` holding ``kind`` (``images`` or ``vectors``)
    that this process does not load (e.g. one Spark reads)."""
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be an int >= 1; got {batch_size}.")
    encoder = check_request(encoder, checkpoint, image_size)
    takes = get_encoder(encoder).takes
    if takes != kind:
        raise ValueError(f"encoder {encoder!r} takes {takes}, but data set {source!r} holds {kind}; "
                         f"encoders for {kind}: {', '.join(encoders_taking(kind))}.")
    return encoder


def embed(dataset: Dataset, encoder: str, checkpoint: str = "", image_size: int = 0, batch_size: int = 64,
          device: str = "auto", num_workers: int | None = None, use_cache: bool = True,
          progress: bool = True) -> Embeddings:
    """Vectors for ``dataset`` from ``encoder``, computed once per (content, encoder identity)."""
    return embed_many(dataset, [encoder], checkpoint, image_size, batch_size, device, num_workers, use_cache,
                      progress)[0]


def embed_many(dataset: Dataset, encoders: list[str], checkpoint: str = "", image_size: int = 0,
               batch_size: int = 64, device: str = "auto", num_workers: int | None = None, use_cache: bool = True,
               progress: bool = True) -> list[Embeddings]:
    """``embed`` for several encoders; the layers of one network (``NAME``, ``NAME@stageN``, …) not
    yet cached are computed in one forward pass, each cached as if embedded alone."""
    from selector.stages.encoders import split_layer, stage_name

    names = [check_embed_request(dataset, name, checkpoint, image_size, batch_size) for name in encoders]
    if dataset.kind == "vectors":  # the encoder takes vectors: they are used as given
        return [_as_given(dataset, name) for name in names]
    mode = dataset.images.mode  # the encoder's config keeps it only where it matters (raw pixels)
    found: dict[str, Embeddings] = {}
    missing: dict[str, list[int]] = {}  # network -> its stages to compute
    for name in names:
        ident = identity(name, checkpoint, image_size, mode)
        key = _cache_key(dataset, ident)
        path = cache_dir() / f"{key}.npz"
        stored = _load_cached(dataset, name, ident, key, path) if use_cache and path.is_file() else None
        if stored is not None:
            found[stage_name(*split_layer(name))] = stored
        else:
            base, stage = split_layer(name)
            missing.setdefault(base, []).append(stage)
    for base, stages in missing.items():
        stages = sorted(set(stages))
        built = create_encoder(stage_name(base, stages[0]), checkpoint=checkpoint, image_size=image_size,
                               device=device, mode=mode)
        start = time.perf_counter()
        kept, per_stage, errors = run_stages(built, dataset.images, tuple(stages), int(batch_size), num_workers,
                                             progress)
        seconds = time.perf_counter() - start
        skipped = [str(dataset.ids[i]) for i, _ in errors]
        for _, message in errors[:10]:
            logger.warning("skipped: %s", message)
        if errors:
            logger.warning("skipped %d of %d image(s) that could not be decoded", len(errors), len(dataset))
        if len(kept) == 0:
            raise ValueError(f"none of the {len(dataset)} image(s) in {dataset.name!r} could be decoded.")
        for stage, vectors in zip(stages, per_stage):
            name = stage_name(base, stage)
            ident = identity(name, checkpoint, image_size, mode)
            key = _cache_key(dataset, ident)
            path = cache_dir() / f"{key}.npz"
            if use_cache:
                write_cache(path, lambda handle, v=vectors: np.savez(
                    handle, kept=kept, vectors=v, seconds=np.float64(seconds), skipped=np.array(skipped, dtype=str)))
            result = _result(dataset, ident, kept, vectors, skipped, seconds, cache_hit=False,
                             path=path if use_cache else None, key=key)
            result.device = built.device
            found[name] = result
    return [found[stage_name(*split_layer(name))] for name in names]


def _as_given(dataset: Dataset, encoder: str) -> Embeddings:
    ident = identity(encoder)
    return Embeddings(vectors=dataset.vectors, ids=dataset.ids, labels=dataset.labels, dataset=dataset.name,
                      encoder=ident, cache_hit=True, key=_cache_key(dataset, ident))


def _load_cached(dataset: Dataset, encoder: str, ident: dict, key: str, path: Path) -> Embeddings | None:
    try:
        with np.load(io.BytesIO(read_verified(path)), allow_pickle=False) as stored:
            kept, vectors = stored["kept"], stored["vectors"]
            skipped = [str(s) for s in stored["skipped"]]
            seconds = float(stored["seconds"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        unreadable(path, exc)
        return None
    logger.info("embeddings for %s/%s loaded from cache %s", dataset.name, encoder, path)
    return _result(dataset, ident, kept, vectors, skipped, seconds, cache_hit=True, path=path, key=key)


def _result(dataset: Dataset, ident: dict, kept: np.ndarray, vectors: np.ndarray, skipped: list[str],
            seconds: float, cache_hit: bool, path: Path | None, key: str) -> Embeddings:
    return Embeddings(
        vectors=vectors,
        ids=dataset.ids[kept],
        labels=None if dataset.labels is None else dataset.labels[kept],
        dataset=dataset.name,
        encoder=ident,
        skipped=skipped,
        seconds=seconds,
        cache_hit=cache_hit,
        cache_path=path,
        key=key,
    )
