"""Data a Python caller holds — arrays, DataFrames, lists of image paths or PIL images — as a
``Dataset``, the form every stage reads (``selector.search``, ``selector.AutoCluster``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from selector.stages.data import (BUILTIN_DATASETS, GREY_MODES, MIN_POINTS, ArrayImages, Dataset, FileImages,
                                  _check_vectors, load_dataset, table_parts, with_labels)


def as_dataset(data, labels=None, name: str | None = None) -> Dataset:
    """Whatever a Python caller holds, as a ``Dataset``: a built-in name, a folder or vector file (a
    ``str`` or ``Path``); a NumPy array (points × features: vectors; N×H×W or N×H×W×C: images); a
    pandas DataFrame (numeric columns, optional ``label`` and ``id`` columns); a list of image paths,
    PIL images or image arrays; or a ``Dataset``. ``labels``: for a name or path, ``auto``/``none``/a
    CSV as ``load_dataset`` takes them; for data in memory, one true label per point (validation only)."""
    import dataclasses

    if isinstance(data, Dataset):
        dataset = data
    elif isinstance(data, (str, Path)):
        return load_dataset(data, "auto" if labels is None else labels)
    elif _is_frame(data):
        dataset = _frame_dataset(data, name or "dataframe")
    elif isinstance(data, np.ndarray):
        dataset = _array_dataset(data, name or ("vectors" if data.ndim == 2 else "images"))
    elif isinstance(data, (list, tuple)):
        dataset = _list_dataset(list(data), name or "images")
    else:
        raise TypeError(f"`data` must be a NumPy array, a pandas DataFrame, a folder or file path, a built-in name "
                        f"({', '.join(sorted(BUILTIN_DATASETS))}), or a list of image paths or PIL images; "
                        f"got {type(data).__name__}.")
    if len(dataset) < MIN_POINTS:
        raise ValueError(f"`data` has {len(dataset)} point(s); at least {MIN_POINTS} are needed.")
    if isinstance(labels, str):
        return with_labels(dataset, labels)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(dataset):
            raise ValueError(f"`labels` must hold one label per point ({len(dataset)}); got shape {labels.shape}.")
        dataset = dataclasses.replace(dataset, labels=labels)
    return dataset


def _is_frame(data) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    return isinstance(data, pd.DataFrame)


def _frame_dataset(frame, name: str) -> Dataset:
    values, labels, names, ids = table_parts(frame, "`data`")
    dataset = _array_dataset(values, name, ids=ids, feature_names=names)
    if labels is None:
        return dataset
    import dataclasses

    return dataclasses.replace(dataset, labels=labels)


def _array_dataset(array: np.ndarray, name: str, ids=None, feature_names=None) -> Dataset:
    if array.ndim == 2:
        vectors = _check_vectors(np.asarray(array), "`data`")
        n = len(vectors)
        return Dataset(name=name, fingerprint=hashlib.sha256(vectors.tobytes() + str(vectors.shape).encode()).hexdigest(),
                       ids=np.asarray(ids) if ids is not None else np.array([str(i) for i in range(n)]),
                       vectors=vectors, feature_names=feature_names or [f"f{i}" for i in range(vectors.shape[1])],
                       info={"source": "array"})
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"an array `data` must be points × features (2-D) or images (N×H×W or N×H×W×3); "
                         f"got shape {array.shape}.")
    return _images_dataset([image for image in array], name)


def _as_uint8(image) -> np.ndarray:
    """An image as ``uint8`` H×W or H×W×3: PIL images converted, floats in [0, 1] scaled to 0–255."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        grey = image.mode in GREY_MODES
        return np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(f"an image must be H×W (grey) or H×W×3 (RGB); got shape {array.shape}.")
    if array.dtype != np.uint8:
        scaled = array.astype(np.float64)
        if not np.isfinite(scaled).all():
            raise ValueError("an image holds NaN/inf pixel values.")
        scaled = scaled * 255.0 if scaled.max(initial=0.0) <= 1.0 else scaled
        array = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    return array


def _images_dataset(images: list, name: str) -> Dataset:
    arrays = [_as_uint8(image) for image in images]
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode() + array.tobytes())
    return Dataset(name=name, fingerprint=digest.hexdigest(), ids=np.array([str(i) for i in range(len(arrays))]),
                   images=ArrayImages(arrays), info={"source": "memory"})


def _list_dataset(items: list, name: str) -> Dataset:
    if not items:
        raise ValueError("`data` is an empty list.")
    if all(isinstance(item, (str, Path)) for item in items):
        paths = [Path(item).expanduser() for item in items]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"{len(missing)} of the {len(paths)} image paths are not files (e.g. {missing[0]!r}).")
        digest = hashlib.sha256()
        for path in paths:
            digest.update(str(path.resolve()).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return Dataset(name=name, fingerprint=digest.hexdigest(), ids=np.array([str(p) for p in paths]),
                       images=FileImages(paths, mode="RGB"), info={"source": "paths"})
    return _images_dataset(items, name)
