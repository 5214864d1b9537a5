"""A measurement (not a test): end to end on a synthetic MLP of our own (not a model cell of the K* check):
`lgc estimate` -> `lgc optimize-k --json` (k_star: the error model's, k_star_bound: the bound's) -> lgc trained
at every K at optimize-k's eta, plain SGD, 2 seeds, test loss at the budget.

Setting: MLP width 32, Dirichlet(0.3) partition, 6 workers x 300 samples, B = 20, M = 5, shifted-exponential
timing, abort semantics, tau = 200; arguments: the straggling period h (1, 5, 1000000), the algorithm (lgc) and
the server momentum (0; with momentum, 2 warm-up rounds, given to optimize-k and to the runs alike).

    python tests/predict_mlp.py 5 [lgc] [0.0]        # about a minute
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

TAU, N = 200.0, 6
TASK = ["--dataset", "synthetic", "--model", "mlp", "--width", "32", "--partition", "dirichlet", "--dirichlet-alpha",
        "0.3", "--samples-per-worker", "300", "--workers", str(N), "--seed", "0"]


def _cli(argv) -> str:
    from lgc.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0, argv
    return buf.getvalue()


def main(h: int, alg: str = "lgc", momentum: float = 0.0) -> int:
    from lgc.config import TrainConfig
    from lgc.runs import read_csv
    from lgc.sim import train

    warm = 2 if momentum else 0
    with tempfile.TemporaryDirectory() as tmp:
        const = str(Path(tmp) / "constants.json")
        _cli(["estimate", *TASK, "--bootstrap", "20", "--l-bootstrap", "3", "--out", const, "--quiet"])
        opt = json.loads(_cli(["optimize-k", "--constants", const, "--workers", str(N), "--blocks", "5", "--batch-size",
                               "20", "--algorithm", alg, "--timing", "shifted-exp", "--straggling-period", str(h),
                               "--semantics", "abort", "--budget", str(TAU), "--momentum", str(momentum),
                               "--warmup-rounds", str(warm), "--json"]))
        eta = {r["K"]: r["eta"] for r in opt["rows"]}[opt["k_star"]]
        loss = []
        for k in range(1, N + 1):
            per_seed = []
            for seed in (0, 1):
                cfg = TrainConfig(algorithm=alg, n_workers=N, threshold_k=k, batch_size=20, blocks=5,
                                  rounds=int(TAU) + 1, lr=float(eta), momentum=momentum, warmup_rounds=warm,
                                  dataset="synthetic",
                                  model="mlp", width=32, partition="dirichlet", dirichlet_alpha=0.3,
                                  samples_per_worker=300, timing="shifted-exp", straggling_period=h, semantics="abort",
                                  eval_every=5, checkpoint_every=0, device="cpu", seed=seed, data_seed=0)
                rows = read_csv(train(cfg, root=Path(tmp) / "runs", quiet=True) / "rounds.csv")
                ev = [r for r in rows if r.get("test_loss", "") != "" and float(r["time"]) <= TAU]
                per_seed.append(float(ev[-1]["test_loss"]))
            loss.append(np.mean(per_seed))
    loss = np.array(loss)
    print(f"{alg} h={h} momentum={momentum:g}: k_star {opt['k_star']} (cost {loss[opt['k_star'] - 1] / loss.min():.3f}), k_star_bound "
          f"{opt['k_star_bound']} (cost {loss[opt['k_star_bound'] - 1] / loss.min():.3f}), measured best K "
          f"{int(np.argmin(loss)) + 1}; test loss by K {np.round(loss, 4).tolist()}; predicted gap by K "
          f"{[round(r['pred_gap'], 4) for r in opt['rows']]}")
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(int(a[0]) if a else 5, a[1] if len(a) > 1 else "lgc", float(a[2]) if len(a) > 2 else 0.0))
