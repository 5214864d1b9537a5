"""Embedded synthetic problems (exact constants) and the CIFAR-10 loader."""
import numpy as np
import pytest
import torch

from lgc.data.synthetic import QuadraticModel, make_classification, make_quadratic


def test_classification_is_balanced_seeded_and_learnable_only_by_its_labels():
    ds = make_classification(2000, 500, seed=3)
    assert ds.x_train.shape == (2000, 3, 8, 8) and ds.x_train.dtype == torch.float32
    assert torch.bincount(ds.y_train).tolist() == [200] * 10
    assert torch.equal(ds.x_train, make_classification(2000, 500, seed=3).x_train)
    assert not torch.equal(ds.x_train, make_classification(2000, 500, seed=4).x_train)
    # nearest class mean separates classes far better than chance (the labels carry signal)
    means = torch.stack([ds.x_train[ds.y_train == k].flatten(1).mean(0) for k in range(10)])
    pred = torch.cdist(ds.x_test.flatten(1), means).argmin(1)
    assert (pred == ds.y_test).float().mean() > 0.3


def test_quadratic_constants_are_exact():
    q = make_quadratic(5, 4, seed=0, h_min=0.5, h_max=2.0, spread=1.5, sigma2=0.7)
    assert q.L == 2.0
    cbar = q.c.mean(axis=0)
    np.testing.assert_allclose(q.cbar, cbar)
    # zeta^2 = (1/N) sum_i ||grad f_i(w) - grad F(w)||^2 at an arbitrary w (w-free)
    w = np.array([0.3, -1.0, 2.0, 0.1])
    gi = (w - q.c) * q.h
    np.testing.assert_allclose(q.zeta2, np.mean(np.sum((gi - gi.mean(0)) ** 2, axis=1)))
    np.testing.assert_allclose(q.grad_F(w), gi.mean(0))
    # F by its definition; F* = F(cbar) is the minimum; Delta = F(w0) - F*
    f = np.mean([0.5 * (w - ci) @ np.diag(q.h) @ (w - ci) for ci in q.c])
    np.testing.assert_allclose(q.F(w), f)
    assert q.F(q.cbar + 0.01) > q.F_star
    np.testing.assert_allclose(q.Delta, q.F(q.w0) - q.F(cbar))


def test_quadratic_noise_has_variance_sigma2_and_is_seeded():
    q = make_quadratic(3, 8, sigma2=2.5)
    xi = q.noise(1, 2, 0, 20000)
    assert xi.shape == (20000, 8) and xi.dtype == np.float32
    total_var = float(np.sum(xi.astype(np.float64).var(axis=0)))
    assert abs(total_var - 2.5) < 0.1  # E||xi||^2 = sigma^2
    assert np.array_equal(q.noise(1, 2, 0, 5), xi[:5])  # prefix property
    assert not np.array_equal(q.noise(1, 2, 1, 5), xi[:5])


def test_quadratic_model_per_sample_gradient_is_h_w_minus_c_plus_xi():
    q = make_quadratic(3, 4, seed=1)
    m = QuadraticModel(q)
    xi = q.noise(0, 0, 2, 3)
    losses = m(q.inputs(2, xi))
    assert losses.shape == (3,)
    (g,) = torch.autograd.grad(losses[1], m.w)
    expected = q.h * (q.w0 - q.c[2]) + xi[1]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- CIFAR-10 loader
import hashlib  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from lgc.data import cifar10  # noqa: E402
from lgc.errors import UserError  # noqa: E402


def _batch_bytes(n, seed, *, old_numpy_name):
    """A batch in the official layout: bytes keys, uint8 (n, 3072) data, list labels.
    Protocol 2 as the official (Python 2) files; `old_numpy_name` writes `numpy.core`."""
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"test", b"labels": [int(v) for v in rng.integers(0, 10, n)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    raw = pickle.dumps(d, protocol=2)
    if old_numpy_name:
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw
    return raw, d


def _write_cifar(root: Path, *, old_numpy_name: bool, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    sums, content = {}, {}
    for k, name in enumerate(cifar10.TRAIN_FILES + [cifar10.TEST_FILE]):
        raw, d = _batch_bytes(n, k, old_numpy_name=old_numpy_name)
        (folder / name).write_bytes(raw)
        sums[name] = hashlib.md5(raw).hexdigest()
        content[name] = d
    meta = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)
    (folder / cifar10.META_FILE).write_bytes(meta)
    sums[cifar10.META_FILE] = hashlib.md5(meta).hexdigest()
    return sums, content


@pytest.mark.parametrize("old_numpy_name", [True, False])
def test_loader_reads_official_format_with_either_numpy_name(tmp_path, monkeypatch, old_numpy_name):
    sums, content = _write_cifar(tmp_path, old_numpy_name=old_numpy_name)
    monkeypatch.setattr(cifar10, "MD5", sums)  # our small files' sums stand in for the official ones
    ds = cifar10.load_cifar10(tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    first = content["data_batch_1"]
    assert np.array_equal(ds.x_train[:4].numpy().reshape(4, -1), first[b"data"])
    assert ds.y_train[:4].tolist() == first[b"labels"]
    assert ds.y_test.tolist() == content["test_batch"][b"labels"]
    assert ds.classes[3] == "c3" and ds.md5_mismatch == []


def test_wrong_md5_is_refused_clearly_unless_accepted(tmp_path, capsys):
    _write_cifar(tmp_path, old_numpy_name=False)  # sums differ from the official release
    with pytest.raises(UserError, match=r"data_batch_1: MD5 [0-9a-f]{32} differs from the official "
                                        r"c99cafc152244af753f735de768cd75f; pass --accept-md5-mismatch"):
        cifar10.load_cifar10(tmp_path)
    ds = cifar10.load_cifar10(tmp_path, accept_md5_mismatch=True)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "MD5 differs from the official release" in err  # not silent
    assert len(ds.y_train) == 20 and "test_batch" in ds.md5_mismatch


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    sums, _ = _write_cifar(tmp_path, old_numpy_name=False)
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Hostile(marker), b"labels": []}, protocol=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(evil)
    sums["data_batch_2"] = hashlib.md5(evil).hexdigest()
    monkeypatch.setattr(cifar10, "MD5", sums)
    with pytest.raises(UserError, match="data_batch_2: unsafe or corrupt pickle .*refused to load global"):
        cifar10.load_cifar10(tmp_path)
    assert not marker.exists()
    with pytest.raises(UserError, match="refused to load global builtins.eval"):
        cifar10.safe_load(b"cbuiltins\neval\n(S'1+1'\ntR.")


def test_missing_folder_and_truncated_file_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no CIFAR-10 batches in"):
        cifar10.load_cifar10(tmp_path / "nowhere")
    sums, _ = _write_cifar(tmp_path, old_numpy_name=False)
    f = tmp_path / "cifar-10-batches-py" / "test_batch"
    f.write_bytes(f.read_bytes()[:100])
    sums["test_batch"] = hashlib.md5(f.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10, "MD5", sums)
    with pytest.raises(UserError, match="test_batch: corrupt pickle"):
        cifar10.load_cifar10(tmp_path)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.data
@pytest.mark.skipif(not (SHARED / "cifar10_from_jpeg.py").exists(), reason="../shared/data (CIFAR-10 JPEG copy) is absent")
def test_shared_copy_converts_and_loads(tmp_path, capsys):
    try:
        import PIL  # noqa: F401
    except ImportError:
        pytest.skip("Pillow is needed by ../shared/data/cifar10_from_jpeg.py and is not installed")
    subprocess.run([sys.executable, str(SHARED / "cifar10_from_jpeg.py"), str(tmp_path)], check=True,
                   capture_output=True)
    with pytest.raises(UserError, match="accept-md5-mismatch"):
        cifar10.load_cifar10(tmp_path)
    ds = cifar10.load_cifar10(tmp_path, accept_md5_mismatch=True)
    assert "MD5 differs" in capsys.readouterr().err
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert torch.bincount(ds.y_train).tolist() == [5000] * 10


def test_download_checks_the_archive_md5_and_extracts_only_the_batches(tmp_path, monkeypatch):
    import tarfile

    src = tmp_path / "src"
    sums, content = _write_cifar(src, old_numpy_name=True)
    (src / "cifar-10-batches-py" / "readme.html").write_text("not extracted")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar10, "MD5", sums)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", "0" * 32)  # a wrong archive sum is refused
    with pytest.raises(UserError, match="MD5 [0-9a-f]{32} differs from the official 0{32}"):
        cifar10.download(tmp_path / "out", url=archive.as_uri())
    assert not (tmp_path / "out" / "cifar-10-python.tar.gz").exists()
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", cifar10.md5_of(archive))
    folder = cifar10.download(tmp_path / "out", url=archive.as_uri())
    assert sorted(p.name for p in folder.iterdir()) == sorted(sums)
    ds = cifar10.load_cifar10(tmp_path / "out")
    assert ds.y_test.tolist() == content["test_batch"][b"labels"]
