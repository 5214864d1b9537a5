"""Checkpoints: torch.save written atomically, read back with weights_only=True (SPEC section 9).

A checkpoint holds only tensors and plain containers (numbers, strings, lists, dicts), so the
restricted loader reads it; a corrupt or foreign file is a one-line UserError.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from lgc.errors import UserError
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
