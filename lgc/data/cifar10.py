"""CIFAR-10 in the official "python version" format (Krizhevsky, 2009), read safely.

    load_cifar10(data_dir, accept_md5_mismatch=False) -> ArrayDataset (uint8 images)
    python -m lgc.data.cifar10 download DIR            # `make data`: official archive, MD5 checked

The batches are pickles. Unpickling is restricted to plain containers and numpy array
reconstruction (under both `numpy.core` and `numpy._core`: official files name the former,
files written by numpy 2 the latter), so a hostile file cannot run code. Every file's MD5 is
checked against the official sums; a copy whose sums differ (e.g. ../shared/data, re-encoded
from JPEG) is refused unless accept_md5_mismatch is set, and then reported, never silently.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

from lgc.data import ArrayDataset
from lgc.errors import UserError, check

ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{k}" for k in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
MD5 = {  # the official per-file sums of the extracted archive
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------- restricted unpickling
def _numpy_globals() -> dict:
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    allowed = {
        "multiarray._reconstruct": core.multiarray._reconstruct,
        "multiarray.scalar": core.multiarray.scalar,
        "numeric._frombuffer": core.numeric._frombuffer,
    }
    import _codecs

    # _codecs.encode: how Python 3 writes bytes into protocol-2 pickles (pure, runs no code)
    out = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _codecs.encode}
    for prefix in ("numpy.core", "numpy._core"):
        for name, obj in allowed.items():
            mod, attr = name.split(".")
            out[(f"{prefix}.{mod}", attr)] = obj
    return out


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's array/dtype/scalar reconstruction (and _codecs.encode); every other global (os.system,
    builtins.eval, ...) raises UnpicklingError before anything runs."""

    _allowed = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_globals()
        obj = RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        return obj


def safe_load(data: bytes, *, source: str = "file"):
    """Unpickle CIFAR-10 batch bytes (official Python-2 pickles need latin1 for the arrays)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise UserError(f"{source}: unsafe or corrupt pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise UserError(f"{source}: corrupt pickle ({type(e).__name__}: {str(e)[:120]})") from None


def _str_keys(d, source):
    check(isinstance(d, dict), f"{source}: expected a dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


# ----------------------------------------------------------------------------- loading
def find_folder(data_dir) -> Path:
    """data_dir/cifar-10-batches-py, or data_dir itself when it holds the batches."""
    d = Path(data_dir)
    for cand in (d / FOLDER, d):
        if (cand / TEST_FILE).exists() or (cand / TRAIN_FILES[0]).exists():
            return cand
    raise UserError(f"no CIFAR-10 batches in {d} (expected {d / FOLDER}/data_batch_1..5, test_batch); "
                    f"run `make data DATA_DIR={d}`")


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_batch(path: Path, accept_md5_mismatch: bool, mismatched: list):
    check(path.is_file(), f"CIFAR-10 file {path} is missing")
    data = path.read_bytes()
    digest = hashlib.md5(data).hexdigest()
    if digest != MD5[path.name]:
        check(accept_md5_mismatch, f"{path}: MD5 {digest} differs from the official {MD5[path.name]}; "
                                   f"pass --accept-md5-mismatch to use this copy anyway")
        mismatched.append(path.name)
    d = _str_keys(safe_load(data, source=str(path)), str(path))
    check("data" in d and "labels" in d, f"{path}: not a CIFAR-10 batch (keys {sorted(d)})")
    x = d["data"]
    y = _int_labels(d["labels"], path)
    check(isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3072
          and len(x) == len(y), f"{path}: data must be uint8 (n, 3072) with n labels, got "
                                f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}, {len(y)} labels")
    check(len(y) == 0 or (y.min() >= 0 and y.max() <= 9), f"{path}: labels outside 0..9")
    return x.reshape(-1, 3, 32, 32), y


def _int_labels(labels, path) -> np.ndarray:
    """The labels as int64; a list of anything but integers is a one-line error."""
    ok = isinstance(labels, (list, tuple, np.ndarray)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels)
    check(ok, f"{path}: labels must be a list of integers 0..9")
    return np.asarray(labels, dtype=np.int64).reshape(-1)


def _class_names(meta: dict, path) -> list[str]:
    """batches.meta's 10 label names (bytes or text)."""
    names = meta.get("label_names")
    ok = isinstance(names, (list, tuple)) and len(names) == 10 and all(isinstance(c, (bytes, str)) for c in names)
    check(ok, f"{path}: label_names must be a list of 10 names (a malformed batches.meta)")
    return [c.decode("latin1") if isinstance(c, bytes) else c for c in names]


def load_cifar10(data_dir, *, accept_md5_mismatch: bool = False) -> ArrayDataset:
    """The 50,000 training and 10,000 test images as uint8 (n, 3, 32, 32) tensors."""
    folder = find_folder(data_dir)
    mismatched: list[str] = []
    parts = [_read_batch(folder / f, accept_md5_mismatch, mismatched) for f in TRAIN_FILES]
    x_test, y_test = _read_batch(folder / TEST_FILE, accept_md5_mismatch, mismatched)
    classes = None
    if (folder / META_FILE).exists():
        raw = (folder / META_FILE).read_bytes()
        if hashlib.md5(raw).hexdigest() != MD5[META_FILE]:
            check(accept_md5_mismatch, f"{folder / META_FILE}: MD5 differs from the official "
                                       f"{MD5[META_FILE]}; pass --accept-md5-mismatch to use this copy anyway")
            mismatched.append(META_FILE)
        meta = _str_keys(safe_load(raw, source=str(folder / META_FILE)), str(folder / META_FILE))
        classes = _class_names(meta, folder / META_FILE)
    if mismatched:
        msg = f"CIFAR-10 in {folder}: MD5 differs from the official release for {', '.join(mismatched)} (accepted)"
        print(f"lgc: warning: {msg}", file=sys.stderr)  # accepted, but never silently
    ds = ArrayDataset(
        "cifar10", torch.from_numpy(np.concatenate([p[0] for p in parts])),
        torch.from_numpy(np.concatenate([p[1] for p in parts])), torch.from_numpy(x_test),
        torch.from_numpy(y_test), 10, MEAN, STD, augmentable=True,
        origin=("cifar10", {"data_dir": str(Path(data_dir).resolve()), "accept_md5_mismatch": bool(accept_md5_mismatch)}))
    ds.md5_mismatch = mismatched  # recorded in the run's data.json
    ds.classes = classes
    return ds


# ----------------------------------------------------------------------------- download
def download(data_dir, *, url: str = ARCHIVE_URL) -> Path:
    """Fetch the official archive, check its MD5, extract the batches, check every file."""
    import urllib.request

    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    archive = d / "cifar-10-python.tar.gz"
    if not archive.exists() or md5_of(archive) != ARCHIVE_MD5:
        tmp = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
        except OSError as e:
            raise UserError(f"download of {url} failed ({e}); are you online?") from None
        got = md5_of(tmp)
        if got != ARCHIVE_MD5:
            tmp.unlink()
            raise UserError(f"{url}: MD5 {got} differs from the official {ARCHIVE_MD5}")
        tmp.replace(archive)
    wanted = {f"{FOLDER}/{n}" for n in MD5}
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        check(len(members) == len(wanted), f"{archive}: expected {len(wanted)} batch files, found {len(members)}")
        for m in members:  # only the known regular files, written by name: no path tricks
            out = d / m.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(m).read())
    for name, digest in MD5.items():
        got = md5_of(d / FOLDER / name)
        check(got == digest, f"{d / FOLDER / name}: MD5 {got} differs from the official {digest}")
    return d / FOLDER


def write_fake_cifar10(folder, *, n_train: int = 5000, n_test: int = 500, seed: int = 0) -> Path:
    """Random images and labels in CIFAR-10's official python layout (data_batch_1..5,
    test_batch, batches.meta) under folder/cifar-10-batches-py; load with accept_md5_mismatch.
    For benchmarks and pipeline tests that need CIFAR-shaped data without the download."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    per = -(-n_train // 5)
    sizes = [min(per, n_train - k * per) for k in range(5)] + [n_test]
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, sizes):
        n = max(n, 0)
        # every class present in every batch (partitions need each label)
        labels = [int(v) for v in (np.arange(n) + rng.integers(0, 10)) % 10]
        d = {b"batch_label": name.encode(), b"labels": labels,
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"fake.png"] * n}
        (out / name).write_bytes(pickle.dumps(d, protocol=2))
    (out / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"class{i}".encode() for i in range(10)]},
                                                    protocol=2))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "download":
        print("usage: python -m lgc.data.cifar10 download DIR", file=sys.stderr)
        return 2
    try:
        print(download(argv[1]))
    except UserError as e:
        print(f"lgc.data.cifar10: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
