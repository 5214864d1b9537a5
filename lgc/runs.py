"""Run directories, atomic result files, provenance and the result cache (README "File formats").

One run = one directory `results/<kind>/<key>/`, where key hashes the resolved config, the
contents of the files it names (not their paths) and the source code of `theory/` and `lgc/`
(key_payload lists what enters the key); a finished run (final.json present) is reused.
Every backend writes through these helpers:

    config.json     resolved config
    meta.json       code version (git SHA or CODE_VERSION file), library versions, device
    rounds.csv      per-round records (schema in the README)
    schedule.csv    the schedule: per round, A_t and every m_j (replayable)
    final.json      final metrics; written last, marks the run complete
    checkpoint.pt   resume state (torch.save, loaded with weights_only=True)
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from theory.jsonio import TMP_SUFFIX, atomic_write_bytes, atomic_write_json  # noqa: F401 (lgc.runs' writers)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_ROOT = Path(os.environ.get("LGC_RESULTS", REPO_ROOT / "results"))


# ----------------------------------------------------------------------------- atomic writes
# atomic_write_bytes and TMP_SUFFIX live in theory.jsonio (the one atomic writer; theory writes constants JSON)


def remove_stale_tmp(folder: str | os.PathLike) -> None:
    """Delete the temporary files that a writer killed mid-write (SIGKILL) left in `folder`.
    Called by `locked`, whose lock proves no live writer of this run owns them."""
    for f in Path(folder).glob(f".*{TMP_SUFFIX}"):
        try:
            f.unlink()
        except FileNotFoundError:
            pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]
) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in fieldnames})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------- provenance
def _source_files() -> list[Path]:
    files: list[Path] = []
    for pkg in ("theory", "lgc"):
        files.extend(sorted((REPO_ROOT / pkg).rglob("*.py")))
    return files


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """{'git': SHA[-dirty] or the CODE_VERSION file's text, 'source_hash': sha256 of the sources}.

    The GPU machine receives a copy without .git: `make` writes CODE_VERSION before a device run.
    """
    h = hashlib.sha256()
    for p in _source_files():
        h.update(str(p.relative_to(REPO_ROOT)).encode())
        h.update(p.read_bytes())
    git = os.environ.get("LGC_CODE_VERSION", "")
    if not git:
        try:
            sha = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                # only code counts as dirty: regenerated figures and results do not
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                 "theory", "lgc", ":(glob)paper_figures/*.py", "pyproject.toml"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
            git = sha + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            vf = REPO_ROOT / "CODE_VERSION"
            git = vf.read_text().strip() if vf.exists() else "unknown"
    return {"git": git, "source_hash": h.hexdigest()[:16]}


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Library versions and the device that made a result."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    from importlib import metadata

    for mod in ("numpy", "scipy", "sympy", "torch", "matplotlib", "seaborn"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
            continue
        try:  # read the installed version without importing (seaborn alone costs seconds)
            info[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda"] = torch.version.cuda
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
        else:
            info["device_name"] = platform.processor() or platform.machine()
        info["torch_threads"] = torch.get_num_threads()
    info["device"] = str(device) if device is not None else "cpu"
    return info


# ----------------------------------------------------------------------------- run directories
def config_key(config: Mapping[str, Any], *, include_code: bool = True) -> str:
    """sha256 of the canonical JSON of `config` (and of the source hash): 16 hex digits."""
    payload = json.dumps(config, sort_keys=True, default=_json_default)
    if include_code:
        payload += code_version()["source_hash"]
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def key_payload(config: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that enters a run's key, listed here once: the config, with each input path
    (input_paths) replaced by the digest of what it names, so a file enters by its contents,
    once, and a copy or another spelling of its path gives the same key; and the code version
    (the source hash of theory/ and lgc/)."""
    keyed = json.loads(json.dumps(config, default=_json_default))  # a deep, plain copy
    for name, digest in input_digests(config).items():
        *outer, last = name.split(".")
        d = keyed
        for part in outer:
            d = d[part]
        d[last] = {"sha256": digest}
    return {"config": keyed, "code": code_version()["source_hash"]}


def run_key(config: Mapping[str, Any]) -> str:
    """The key of the run of `config`: config_key of key_payload."""
    return config_key(key_payload(config), include_code=False)


def run_dir(kind: str, config: Mapping[str, Any], root: str | os.PathLike | None = None) -> Path:
    """The directory of the run of `kind` with this config, these input files' contents and this
    code version (run_key)."""
    return Path(root or RESULTS_ROOT) / kind / run_key(config)


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / "final.json").exists()


def start_run(path: str | os.PathLike, config: Mapping[str, Any], device: str | None = None) -> Path:
    """Create the run directory and write config.json and meta.json (atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "config.json", dict(config))
    atomic_write_json(
        path / "meta.json",
        {"code_version": code_version(), "environment": environment_info(device),
         "command": " ".join(sys.argv), "inputs": input_digests(config)},
    )
    return path


def finish_run(path: str | os.PathLike, final: Mapping[str, Any]) -> None:
    atomic_write_json(Path(path) / "final.json", dict(final))


# ----------------------------------------------------------------------------- what a run reads
INPUT_METAVARS = ("FILE", "DIR")  # a TrainConfig field (its flag) with this metavar names an input file / folder
TRACE_PARAM = "timing_params.path"  # the trace (--timing-param path=FILE) of the trace and trace-fit models


def input_paths(config: Mapping[str, Any], cls=None, prefix: str = "") -> dict[str, str]:
    """The input paths set in `config`, by dotted field name: every TrainConfig field whose
    flag takes a FILE or DIR (k_constants, schedule_file, task.data_dir, ...: read from the field
    definitions, nested ones included, so a new one is covered) and the trace path among the
    timing parameters."""
    from dataclasses import fields

    from lgc.config import TrainConfig
    from lgc.config_fields import nested

    cls = cls or TrainConfig
    inner = nested(cls)
    out = {}
    for f in fields(cls):
        if f.name in inner and isinstance(config.get(f.name), Mapping):
            out.update(input_paths(config[f.name], inner[f.name], f"{prefix}{f.name}."))
        elif f.metadata.get("metavar") in INPUT_METAVARS and isinstance(config.get(f.name), str):
            out[prefix + f.name] = config[f.name]
    params = config.get("timing_params")
    if isinstance(params, Mapping) and isinstance(params.get("path"), str):
        out[prefix + TRACE_PARAM] = params["path"]
    return out


def input_digests(config: Mapping[str, Any]) -> dict[str, str]:
    """The contents of the files a run reads besides its config, by dotted field name
    (input_paths): sha256 of a file, or of a folder's file names and contents (a CIFAR-10
    folder and its cifar-10-batches-py/). Editing any of them gives the run another key (a
    stale result is never reused); a path that names nothing digests as "missing"."""
    return {name: path_digest(p) for name, p in input_paths(config).items()}


def path_digest(path: str | os.PathLike) -> str:
    """sha256 (16 hex digits) of a file's contents, or of a folder's (file names and contents,
    one level, and the same of its cifar-10-batches-py/), or "missing"."""
    p = Path(path)
    if p.is_file():
        return _file_digest(p)
    if not p.is_dir():
        return "missing"
    h = hashlib.sha256()
    for folder in (p, p / "cifar-10-batches-py"):
        for f in sorted(folder.iterdir()) if folder.is_dir() else ():
            if f.is_file():
                h.update(f"{f.relative_to(p)}\0{_file_digest(f)}\0".encode())
    return h.hexdigest()[:16]


_MEMO_BYTES = 1 << 20  # files from this size on are hashed once per process and stat


def _file_digest(p: Path) -> str:
    st = p.stat()
    if st.st_size < _MEMO_BYTES:  # small files (a schedule, constants): hashed every time, no stat race
        return _read_digest(str(p))
    return _memo_digest(str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=256)
def _memo_digest(path: str, ino: int, size: int, mtime_ns: int) -> str:
    """_read_digest memoised by the file's identity and stat: CIFAR-10's 180 MB are read once per
    process, not at every run_dir call; an edit changes the size or the mtime and is read again."""
    return _read_digest(path)


def _read_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- one writer per run
def _private(path: Path, what: str) -> Path:
    """results/.lgc/<what>/<kind>-<key>: beside the runs, on their file system, out of their listing."""
    return path.parent.parent / ".lgc" / what / f"{path.parent.name}-{path.name}"


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive fcntl lock on the run `path` (results/.lgc/locks/<kind>-<key>.lock).
    A second identical run waits here, then finds the first one's result and reuses it. Once
    held, the temporary files of a writer that died mid-write are removed (remove_stale_tmp)."""
    path = Path(path)
    lock = _private(path, "locks").with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process running the same run {path}")
            fcntl.flock(f, fcntl.LOCK_EX)
        for folder in (path, staging_dir(path)):  # a dead writer's half-written files
            remove_stale_tmp(folder)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def staging_dir(path: str | os.PathLike) -> Path:
    """Where a forced rerun of the finished run `path` writes until it finishes
    (results/.lgc/staging/<kind>-<key>); replace_dir then swaps it in."""
    return _private(Path(path), "staging")


def replace_dir(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the finished directory `new` at `path`, replacing what is there in one atomic step
    (Linux renameat2 RENAME_EXCHANGE; elsewhere two renames), then delete the old one."""
    new, path = Path(new), Path(path)
    if not path.exists():
        os.replace(new, path)
        return
    if not _exchange(new, path):
        old = new.with_name(new.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(new, path)
        new = old
    shutil.rmtree(new)  # after the exchange it holds the old run


def _exchange(a: Path, b: Path) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def reuse(path: str | os.PathLike) -> Path:
    """Say (one line) that the finished run `path` is reused; its final.json must be readable."""
    from lgc.errors import UserError

    final = Path(path) / "final.json"
    try:
        json.loads(final.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{final} is corrupt (not JSON): rerun with --force to train the run again") from None
    say(f"reusing the finished run {path} (same config, inputs and code; --force reruns)")
    return Path(path)


def say(text: str) -> None:
    """One line to stderr about what the run directory is doing (reused, resumed, waiting)."""
    sys.stderr.write(f"lgc: {text}\n")
    sys.stderr.flush()
