"""paper_figures/kstar_mlp.py reports both K* of optimize-k (the recommended one, the error model's, and the
bound's), from a JSON of either format; its CSV rows mark each (the sweep itself, 10 minutes, is not run here)."""
import json

import numpy as np

from paper_figures.kstar_mlp import CSV_HEAD, OUT, csv_rows, kstars


def test_both_k_stars_from_either_json_format():
    committed = json.loads((OUT / "optimize_k.json").read_text())  # written before the error model
    assert "k_star_bound" not in committed and kstars(committed) == (committed["k_star"],) * 2
    assert kstars({"k_star": 1, "k_star_bound": 8}) == (1, 8)


def test_csv_rows_mark_both_k_stars_and_the_predicted_gap():
    rows = {k: {"E[R]": 1.0 + k, "T": 100.0, "eta": 0.2, "bound": 2.0 / k, "near_best": k == 3,
                "pred_gap": (0.5 if k == 1 else None)} for k in (1, 2, 3)}
    out = csv_rows(np.array([1, 2, 3]), np.array([1.1, 1.2, 1.3]), np.array([0.1] * 3), rows, k_star=1, k_bound=3,
                   best=2)
    col = {name: [r[i] for r in out] for i, name in enumerate(CSV_HEAD)}
    assert all(len(r) == len(CSV_HEAD) for r in out)
    assert col["is_k_star"] == [1, 0, 0] and col["is_k_star_bound"] == [0, 0, 1] and col["is_best"] == [0, 1, 0]
    assert col["pred_gap"] == [0.5, "", ""] and col["near_best"] == [0, 0, 1]
