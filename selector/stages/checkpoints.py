"""Local weight files: reading a PyTorch checkpoint, fitting it to a model or saying exactly why
not, and the digest that identifies it in the embedding cache."""

from __future__ import annotations

from pathlib import Path


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file (``selector.files.sha256``)."""
    from selector.files import sha256

    return sha256(Path(path))


def torch_load(path: str | Path) -> dict:
    """A state dict from a checkpoint file (tensors only; a wrapping ``state_dict``/``model`` key and
    DataParallel's ``module.`` prefix taken off), or a ``ValueError`` that names the file. A
    ``.safetensors`` file (what a served model ships) is read without any unpickling."""
    import torch

    try:
        if str(path).endswith(".safetensors"):  # tensors and nothing else: no unpickler at all
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
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
