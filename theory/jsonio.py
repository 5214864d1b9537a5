"""Strict JSON for every file and every `--json` the toolkit writes.

Python's json writes NaN and Infinity as bare `NaN` / `Infinity`, which is not JSON (RFC 8259):
other programs refuse to read it. `dumps` writes a value that is not finite as `null` (no
finite value exists: an infinite E[R], a diverged loss; the writer says why in another key)
and then refuses anything non-standard (allow_nan=False), so nothing can slip through.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """`obj` with every float that is not finite replaced by None (dicts, lists, tuples, numpy)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if type(obj).__module__ == "numpy":
        return finite_or_none(obj.tolist() if hasattr(obj, "tolist") else obj.item())
    return obj


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # numpy arrays and scalars, torch tensors
        return finite_or_none(o.tolist())
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that writes only standard JSON (non-finite floats become null)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, default=_default, **kwargs)
