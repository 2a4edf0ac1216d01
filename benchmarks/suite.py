"""The labelled development suite for choosing the label-free objective (``bench_selection``).

Every set is built offline and deterministically (a fixed generator seed), from drawing code or from
what installed packages ship, so the suite is the same on every machine. It is split in two halves:
objectives and their parameters are decided on ``DEV`` only, and ``HELD_OUT`` is reported separately.

| set | classes | what makes it hard |
|---|---|---|
| digits | 10 | the built-in data; its classes fall into far-apart groups in pretrained embeddings |
| shapes | 8 | fill colour and background are random: colour is a nuisance, shape is the class |
| textures | 6 | groups of groups: 3 families (stripes, checks, dots) × 2 scales |
| letters | 20 | many classes; size, position and slant vary |
| wine | 3 | vectors whose 13 features come in different units (proline in the hundreds) |
| scenes | 10 | crops of scikit-image's sample photos: position and zoom are nuisances |
| shifted_digits | 10 | digits moved on a larger canvas and coloured: position and colour are nuisances |
| two_kinds | 2 | blobs against line drawings, each in many colours |
| breast_cancer | 2 | vectors in different units (areas in the thousands, smoothness below 1) |

``POINTS`` (``--sets points``) are tables of 2–5 columns drawn here: round, stretched, unequal groups
(blobs3, blobs12, blobs8_5d, blobs20_3d, aniso3, varied3, uneven4) and groups that are one continuous
shape each (moons, circles, spirals, rings3, bands4).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from selector.stages.data import ArrayImages, Dataset

GENERATOR_SEED = 2026
SIZE = 64


def _dataset(name: str, images: list[np.ndarray], labels: list[int], source: str) -> Dataset:
    digest = hashlib.sha256()
    for image in images:
        digest.update(image.tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return Dataset(name=name, fingerprint=digest.hexdigest(), ids=np.array([f"{name}/{i:05d}" for i in range(len(images))]),
                   images=ArrayImages(images), labels=np.asarray(labels, dtype=np.int64), info={"source": source})


def _colour(rng, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))


def _noisy(rng, image: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _polygon(cx: float, cy: float, r: float, sides: int, turn: float) -> list[tuple[float, float]]:
    angles = turn + np.arange(sides) * 2 * np.pi / sides
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]


def _star(cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    angles = turn + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return [(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, angles)]


SHAPES = ("circle", "square", "triangle", "pentagon", "star", "cross", "ring", "crescent")


def _draw_shape(draw, kind: str, cx: float, cy: float, r: float, turn: float, fill, back) -> None:
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r * 1.15, 4, turn), fill=fill)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.2, 3, turn), fill=fill)
    elif kind == "pentagon":
        draw.polygon(_polygon(cx, cy, r * 1.1, 5, turn), fill=fill)
    elif kind == "star":
        draw.polygon(_star(cx, cy, r * 1.3, turn), fill=fill)
    elif kind == "cross":
        w = r * 0.35
        for a in (turn, turn + np.pi / 2):
            dx, dy = np.cos(a), np.sin(a)
            draw.polygon([(cx - r * dx - w * dy, cy - r * dy + w * dx), (cx + r * dx - w * dy, cy + r * dy + w * dx),
                          (cx + r * dx + w * dy, cy + r * dy - w * dx), (cx - r * dx + w * dy, cy - r * dy - w * dx)],
                         fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        q = r * 0.55
        draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=back)
    elif kind == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        ox, oy = r * 0.5 * np.cos(turn), r * 0.5 * np.sin(turn)
        draw.ellipse([cx - r + ox, cy - r + oy, cx + r + ox, cy + r + oy], fill=back)


def shapes(per_class: int = 80) -> Dataset:
    """8 filled shapes; fill colour, background, size, position and rotation are all random."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(GENERATOR_SEED)
    images, labels = [], []
    for label, kind in enumerate(SHAPES):
        for _ in range(per_class):
            back, fill = _colour(rng), _colour(rng)
            while sum(abs(a - b) for a, b in zip(back, fill)) < 150:
                fill = _colour(rng)
            picture = Image.new("RGB", (SIZE, SIZE), back)
            r = rng.uniform(14, 22)
            cx, cy = rng.uniform(r + 3, SIZE - r - 3, size=2)
            _draw_shape(ImageDraw.Draw(picture), kind, cx, cy, r, rng.uniform(0, 2 * np.pi), fill, back)
            images.append(_noisy(rng, np.asarray(picture)))
            labels.append(label)
    return _dataset("shapes", images, labels, "generated: PIL shapes")


def textures(per_class: int = 100) -> Dataset:
    """Groups of groups: stripes, checks and dots (the families), each fine and coarse."""
    rng = np.random.default_rng(GENERATOR_SEED + 1)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    images, labels = [], []
    for family in range(3):
        for scale, period in enumerate((6.0, 16.0)):
            for _ in range(per_class):
                p = period * rng.uniform(0.85, 1.15)
                a = rng.uniform(0, np.pi)
                u = xx * np.cos(a) + yy * np.sin(a) + rng.uniform(0, p)
                v = -xx * np.sin(a) + yy * np.cos(a) + rng.uniform(0, p)
                if family == 0:
                    pattern = np.sin(2 * np.pi * u / p) > 0
                elif family == 1:
                    pattern = (np.sin(2 * np.pi * u / p) > 0) ^ (np.sin(2 * np.pi * v / p) > 0)
                else:
                    pattern = (np.mod(u, p) - p / 2) ** 2 + (np.mod(v, p) - p / 2) ** 2 < (0.28 * p) ** 2
                one, two = np.array(_colour(rng)), np.array(_colour(rng))
                image = np.where(pattern[..., None], one, two).astype(np.uint8)
                images.append(_noisy(rng, image, 10.0))
                labels.append(family * 2 + scale)
    return _dataset("textures", images, labels, "generated: stripes, checks and dots at two scales")


def _glyph(rng, char: str, sizes: tuple[int, int], paper: int, ink: int, slant: float, edge: str) -> np.ndarray:
    """One character in PIL's own font, dark on light, at a random size, position and slant.
    ``edge`` says what happens when the glyph leaves no room to move: "pin" it at the top-left, or
    "clamp" the range (the two suites' generators drew their random numbers differently)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=int(rng.integers(*sizes)))
    canvas = Image.new("L", (SIZE, SIZE), int(rng.integers(paper, 256)))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
    if edge == "pin":
        x = rng.uniform(-left + 2, SIZE - right - 2) if SIZE - right - 2 > -left + 2 else -left
        y = rng.uniform(-top + 2, SIZE - bottom - 2) if SIZE - bottom - 2 > -top + 2 else -top
    else:
        x = rng.uniform(-left + 2, max(-left + 2.5, SIZE - right - 2))
        y = rng.uniform(-top + 2, max(-top + 2.5, SIZE - bottom - 2))
    draw.text((x, y), char, fill=int(rng.integers(0, ink)), font=font)
    canvas = canvas.rotate(float(rng.uniform(-slant, slant)), resample=Image.BILINEAR, fillcolor=canvas.getpixel((0, 0)))
    return _noisy(rng, np.asarray(canvas))


def _alphabet(name: str, first: str, n_letters: int, per_class: int, seed: int, **glyph) -> Dataset:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(n_letters):
        for _ in range(per_class):
            images.append(_glyph(rng, chr(ord(first) + label), **glyph))
            labels.append(label)
    last = chr(ord(first) + n_letters - 1)
    return _dataset(name, images, labels, f"generated: PIL's default font, letters {first}-{last}")


def letters(per_class: int = 40, n_letters: int = 20) -> Dataset:
    """The letters A–T in PIL's own font, at random size, position and slant, dark on light."""
    return _alphabet("letters", "A", n_letters, per_class, GENERATOR_SEED + 2, sizes=(26, 42), paper=200, ink=70,
                     slant=15, edge="pin")


SCENES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "brick", "grass")


def scenes(per_class: int = 60) -> Dataset:
    """Random crops (25–60 % of the side, flipped, brightness jitter) of ten scikit-image sample photos."""
    from PIL import Image
    from skimage import data as samples

    rng = np.random.default_rng(GENERATOR_SEED + 3)
    images, labels = [], []
    for label, name in enumerate(SCENES):
        photo = np.asarray(getattr(samples, name)())
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        photo = photo[..., :3].astype(np.uint8)
        h, w = photo.shape[:2]
        for _ in range(per_class):
            side = int(min(h, w) * rng.uniform(0.25, 0.6))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((SIZE, SIZE), Image.BILINEAR)
            crop = np.asarray(crop, dtype=np.float32) * rng.uniform(0.8, 1.2)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            images.append(np.clip(crop, 0, 255).astype(np.uint8))
            labels.append(label)
    return _dataset("scenes", images, labels, "derived: crops of scikit-image sample photos")


def _digit_picks(rng, classes: range, per_class: int):
    """(label, 8×8 grey digit scaled to 0–255) for ``per_class`` seeded picks of each of scikit-learn's classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for label in classes:
        for index in rng.choice(np.flatnonzero(bunch.target == label), size=per_class, replace=False):
            yield label, np.round(bunch.images[index] * 255 / 16).astype(np.uint8)


def shifted_digits(per_class: int = 60) -> Dataset:
    """scikit-learn's digits, scaled ×3, placed anywhere on a 40×40 canvas, in a random ink colour."""
    from PIL import Image

    rng = np.random.default_rng(GENERATOR_SEED + 4)
    images, labels = [], []
    for label, digit in _digit_picks(rng, range(10), per_class):
        glyph = Image.fromarray(digit).resize((24, 24), Image.BILINEAR)
        alpha = np.asarray(glyph, dtype=np.float32)[..., None] / 255.0
        canvas = np.zeros((40, 40, 3), np.float32) + np.array(_colour(rng, 0, 90))
        top, left = rng.integers(0, 17, size=2)
        ink = np.array(_colour(rng, 120, 256), dtype=np.float32)
        region = canvas[top:top + 24, left:left + 24]
        canvas[top:top + 24, left:left + 24] = region * (1 - alpha) + ink * alpha
        images.append(_noisy(rng, canvas))
        labels.append(label)
    return _dataset("shifted_digits", images, labels, "derived: sklearn digits moved and coloured")


def two_kinds(per_class: int = 200) -> Dataset:
    """Two classes: soft blobs against line drawings, each in random colours."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(GENERATOR_SEED + 5)
    images, labels = [], []
    for label in range(2):
        for _ in range(per_class):
            picture = Image.new("RGB", (SIZE, SIZE), _colour(rng))
            draw = ImageDraw.Draw(picture)
            for _ in range(int(rng.integers(2, 5))):
                if label == 0:
                    cx, cy = rng.uniform(8, SIZE - 8, size=2)
                    r = rng.uniform(6, 14)
                    draw.ellipse([cx - r, cy - r * rng.uniform(0.6, 1.4), cx + r, cy + r], fill=_colour(rng))
                else:
                    points = [tuple(rng.uniform(0, SIZE, size=2)) for _ in range(3)]
                    draw.line(points, fill=_colour(rng), width=int(rng.integers(2, 4)))
            if label == 0:
                picture = picture.filter(ImageFilter.GaussianBlur(2.0))
            images.append(_noisy(rng, np.asarray(picture)))
            labels.append(label)
    return _dataset("two_kinds", images, labels, "generated: blobs and line drawings")


# ---------------------------------------------------------------- the fresh half (added later; see DEV)
def rotated_digits(per_class: int = 60) -> Dataset:
    """Digits 0–4 of scikit-learn's set, enlarged, rotated ±35° and shifted, grey."""
    from PIL import Image

    rng = np.random.default_rng(GENERATOR_SEED + 10)
    images, labels = [], []
    for label, digit in _digit_picks(rng, range(5), per_class):
        glyph = Image.fromarray(digit).resize((int(rng.integers(18, 28)),) * 2, Image.BILINEAR)
        canvas = Image.new("L", (36, 36), 0)
        canvas.paste(glyph, tuple(int(v) for v in rng.integers(0, 36 - glyph.size[0] + 1, size=2)))
        canvas = canvas.rotate(float(rng.uniform(-35, 35)), resample=Image.BILINEAR)
        images.append(_noisy(rng, np.asarray(canvas)))
        labels.append(label)
    return _dataset("rotated_digits", images, labels, "derived: sklearn digits 0-4 rotated and moved")


def _crops(name: str, sources: tuple[str, ...], per_class: int, seed: int) -> Dataset:
    from PIL import Image
    from skimage import data as samples

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, source in enumerate(sources):
        photo = np.asarray(getattr(samples, source)())
        photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3]
        photo = photo.astype(np.uint8)
        h, w = photo.shape[:2]
        for _ in range(per_class):
            side = int(min(h, w) * rng.uniform(0.2, 0.5))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = np.asarray(Image.fromarray(photo[top:top + side, left:left + side]).resize((SIZE, SIZE)), np.float32)
            images.append(np.clip(crop * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8))
            labels.append(label)
    return _dataset(name, images, labels, f"derived: crops of scikit-image's {', '.join(sources)}")


def photos4(per_class: int = 60) -> Dataset:
    """Crops of four other scikit-image photos (gravel, Hubble deep field, a stained tissue, a retina)."""
    return _crops("photos4", ("gravel", "hubble_deep_field", "immunohistochemistry", "retina"), per_class,
                  GENERATOR_SEED + 11)


def text_or_clock(per_class: int = 120) -> Dataset:
    """Two classes: crops of scikit-image's printed text and of its clock photo, both grey."""
    return _crops("text_or_clock", ("text", "clock"), per_class, GENERATOR_SEED + 12)


def arrows(per_class: int = 80) -> Dataset:
    """Three glyphs in random colours, sizes, positions and turns: an arrow, a dotted ring, a zigzag."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(GENERATOR_SEED + 13)
    images, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            back, ink = _colour(rng), _colour(rng)
            picture = Image.new("RGB", (SIZE, SIZE), back)
            draw = ImageDraw.Draw(picture)
            r, turn = rng.uniform(12, 22), rng.uniform(0, 2 * np.pi)
            cx, cy = rng.uniform(r + 4, SIZE - r - 4, size=2)
            ux, uy = np.cos(turn), np.sin(turn)
            width = int(rng.integers(3, 6))
            if label == 0:
                tail, tip = (cx - r * ux, cy - r * uy), (cx + r * ux, cy + r * uy)
                draw.line([tail, tip], fill=ink, width=width)
                for side in (2.5, -2.5):
                    a = turn + np.pi + side / 3
                    draw.line([tip, (tip[0] + 0.5 * r * np.cos(a), tip[1] + 0.5 * r * np.sin(a))], fill=ink, width=width)
            elif label == 1:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ink, width=width)
                draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=ink)
            else:
                points = [(cx + (i / 2 - 1) * r * ux + (8 if i % 2 else -8) * -uy,
                           cy + (i / 2 - 1) * r * uy + (8 if i % 2 else -8) * ux) for i in range(5)]
                draw.line(points, fill=ink, width=width)
            images.append(_noisy(rng, np.asarray(picture)))
            labels.append(label)
    return _dataset("arrows", images, labels, "generated: arrows, dotted rings and zigzags")


def lowercase(per_class: int = 30, n_letters: int = 12) -> Dataset:
    """The letters a–l in PIL's font, dark on light with random size, position and slant."""
    return _alphabet("lowercase", "a", n_letters, per_class, GENERATOR_SEED + 14, sizes=(30, 46), paper=190, ink=80,
                     slant=12, edge="clamp")


def _table(name: str, X: np.ndarray, y: np.ndarray, source: str, feature_names: list[str] | None = None) -> Dataset:
    """A labelled table of vectors (float32), fingerprinted by its values."""
    X = np.asarray(X, dtype=np.float32)
    return Dataset(name=name, fingerprint=hashlib.sha256(X.tobytes()).hexdigest(), ids=np.array([f"{name}/{i}" for i in range(len(X))]),
                   vectors=X, labels=np.asarray(y, dtype=np.int64),
                   feature_names=feature_names or [f"x{j}" for j in range(X.shape[1])], info={"source": source})


def _sklearn_table(name: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return _table(name, bunch.data, bunch.target, f"sklearn.datasets.load_{name}", [str(f) for f in bunch.feature_names])


def digits() -> Dataset:
    from selector.stages.data import load_dataset

    return load_dataset("digits")


BUILDERS: dict[str, Callable[[], Dataset]] = {
    "digits": digits, "shapes": shapes, "textures": textures, "letters": letters,
    "wine": lambda: _sklearn_table("wine"),
    "scenes": scenes, "shifted_digits": shifted_digits, "two_kinds": two_kinds,
    "breast_cancer": lambda: _sklearn_table("breast_cancer"),
    "rotated_digits": rotated_digits, "photos4": photos4, "text_or_clock": text_or_clock, "arrows": arrows,
    "lowercase": lowercase, "iris": lambda: _sklearn_table("iris"),
}
VECTOR_SETS = ("wine", "breast_cancer", "iris")
# Objectives were first compared on DEV, and HELD_OUT was reported apart. HELD_OUT then showed what DEV
# could not — modularity chops two large classes into many pieces (two_kinds, breast_cancer: k = 2) —
# so it was used to revise the default, and FRESH was built afterwards, run once with the revised
# default and reported as the only half that decided nothing.
DEV = ("digits", "shapes", "textures", "letters", "wine")
HELD_OUT = ("scenes", "shifted_digits", "two_kinds", "breast_cancer")
FRESH = ("rotated_digits", "photos4", "text_or_clock", "arrows", "lowercase", "iris")


# Points in two to five dimensions, the kind of table clustering benchmarks are made of: groups that are
# round, stretched, of unequal spread and size, and groups that are bands, rings and spirals (one
# continuous shape each). Added after every choice above and run once with the default; they decided nothing.
def _blobs(name: str, n: int, centers, seed: int, transform=None, **kw) -> Dataset:
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n, centers=centers, random_state=GENERATOR_SEED + seed, **kw)
    return _table(name, X if transform is None else X @ np.asarray(transform), y, "sklearn.datasets.make_blobs")


def _moons() -> Dataset:
    from sklearn.datasets import make_moons

    return _table("moons", *make_moons(1000, noise=0.06, random_state=GENERATOR_SEED + 21), "sklearn.datasets.make_moons")


def _circles() -> Dataset:
    from sklearn.datasets import make_circles

    X, y = make_circles(1000, noise=0.04, factor=0.5, random_state=GENERATOR_SEED + 22)
    return _table("circles", X, y, "sklearn.datasets.make_circles")


def _spirals() -> Dataset:
    """Two interleaved spiral arms with noise across them."""
    rng = np.random.default_rng(GENERATOR_SEED + 23)
    t, y = np.sqrt(rng.uniform(0.05, 1, 1000)) * 3 * np.pi, rng.integers(0, 2, 1000)
    X = np.c_[t * np.cos(t + np.pi * y), t * np.sin(t + np.pi * y)] + rng.normal(0, 0.35, (1000, 2))
    return _table("spirals", X, y, "drawn: two spiral arms")


def _rings() -> Dataset:
    """Three concentric rings."""
    rng = np.random.default_rng(GENERATOR_SEED + 24)
    y, angle = rng.integers(0, 3, 1200), rng.uniform(0, 2 * np.pi, 1200)
    radius = np.array([1.0, 2.2, 3.4])[y] + rng.normal(0, 0.12, 1200)
    return _table("rings3", np.c_[radius * np.cos(angle), radius * np.sin(angle)], y, "drawn: three rings")


def _bands() -> Dataset:
    """Four long parallel bands."""
    rng = np.random.default_rng(GENERATOR_SEED + 25)
    y = rng.integers(0, 4, 1000)
    return _table("bands4", np.c_[rng.uniform(0, 10, 1000), 1.2 * y + rng.normal(0, 0.15, 1000)], y, "drawn: four bands")


POINT_BUILDERS: dict[str, Callable[[], Dataset]] = {
    "blobs3": lambda: _blobs("blobs3", 1000, 3, 31),
    "blobs12": lambda: _blobs("blobs12", 1500, 12, 32, cluster_std=0.6, center_box=(-20, 20)),
    "blobs8_5d": lambda: _blobs("blobs8_5d", 2000, 8, 33, n_features=5, cluster_std=1.5),
    "blobs20_3d": lambda: _blobs("blobs20_3d", 2000, 20, 34, n_features=3, center_box=(-15, 15)),
    "aniso3": lambda: _blobs("aniso3", 1000, 3, 35, transform=[[0.6, -0.6], [-0.4, 0.8]]),
    "varied3": lambda: _blobs("varied3", 1000, 3, 36, cluster_std=[1.0, 2.5, 0.5]),
    "uneven4": lambda: _blobs("uneven4", [600, 250, 100, 50], [[0, 0], [6, 0], [0, 6], [6, 6]], 37,
                              cluster_std=[1.5, 1.0, 0.6, 0.4]),
    "moons": _moons, "circles": _circles, "spirals": _spirals, "rings3": _rings, "bands4": _bands,
}
POINTS = tuple(POINT_BUILDERS)
# How far below the best trial the settle rule may reach was decided on POINTS_DEV; POINTS_HELD_OUT is reported apart.
POINTS_DEV = ("blobs3", "moons", "aniso3", "spirals", "uneven4", "blobs8_5d")
POINTS_HELD_OUT = tuple(name for name in POINTS if name not in POINTS_DEV)
VECTOR_SETS = VECTOR_SETS + POINTS


def build(name: str) -> Dataset:
    found = BUILDERS.get(name) or POINT_BUILDERS.get(name)
    if found is None:
        raise ValueError(f"unknown suite data set {name!r}; valid: {', '.join([*BUILDERS, *POINT_BUILDERS])}.")
    return found()
