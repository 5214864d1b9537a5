"""The one figure style of the project, and the one way a figure is saved.

Every figure is drawn from a tidy CSV (one row per observation) and saved as
`<stem>.pdf` + `<stem>.png` beside `<stem>.csv`. PDFs embed TrueType fonts (fonttype 42),
so journals and text search accept them. Palette: seaborn "colorblind".
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from lgc.runs import atomic_write_csv  # noqa: E402
from theory.algorithms import ALGORITHMS  # noqa: E402

_UMASK = os.umask(0)
os.umask(_UMASK)

# One colour, marker and line style per algorithm, in every figure.
# The order, labels and line styles come from the algorithm table; colours go by name (below).
ALGORITHM_ORDER = tuple(a.name for a in ALGORITHMS)
ALGORITHM_LABELS = {a.name: a.label for a in ALGORITHMS}


def apply() -> None:
    """Set the seaborn theme and the PDF font type. Idempotent; every fig_*.py calls it."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind")
    matplotlib.rcParams.update({
        "pdf.fonttype": 42,  # TrueType, not Type 3
        "ps.fonttype": 42,
        "savefig.bbox": "tight",
        "savefig.dpi": 200,
        "figure.dpi": 100,
        "legend.frameon": False,
        "axes.titlesize": "medium",
    })


# Line styles tell apart curves that overlap (LGC and its ablation often coincide).
ALGORITHM_LINESTYLES = {a.name: a.line for a in ALGORITHMS}
TIME_LABEL = "virtual time [fast mini-batches]"


# Colour by name, not by table position: a new entry must not recolour the figures of the others.
# Indices into seaborn's 10-colour "colorblind" palette; the committed figures were drawn with these.
ALGORITHM_COLOURS = {"full-sync": 0, "fastest-k": 1, "lgc": 2, "lgc-fresh": 3, "anytime-minibatch": 4,
                     "rennala": 5, "malenia": 6}


def algorithm_colour(name: str) -> tuple:
    """The colour of `name`: its fixed one, or for a name without one a free colour of the palette
    chosen by a stable hash of the name (the same in every figure and every run)."""
    palette = sns.color_palette("colorblind", 10)
    if name in ALGORITHM_COLOURS:
        return palette[ALGORITHM_COLOURS[name]]
    free = [c for i, c in enumerate(palette) if i not in ALGORITHM_COLOURS.values()]
    return free[zlib.crc32(name.encode()) % len(free)]


def algorithm_palette(names: Sequence[str] = ALGORITHM_ORDER) -> dict[str, tuple]:
    """Algorithm -> colour (algorithm_colour) for every algorithm of the table."""
    return {name: algorithm_colour(name) for name in names}


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 3.4, height: float = 2.6, **kw):
    """A figure of ncols x nrows panels, each `width` x `height` inches."""
    apply()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    return fig, axes


def save(
    fig,
    path_stem: str | Path,
    rows: Iterable[Mapping] | None = None,
    fieldnames: Sequence[str] | None = None,
) -> list[Path]:
    """Write `<stem>.pdf` and `<stem>.png` (and `<stem>.csv` from `rows`); close the figure.

    Returns the written paths. The CSV is the tidy data the figure was drawn from.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if rows is not None:
        rows = list(rows)
        if fieldnames is None:  # the union of the rows' keys, in order of appearance
            fieldnames = list(dict.fromkeys(k for r in rows for k in r))
        csv_path = stem.with_suffix(".csv")
        atomic_write_csv(csv_path, rows, fieldnames)
        os.chmod(csv_path, 0o666 & ~_UMASK)  # the temporary file behind the atomic write is 0600
        paths.append(csv_path)
    for ext in ("pdf", "png"):
        p = stem.with_suffix(f".{ext}")
        # no creation date: the same figure gives the same bytes (no churn in committed figures)
        fig.savefig(p, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(p)
    plt.close(fig)
    return paths
