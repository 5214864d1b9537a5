"""scripts/gpu_session.sh, the one-command GPU session (docs/GPU.md): what can be checked in
seconds. `make gpu-rehearsal` runs the whole script at tiny scale on a CPU (minutes)."""
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_session.sh"


def _run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_user_errors_are_one_line_and_status_2(tmp_path):
    for args, words in ((["--bogus"], "unknown option --bogus"), (["--budget", "ten"], "--budget ten"),
                        (["--budget=10"], "two words"),
                        (["--carry", str(tmp_path)], "lacks cifar10-jpeg.tar.xz")):
        r = _run(*args)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert r.stdout == ""  # nothing ran


def test_every_step_has_its_own_timeout():
    text = SCRIPT.read_text()
    for name in ("data", "test-gpu", "bench", "paper"):
        assert f"step {name} " in text
    assert 'timeout -k 10 "$limit" "$@"' in text
