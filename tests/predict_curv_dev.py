"""A measurement (not a test), on development settings: paper_figures/kstar_dev.py's per-worker-curvature quadratic
(uniform-H, N = 8 and 12, its three timings and two budgets, fastest-K and lgc: 24 cells), the "bands" variant of
paper_figures/kstar_predict.py with each worker's own curvature (eq. 8.5'', `curvatures=True`) against without
(F's shared Hessian, eq. 8.2''), graded as kstar_check grades (within 10% of the best K, worst, median R^2).
kstar_check's grids and the model cells' validation half are not used.

    python tests/predict_curv_dev.py [SEEDS]     # 8 seeds: about a minute on one core
"""
from __future__ import annotations

import sys
import time

from paper_figures import kstar_check as kc
from paper_figures import kstar_grade as kg
from paper_figures import kstar_dev as kd
from paper_figures import kstar_predict as kp



def predict(res, problem, prob, margin) -> dict:
    """The scalar variant, the bands with per-worker curvatures ("bands") and without ("bands_shared")."""
    a = kp.predict(res, problem, prob, margin, curvatures=True)
    b = kp.predict(res, problem, prob, margin, curvatures=False)
    return {"scalar": a["scalar"], "bands": a["bands"], "bands_shared": b["bands"]}


def main(seeds: int = 8) -> int:
    t0, cells = time.perf_counter(), []
    for n in kd.WORKERS:
        per_worker = [p for p in kd.problems(n) if p.name.startswith("uniform-H")]
        cells += kc.run(seeds=seeds, budgets=kd.BUDGETS, n=n, grid=[(p, kd.timings()) for p in per_worker],
                        predict=predict, log=lambda s: None)
    for q in kp.QUANTITIES:
        s = kg.predictive_summary(cells, q)
        for v in ("bands_shared", "bands"):
            x = s[v]
            print(f"{q:5} {v:12} within 10% {round(x['within_10'] * len(cells))}/{len(cells)}, beyond 15% "
                  f"{x['beyond_15']}, worst {x['worst']:.3f}, median {x['median']:.3f}, R^2 median {x['r2_median']:.2f}")
    print(f"{len(cells)} cells, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8))
