#!/usr/bin/env bash
# One GPU session in one command (`make gpu-session`; docs/GPU.md): the GPU tests, the bench and
# as much of the paper profile as the time left allows, each step under its own `timeout`, every
# result, figure, log and the provenance in ONE archive, refreshed after every step (a session
# killed at its limit still returns the last one).
#
#   scripts/gpu_session.sh [--budget SECONDS] [--out DIR] [--carry DIR]   # the GPU machine (budget 540 s)
#   scripts/gpu_session.sh --tiny                              # the same steps on a CPU, tiny scale
#
# Needs .carry/ (make gpu-carry: the CIFAR-10 JPEG copy, its converter, CODE_VERSION). Uses
# $PYTHON (default python3: the GPU machine's own, torch 2.11; no package registry there) with the
# repository on PYTHONPATH. Writes DIR/gpu_session.tar.gz (DIR: $OUT on the device machine, else
# results/gpu-session).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
TINY=0
BUDGET=540
CARRY=.carry
DEST=${OUT:-$REPO/results/gpu-session}
COMMAND="scripts/gpu_session.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) TINY=1 ;;
    --budget) BUDGET_GIVEN=${2-}; shift ;;
    --out) DEST=${2-}; shift ;;
    --carry) CARRY=${2-}; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    --*=*) echo "gpu_session.sh: error: write $1 as two words (${1%%=*} ${1#*=})" >&2; exit 2 ;;
    *) echo "gpu_session.sh: error: unknown option $1 (valid: --tiny, --budget SECONDS, --out DIR, --carry DIR)" >&2; exit 2 ;;
  esac
  shift
done
BUDGET=${BUDGET_GIVEN:-$([ "$TINY" = 1 ] && echo 600 || echo "$BUDGET")}
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_session.sh: error: --budget $BUDGET must be whole seconds" >&2; exit 2 ;; esac
if [ ! -f "$CARRY/cifar10-jpeg.tar.xz" ] || [ ! -f "$CARRY/cifar10_from_jpeg.py" ]; then
  echo "gpu_session.sh: error: $CARRY/ lacks cifar10-jpeg.tar.xz or cifar10_from_jpeg.py: run make gpu-carry first" >&2
  exit 2
fi

START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(date +%s) + START )); }
SESSION=$(mktemp -d "${TMPDIR:-/tmp}/gpu-session.XXXXXX")/session
mkdir -p "$SESSION" "$DEST"
ARCHIVE=$DEST/gpu_session.tar.gz
export PYTHONPATH=$REPO PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if ! git -C "$REPO" rev-parse HEAD >/dev/null 2>&1 && [ -z "${LGC_CODE_VERSION:-}" ] && [ -f "$CARRY/CODE_VERSION" ]; then
  export LGC_CODE_VERSION="$(cat "$CARRY/CODE_VERSION")"  # the device copy has no .git
fi
if [ "$TINY" = 1 ]; then  # the same steps and code paths at toy sizes (no CUDA: no compiled modes)
  BENCH=(--device cpu --model resnet18 --width 4 --steps 1 --repeats 1 --samples-per-worker 60 --profile)
  PAPER=(--tiny --max-runs 3)
  T_TESTS=120; T_BENCH=150
else  # the bench of README "Targets and guarantees": eager and CUDA graphs for every side (the loop eager, as the lab code)
  BENCH=(--steps 20 --repeats 3 --modes none,reduce-overhead --profile)
  # the paper profile's cut: its runs in priority order until the time is up (figure 1's c = 5
  # runs first), T = 300 as in the profile, evaluations during a run on the first 1,000 test
  # images, each run's last on all 10,000
  PAPER=(--eval-subset 1000)
  T_TESTS=150; T_BENCH=180
fi
RESERVE=25  # seconds kept for the last archive

pack() {  # the archive, rewritten after every step
  tar -czf "$ARCHIVE.tmp" -C "$(dirname "$SESSION")" session && mv "$ARCHIVE.tmp" "$ARCHIVE"
}
step() {  # step NAME SECONDS CMD...: one step under its own timeout, its log and status in the session
  local name=$1 limit=$2; shift 2
  if [ "$limit" -gt "$(( $(left) - RESERVE ))" ]; then limit=$(( $(left) - RESERVE )); fi
  if [ "$limit" -lt 10 ]; then
    echo "[$(elapsed) s] $name: skipped, $(left) s left" | tee -a "$SESSION/steps.txt"
    return 0
  fi
  echo "[$(elapsed) s] $name (timeout ${limit} s): $*" | tee -a "$SESSION/steps.txt"
  local t0=$(date +%s) rc
  timeout -k 10 "$limit" "$@" >"$SESSION/$name.log" 2>&1
  rc=$?
  tail -n 25 "$SESSION/$name.log"
  local what="exit $rc"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && what="TIMED OUT after $limit s (exit $rc)"
  echo "[$(elapsed) s] $name: $what in $(( $(date +%s) - t0 )) s" | tee -a "$SESSION/steps.txt"
  pack
}

# 0. provenance: device, versions, code, command
{
  echo "command: $COMMAND"
  echo "mode: $([ "$TINY" = 1 ] && echo "tiny CPU rehearsal" || echo "GPU session"), budget ${BUDGET} s"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -a)"
  echo "code: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "${LGC_CODE_VERSION:-unknown} (CODE_VERSION)")"
  git -C "$REPO" status --short 2>/dev/null | sed 's/^/  changed: /'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  "$PYTHON" - <<'EOF'
import json, platform, sys
import torch
from lgc import runs
info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(), "code_version": runs.code_version(),
        "environment": runs.environment_info()}
print(json.dumps(info, indent=2, default=str))
EOF
} >"$SESSION/provenance.txt" 2>&1
cat "$SESSION/provenance.txt"
pack

# 1. CIFAR-10 from the carried JPEG copy (official python layout, MD5s differ: accepted explicitly)
step data 120 "$PYTHON" -c "
import sys; sys.argv = ['paper']
from pathlib import Path
from paper_figures.paper import convert_shared
convert_shared(Path('$CARRY'), Path('data'))
print(sorted(p.name for p in Path('data/cifar-10-batches-py').iterdir()))"

# 2. make test-gpu (its command, verbose; on a CPU every test is skipped)
step test-gpu "$T_TESTS" "$PYTHON" -m pytest -v -m gpu -p no:cacheprovider tests  # -v: each result as it ends

# 3. make bench (README "Targets and guarantees": ResNet-18-GN, N = 10, K = 7, B = 50, M = 5, shifted-exp)
step bench "$T_BENCH" "$PYTHON" -m lgc.bench "${BENCH[@]}" --time-limit $(( T_BENCH * 2 / 3 )) \
  --out "$SESSION/bench.json"

# 4. the paper profile in the time left, in its priority order (paper_figures/paper_profile.py):
#    the cut is what completes; progress.json and the summary below say which runs those are
LEFT=$(( $(left) - RESERVE - 5 ))
CHUNK=$(awk -v s="$LEFT" 'BEGIN { printf "%.2f", (s - 25) / 60 }')  # it stops its runs 30 s before (draw, pack)
step paper "$LEFT" "$PYTHON" -m paper_figures.paper --data-dir data --accept-md5-mismatch "${PAPER[@]}" \
  --chunk-minutes "$CHUNK" --out "$SESSION/paper" --archive "$SESSION/paper_results.tar.gz"

# 5. summary: what ran, what was cut
{
  echo "session: $(elapsed) s of a ${BUDGET} s budget"
  cat "$SESSION/steps.txt"
  "$PYTHON" - "$SESSION" <<'EOF' 2>&1
import json, sys
from pathlib import Path
s = Path(sys.argv[1])
if (s / "bench.json").exists():
    b = json.loads((s / "bench.json").read_text())
    for k, v in b.get("sides", {}).items():
        print(f"bench {k}: " + (f"{v['ms_per_round']:.2f} ms/round, {v['samples_per_s']:.0f} samples/s"
                                if "ms_per_round" in v else v.get("error", "?")))
    for k, v in b.get("best", {}).get("ratios", {}).items():
        print(f"bench ratio {k}: {v:.3f}")
p = s / "paper" / "progress.json"
if p.exists():
    g = json.loads(p.read_text())
    print(f"paper profile: {g['complete_runs']} of {g['planned_runs']} runs complete "
          f"({g['measured']['finished_rounds']} rounds, {g['measured']['ms_per_round']} ms/round with evaluations); "
          f"cut: the runs after these in paper_profile.jobs' priority order; "
          f"projected minutes for the rest: {g['measured'].get('projected_minutes_left')}")
EOF
} >"$SESSION/summary.txt"
pack
echo "----- summary"
cat "$SESSION/summary.txt"
echo "archive: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
