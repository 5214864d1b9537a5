"""Strict JSON for every file and every `--json` the toolkit writes.

Python's json writes NaN and Infinity as bare `NaN` / `Infinity`, which is not JSON (RFC 8259):
other programs refuse to read it. `dumps` writes a value that is not finite as `null` (no
finite value exists: an infinite E[R], a diverged loss; the writer says why in another key)
and then refuses anything non-standard (allow_nan=False), so nothing can slip through.

Every file the toolkit writes is written atomically, by atomic_write_bytes here (constants JSON
through atomic_write_json; lgc.runs' run files, lgc.checkpoint, the figures' CSVs): a reader, or
a run killed mid-write, sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"  # atomic_write_bytes' temporary files: .<name>.<random>.tmp beside the file
_UMASK = os.umask(0)
os.umask(_UMASK)


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path` (the folders
    above it are created). An OSError names `path`, not the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:  # name the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as strict JSON (dumps), indented, keys sorted, written atomically."""
    atomic_write_bytes(path, (dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
