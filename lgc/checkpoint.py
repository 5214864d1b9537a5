"""Checkpoints: torch.save written atomically, read back with weights_only=True.

The contract: README "Targets and guarantees" (reliability).

A checkpoint holds only tensors and plain containers (numbers, strings, lists, dicts), so the
restricted loader reads it; a corrupt or foreign file is a one-line UserError.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from lgc.errors import UserError, check
from lgc.runs import atomic_write_bytes

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load of a corrupt or foreign file raises anything (KeyError, ...)
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        first = f"{type(e).__name__}: {text}" if text else type(e).__name__
        raise UserError(f"checkpoint {path} cannot be read ({first[:160]}); delete it or rerun with --force") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"checkpoint {path} has an unknown format (expected version {CHECKPOINT_VERSION})")
    return state


def validate_checkpoint(state: dict, path, *, rounds: int, n_params: Optional[int] = None,
                        keys: Sequence[str] = ("w", "round", "clock", "momentum", "u")) -> dict:
    """A checkpoint that loads can still be wrong (edited, from another run): every key present,
    round an integer in 0..T (a round of 1e9 would mark the run complete), clock a finite number
    >= 0, w (and momentum, u when set) flat float tensors of the model's size. UserError names
    what is wrong. Returns `state`."""
    how = "delete it or rerun with --force"
    missing = [k for k in keys if k not in state]
    check(not missing, f"checkpoint {path} lacks {', '.join(missing)}; {how}")
    r = state["round"]
    check(isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= rounds,
          f"checkpoint {path}: round={r!r} must be an integer in 0..{rounds}; {how}")
    c = state["clock"]
    check(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0,
          f"checkpoint {path}: clock={c!r} must be a finite number >= 0; {how}")
    w = state["w"]
    size = n_params if n_params is not None else (w.numel() if isinstance(w, torch.Tensor) else None)
    for name in ("w", "momentum", "u"):
        v = state.get(name)
        if v is None and name != "w":
            continue
        ok = isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() == 1 and v.numel() == size
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        check(ok, f"checkpoint {path}: {name} has shape {shape}, the model needs ({size},) floats; {how}")
    return state
