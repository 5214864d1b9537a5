"""When a run stops because it diverged: the check each round makes and what final.json records."""
from __future__ import annotations

import math

DIVERGED = "diverged"  # final.json "status" of a run stopped because it diverged


def diverged(row: dict, w) -> bool:
    """The round's loss (over samples that entered d_t) or the new iterate w_{t+1} is not finite:
    the run cannot recover, so it stops there (a round without samples has loss NaN by design)."""
    loss = row.get("loss")
    bad_loss = row.get("samples", 0) > 0 and loss is not None and not math.isfinite(float(loss))
    return bad_loss or not bool(w.isfinite().all())


def divergence_record(t: int) -> dict:
    """What final.json adds for a diverged run (lgc train prints it and exits with status 3)."""
    return {"status": DIVERGED, "diverged_round": int(t),
            "message": f"the run diverged at round {t} (loss or weights not finite): lower --lr"}
