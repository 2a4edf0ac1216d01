"""Data sets: the built-in ``digits``, a folder of images, or a file of precomputed vectors.

Every source yields a :class:`Dataset`: either images (decoded lazily, one at a time, so a large
folder never sits in memory at once) or vectors, plus optional labels, stable ids and a content
fingerprint that keys the embedding cache.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from selector.files import sha256

logger = logging.getLogger(__name__)

# Formats Pillow only identifies (stubs needing a handler of the user's), or decodes through an
# outside program (Ghostscript), are not taken for images.
_NOT_DECODED = frozenset({"BUFR", "GRIB", "HDF5", "WMF", "EPS", "MPEG"})


def _image_suffixes() -> frozenset[str]:
    """Every file suffix Pillow (and any plugin registered with it, e.g. pillow-heif) can decode."""
    from PIL import Image

    try:  # HEIC/HEIF photos (phones), when the optional plugin is installed
        from pillow_heif import register_heif_opener

        register_heif_opener()
    except ImportError:
        pass
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN and fmt not in _NOT_DECODED)


IMAGE_SUFFIXES = _image_suffixes()
VECTOR_SUFFIXES = frozenset({".npy", ".npz", ".csv", ".parquet"})
LABEL_COLUMN = "label"
ID_COLUMN = "id"
# A table may hold each point's vector in one array column (what ``embed`` writes on Spark); such a
# data set's ``feature_names`` are ``[VECTOR_COLUMN]`` and a model trained on it takes that column.
VECTOR_COLUMN = "vector"
MIN_POINTS = 5
GREY_MODES = frozenset({"1", "L", "I", "I;16", "F"})  # Pillow modes read as one grey channel


class ImageDecodeError(ValueError):
    """An image that cannot be read; the embedding stage skips it and counts it."""


class ImageTooLarge(ImageDecodeError):
    """An image with more pixels than the stated limit (``MAX_IMAGE_PIXELS``)."""


@dataclass(frozen=True)
class ArrayImages:
    """Images already in memory as ``uint8`` arrays (H×W grey or H×W×3 RGB)."""

    arrays: Sequence[np.ndarray]

    @property
    def mode(self) -> str:
        return "L" if all(a.ndim == 2 for a in self.arrays) else "RGB"

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.arrays[index]


@dataclass(frozen=True)
class FileImages:
    """Images on disk, decoded on access so DataLoader workers can share the work."""

    paths: Sequence[Path]
    mode: str = "RGB"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return decode_image(self.paths[index].read_bytes(), source=str(self.paths[index]))


# The largest image decoded, in pixels: 50 megapixels (an 8,000 × 6,000 photo is 48). Larger ones
# are refused from their header, before a byte of pixels is unpacked; PIL's own decompression-bomb
# guard is set to the same number rather than left at its default.
MAX_IMAGE_PIXELS = 50_000_000


def decode_image(data: bytes, source: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/... bytes to ``uint8`` (H×W for grey, H×W×3 otherwise); an image of more than
    ``max_pixels`` pixels raises ``ImageDecodeError`` naming the limit."""
    import io

    from PIL import Image, UnidentifiedImageError

    from selector.quiet import known_noise

    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        # PIL warns between 1× and 2× its limit; here such an image is refused below, naming the limit
        with known_noise("", category=Image.DecompressionBombWarning):
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"{source} is {width} × {height} = {width * height:,} pixels; the limit is "
                                       f"{max_pixels:,} pixels")
            image.load()
            grey = image.mode in GREY_MODES
            converted = image.convert("L" if grey else "RGB")
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{source} exceeds the limit of {max_pixels:,} pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError(f"cannot decode {source}: {exc}") from exc
    return np.asarray(converted, dtype=np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a ``uint8`` image: the inverse of :func:`decode_image`, for requests and fixtures."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Dataset:
    """What every source yields: images or vectors, optional labels, ids and a fingerprint."""

    name: str
    fingerprint: str
    ids: np.ndarray
    images: ArrayImages | FileImages | None = None
    vectors: np.ndarray | None = None
    labels: np.ndarray | None = None
    feature_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "images" if self.images is not None else "vectors"

    def __len__(self) -> int:
        return len(self.ids)


def load_digits_dataset() -> Dataset:
    """scikit-learn's 1,797 labelled 8×8 digits, as grey ``uint8`` images."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values run 0..16; scale to the 0..255 of an ordinary grey image.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    digest = hashlib.sha256(images.tobytes() + bunch.target.astype(np.int64).tobytes()).hexdigest()
    ids = np.array([f"digits/{i:04d}" for i in range(len(images))])
    return Dataset(
        name="digits",
        fingerprint=digest,
        ids=ids,
        images=ArrayImages(list(images)),
        labels=bunch.target.astype(np.int64),
        info={"source": "sklearn.datasets.load_digits"},
    )


def load_image_folder(root: Path) -> Dataset:
    """Every image under ``root`` (recursively), labelled by first-level sub-folder when all sit in one.

    Only file headers are read here; pixels are decoded by the embedding stage, which skips (and
    counts) files that turn out to be corrupt.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(
            f"dataset folder {str(root)!r} holds no image files "
            f"(looked recursively for the {len(IMAGE_SUFFIXES)} suffixes Pillow decodes, e.g. .png, .jpg, .pgm, "
            ".tif, .webp)."
        )
    readable, modes, digest = [], set(), hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as image:
                modes.add(image.mode)
        except (UnidentifiedImageError, OSError) as exc:
            logger.warning("skipping %s: not a readable image (%s)", path, exc)
            continue
        relative = path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
        readable.append(path)
    if not readable:
        raise ValueError(f"dataset folder {str(root)!r} has {len(paths)} image file(s), none readable.")
    relative = [p.relative_to(root) for p in readable]
    labels = None
    if all(len(r.parts) > 1 for r in relative):
        labels = np.array([r.parts[0] for r in relative])
    elif any(len(r.parts) > 1 for r in relative):
        logger.warning(
            "images in %s sit both in the top folder and in sub-folders: loading without labels", root
        )
    mode = "L" if modes and modes <= GREY_MODES else "RGB"
    return Dataset(
        name=root.name,
        fingerprint=digest.hexdigest(),
        ids=np.array([r.as_posix() for r in relative]),
        images=FileImages(readable, mode=mode),
        labels=labels,
        info={"source": str(root), "n_unreadable": len(paths) - len(readable)},
    )


def _check_vectors(vectors: np.ndarray, source: str) -> np.ndarray:
    if vectors.ndim != 2:
        raise ValueError(f"vectors in {source} must be a 2-D array (points × features); got shape {vectors.shape}.")
    if not np.issubdtype(vectors.dtype, np.number):
        raise ValueError(f"vectors in {source} must be numeric; got dtype {vectors.dtype}.")
    vectors = vectors.astype(np.float32, copy=False)
    bad = ~np.isfinite(vectors)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"vectors in {source} contain {int(bad.sum())} NaN/inf value(s) in {len(rows)} row(s); "
            f"first bad row: {int(rows[0])}."
        )
    return vectors


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, np.ndarray | None]:
    return np.load(path, allow_pickle=False), None, None, None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        if "X" not in archive:
            raise ValueError(f"{str(path)!r} has no array named 'X' (found: {', '.join(archive.files)}).")
        labels = archive["y"] if "y" in archive else None
        ids = archive["ids"].astype(str) if "ids" in archive else None
        return archive["X"], labels, None, ids


def _read_table(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, np.ndarray | None]:
    import pandas as pd

    frame = pd.read_parquet(path) if path.is_dir() or path.suffix.lower() == ".parquet" else pd.read_csv(path)
    return table_parts(frame, repr(str(path)))


def table_parts(frame, source: str) -> tuple[np.ndarray, np.ndarray | None, list[str], np.ndarray | None]:
    """A table's feature values, its ``label`` and ``id`` columns (when present) and its feature names;
    every other column must be numeric (``source`` names the table in the error). A table with an
    array column ``vector`` (one vector a row, as ``embed`` writes them) takes its features from that
    column alone; its rows without a vector (images that could not be decoded) are left out, with a warning."""
    import pandas as pd

    if VECTOR_COLUMN in frame.columns:
        return _vector_column_parts(frame, source)
    frame = frame.copy()
    labels = frame.pop(LABEL_COLUMN).to_numpy() if LABEL_COLUMN in frame.columns else None
    ids = frame.pop(ID_COLUMN).astype(str).to_numpy() if ID_COLUMN in frame.columns else None
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(
            f"{source} has non-numeric feature column(s) {non_numeric}; every column but "
            f"{LABEL_COLUMN!r} and {ID_COLUMN!r} must be numeric (or the vectors sit in one array column "
            f"{VECTOR_COLUMN!r})."
        )
    if frame.shape[1] == 0:
        raise ValueError(f"{source} has no feature columns.")
    return frame.to_numpy(), labels, [str(c) for c in frame.columns], ids


def _vector_column_parts(frame, source: str):
    missing = frame[VECTOR_COLUMN].isna().to_numpy()
    if missing.any():
        logger.warning("%s: %d of %d row(s) have no %r (their images could not be decoded; see the 'error' column): "
                       "left out", source, int(missing.sum()), len(frame), VECTOR_COLUMN)
        frame = frame.loc[~missing]
    if len(frame) == 0:
        raise ValueError(f"{source} has no row with a {VECTOR_COLUMN!r}.")
    try:
        vectors = np.stack([np.asarray(v, dtype=np.float64) for v in frame[VECTOR_COLUMN]])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: column {VECTOR_COLUMN!r} must hold equally long lists of numbers ({exc}).") from None
    labels = frame[LABEL_COLUMN].to_numpy() if LABEL_COLUMN in frame.columns else None
    ids = frame[ID_COLUMN].astype(str).to_numpy() if ID_COLUMN in frame.columns else None
    return vectors, labels, [VECTOR_COLUMN], ids


def is_parquet_folder(path: Path) -> bool:
    """A folder of Parquet part files (Spark's and pyarrow's way of writing one table), no images."""
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(("_", "."))]
    return bool(files) and all(p.suffix.lower() in (".parquet", ".crc") for p in files) and \
        any(p.suffix.lower() == ".parquet" for p in files)


def parquet_parts(path: Path) -> list[Path]:
    """The part files of a Parquet file or folder, in name order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet"
                  and not p.name.startswith(("_", ".")))


_VECTOR_READERS: dict[str, Callable] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".csv": _read_table,
    ".parquet": _read_table,
}


def load_vector_file(path: Path) -> Dataset:
    """Precomputed embeddings from ``.npy``, ``.npz`` (``X``, optional ``y``), ``.csv`` or ``.parquet`` (a
    file, or a folder of part files)."""
    try:
        raw, labels, names, ids = _VECTOR_READERS[".parquet" if path.is_dir() else path.suffix.lower()](path)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"cannot read vectors from {str(path)!r}: {exc}") from exc
    vectors = _check_vectors(np.asarray(raw), repr(str(path)))
    n = len(vectors)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{str(path)!r}: {len(labels)} labels for {n} vectors.")
    if ids is None:
        ids = np.array([f"{i}" for i in range(n)])
    if path.is_dir():  # a folder of part files: their names and contents
        digest = hashlib.sha256()
        for part in parquet_parts(path):
            digest.update(part.name.encode() + b"\0" + bytes.fromhex(sha256(part)))
        fingerprint = digest.hexdigest()
    else:
        fingerprint = sha256(path)
    return Dataset(
        name=path.stem,
        fingerprint=fingerprint,
        ids=np.asarray(ids),
        vectors=vectors,
        labels=None if labels is None else np.asarray(labels),
        feature_names=names or [f"f{i}" for i in range(vectors.shape[1])],
        info={"source": str(path)},
    )


BUILTIN_DATASETS: dict[str, Callable[[], Dataset]] = {"digits": load_digits_dataset}


LABELS_HELP = ("`labels` is 'auto' (image sub-folders, or a 'label' column), 'none', or a CSV file with columns "
               "'id' and 'label'")


def check_labels(labels: str) -> str:
    """``labels`` checked before anything is read: ``auto``, ``none`` or an existing CSV file."""
    text = str(labels).strip()
    if text.lower() in ("auto", "none"):
        return text.lower()
    if not text.lower().endswith(".csv") or not Path(text).expanduser().is_file():
        raise ValueError(f"{LABELS_HELP}; got {labels!r}" + ("" if text.lower().endswith(".csv")
                                                             else " (not a .csv file)") + ".")
    return text


def with_labels(dataset: Dataset, labels: str = "auto") -> Dataset:
    """``dataset`` validated against the labels asked for: its own (``auto``), none at all (``none``:
    a photo library sorted by year is not labelled by year), or those of a CSV of ``id,label`` whose
    ids are the data set's (a file's path under the folder, or a vector file's row id)."""
    import dataclasses

    import pandas as pd

    choice = check_labels(labels)
    if choice == "auto":
        return dataset
    if choice == "none":
        return dataclasses.replace(dataset, labels=None, info={**dataset.info, "labels": "none"})
    table = pd.read_csv(Path(choice).expanduser(), dtype={ID_COLUMN: str})
    if not {ID_COLUMN, LABEL_COLUMN} <= set(table.columns):
        raise ValueError(f"labels file {choice!r} needs columns {ID_COLUMN!r} and {LABEL_COLUMN!r}; "
                         f"got {list(map(str, table.columns))}.")
    if table[ID_COLUMN].duplicated().any():
        twice = table.loc[table[ID_COLUMN].duplicated(), ID_COLUMN].iloc[0]
        raise ValueError(f"labels file {choice!r} gives id {twice!r} more than one label.")
    by_id = dict(zip(table[ID_COLUMN], table[LABEL_COLUMN]))
    ids = [str(i) for i in dataset.ids]
    unlabelled = [i for i in ids if i not in by_id]
    if unlabelled:
        raise ValueError(f"labels file {choice!r} has no label for {len(unlabelled)} of the {len(ids)} points of "
                         f"{dataset.name!r} (e.g. {unlabelled[0]!r}; ids are file paths under the folder, or a vector "
                         "file's 'id' column / row numbers).")
    unknown = len(set(by_id) - set(ids))
    if unknown:
        logger.warning("labels file %s names %d id(s) that are not in %s; they are ignored", choice, unknown,
                       dataset.name)
    return dataclasses.replace(dataset, labels=np.array([by_id[i] for i in ids]),
                               info={**dataset.info, "labels": choice})


def load_dataset(spec: str | Path, labels: str = "auto") -> Dataset:
    """Resolve a data set name or path — a built-in name, an image folder, or a vector file — with the
    labels asked for (``with_labels``: ``auto``, ``none`` or a CSV of ``id,label``)."""
    check_labels(labels)
    return with_labels(_load(spec), labels)


def _load(spec: str | Path) -> Dataset:
    text = str(spec).strip()
    if text in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[text]()
    path = Path(text).expanduser()
    if path.is_dir() and is_parquet_folder(path):
        dataset = load_vector_file(path)
    elif path.is_dir():
        dataset = load_image_folder(path)
    elif path.is_file():
        if path.suffix.lower() not in VECTOR_SUFFIXES:
            raise ValueError(
                f"dataset file {text!r} has an unsupported suffix {path.suffix!r}; expected one of "
                f"{', '.join(sorted(VECTOR_SUFFIXES))}, an image folder, or a built-in name "
                f"({', '.join(sorted(BUILTIN_DATASETS))})."
            )
        dataset = load_vector_file(path)
    else:
        raise ValueError(
            f"dataset {text!r} is neither a built-in name ({', '.join(sorted(BUILTIN_DATASETS))}) "
            "nor an existing folder or file."
        )
    if len(dataset) < MIN_POINTS:
        raise ValueError(f"dataset {text!r} has {len(dataset)} point(s); at least {MIN_POINTS} are needed.")
    return dataset

