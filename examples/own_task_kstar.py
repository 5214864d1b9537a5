"""K* for your own model and data: its constants (lgc.estimate), then theory.optimize_k.

    PYTHONPATH=. python examples/own_task_kstar.py [kstar.png]

The constants are measured at the task's initial weights (L by Hessian-vector power iteration,
sigma^2 and zeta^2 from per-sample gradients, Delta by L-BFGS, curvature bands by Lanczos;
bootstrap intervals). Two K* for the CLI's shifted-exponential timing (README "Choosing K"): the
recommended one, of least predicted loss gap under the error model (`k_star`), and the bound's
(`k_star_bound`).
"""
import sys

from own_task import make_task  # examples/own_task.py (this script's folder is on sys.path)

import lgc
from theory import optimize_k

if __name__ == "__main__":
    constants = lgc.estimate(make_task(), bootstrap=20, l_bootstrap=0, trajectory_steps=5, lbfgs_iters=50)
    print(f"L={constants.L:.4g} sigma2={constants.sigma2:.4g} zeta2={constants.zeta2:.4g} Delta={constants.Delta:.4g}")
    best = optimize_k(constants, workers=4, batch_size=8, blocks=4, budget=100.0)
    for row in best.table:
        print(f"K={row['K']}  E[R]={row['E[R]']:.4g}  T={row['T']:.0f}  bound={row['bound']:.4g}  "
              f"predicted_gap={row.get('pred_gap')}")
    print(f"K* = {best.k_star} (recommended, error model); bound's K* = {best.k_star_bound}")
    if len(sys.argv) > 1:
        best.plot(sys.argv[1])
        print(f"plot: {sys.argv[1]}")
