"""Figures 1-6 and 8 of the paper profile, and the per-class accuracy at the end, from the
finished runs (tidy rows -> PDF + PNG + CSV), at either scale (paper_figures/paper_profile.py).

Curves: the mean over seeds and a 95% confidence band (Student t over seeds); time curves are
interpolated onto a grid that ends at the earliest seed's last evaluation. A figure is drawn
from whatever runs are complete; a curve needs >= 2 seeds for a band (the profile has 3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import paper_profile as pp
from paper_figures import style
from theory.algorithms import algorithm as algorithm_entry

EVAL_FIELDS = ("figure", "c", "h", "K", "M", "lr", "algorithm", "seed", "round", "time", "test_acc", "test_loss")


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else 0.0


def eval_rows(done: list) -> list[dict]:
    """One row per (run, evaluation): done is [(Job, run_dir)] of complete runs."""
    from lgc.runs import read_csv

    rows = []
    for job, path in done:
        cfg = job.config
        evals = [r for r in read_csv(Path(path) / "rounds.csv") if r.get("test_acc", "") != ""]
        for fig in job.figures:
            # fig3's full-sync run stands for every h, on the clock each h gives it (pp.full_sync_clock)
            shared = fig == "fig3" and isinstance(job.tags.get("h"), tuple)
            own = pp.PERSISTENT if cfg.timing == "heterogeneous" else cfg.straggling_period
            for h in job.tags["h"] if shared else (own,):
                clock = pp.full_sync_clock(cfg, h) if shared and h != cfg.straggling_period else None
                for r in evals:
                    t = int(r["round"])
                    rows.append({"figure": fig, "c": cfg.task.classes_per_worker, "h": h,
                                 "K": cfg.threshold_k if algorithm_entry(cfg.algorithm).round_end != "all"
                                 else cfg.n_workers, "M": cfg.blocks, "lr": cfg.lr, "algorithm": cfg.algorithm,
                                 "seed": cfg.seed,
                                 "round": t + 1, "time": float(r["time"]) if clock is None else float(clock[t]),
                                 "test_acc": float(r["test_acc"]), "test_loss": float(r["test_loss"])})
    return rows


def band(rows, x: str, y: str, points: int = 60):
    """(grid, mean, half-width of the 95% band, seeds) over the seeds present in rows."""
    seeds = sorted({r["seed"] for r in rows})
    curves = [sorted((r[x], r[y]) for r in rows if r["seed"] == s) for s in seeds]
    if x == "time":
        grid = np.linspace(max(c[0][0] for c in curves), min(c[-1][0] for c in curves), points)
    else:
        grid = np.array(sorted({p[0] for p in curves[0]}))
        grid = grid[grid <= min(c[-1][0] for c in curves)]
    ys = np.array([np.interp(grid, [p[0] for p in c], [p[1] for p in c]) for c in curves])
    half = _t95(len(seeds)) * ys.std(0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(len(grid))
    return grid, ys.mean(0), half, len(seeds)


def _plot(ax, rows, x, y, *, label, colour, ls="-"):
    if not rows:
        return
    grid, mean, half, n = band(rows, x, y)
    ax.plot(grid, mean, color=colour, ls=ls, lw=1.4, label=f"{label} (n={n})")
    ax.fill_between(grid, mean - half, mean + half, color=colour, alpha=0.15, lw=0)


def _select(rows, fig, **eq):
    return [r for r in rows if r["figure"] == fig and all(r[k] == v for k, v in eq.items())]


def _finish(fig, axes, title):
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.suptitle(title, fontsize="medium", y=1.06)


def _model(scale) -> str:
    return {"resnet18": "ResNet-18-GN", "cnn": f"small CNN (width {scale.width})"}.get(scale.model, scale.model)


def fig_algorithms(rows, out: Path, x: str, scale=pp.PAPER) -> list[Path]:
    """fig1 (x = time) / fig2 (x = round): accuracy of every algorithm for each c of the scale."""
    name = "fig1" if x == "time" else "fig2"
    pal = style.algorithm_palette()
    fig, axes = style.figure(ncols=len(scale.classes), width=3.2, height=2.6)
    for ax, c in zip(axes[0], scale.classes):
        for alg in pp.ALGORITHMS:
            _plot(ax, _select(rows, name, c=c, algorithm=alg), x, "test_acc", label=style.ALGORITHM_LABELS[alg],
                  colour=pal[alg], ls=style.ALGORITHM_LINESTYLES[alg])
        ax.set_title(f"c = {c} classes per worker")
        ax.set_xlabel(style.TIME_LABEL if x == "time" else "round")
        ax.set_ylabel("test accuracy")
    _finish(fig, axes, f"CIFAR-10, {_model(scale)}, N = 10, K = {pp.BASE_K}, h = {pp.BASE_H}, {scale.semantics} "
                       "semantics: mean and 95% band over seeds")
    return style.save(fig, out / f"{name}_accuracy_vs_{x}", _select_fig(rows, name), EVAL_FIELDS)


def _select_fig(rows, name):
    return [r for r in rows if r["figure"] == name]


def fig_periods(rows, out: Path, scale=pp.PAPER) -> list[Path]:
    pal = style.algorithm_palette()
    regimes = tuple(scale.periods) + ((pp.PERSISTENT,) if scale.persistent else ())
    fig, axes = style.figure(ncols=len(regimes), width=3.2, height=2.6)
    for ax, h in zip(axes[0], regimes):
        for alg in pp.CORE:
            _plot(ax, _select(rows, "fig3", h=h, algorithm=alg), "time", "test_acc",
                  label=style.ALGORITHM_LABELS[alg], colour=pal[alg])
        t = pp.PERSISTENT_TIMING
        ax.set_title(f"straggling period h = {h}" if h != pp.PERSISTENT else
                     f"persistent: {round(t['slow_fraction'] * 10)} workers {t['slowdown']:g}x slower")
        ax.set_xlabel(style.TIME_LABEL)
        ax.set_ylabel("test accuracy")
    _finish(fig, axes, f"Straggling period (c = {scale.base_c}, K = {pp.BASE_K})")
    return style.save(fig, out / "fig3_straggling_period", _select_fig(rows, "fig3"), EVAL_FIELDS)


def fig_blocks(rows, out: Path, scale=pp.PAPER) -> list[Path]:
    fig, axes = style.figure(ncols=2, width=3.4, height=2.7)
    colours = style.sns.color_palette("colorblind", len(pp.BLOCKS))
    ends = []
    for colour, m in zip(colours, pp.BLOCKS):
        sub = _select(rows, "fig5", M=m)
        _plot(axes[0, 0], sub, "time", "test_acc", label=f"M = {m}", colour=colour)
        if sub:
            last = max(r["round"] for r in sub)
            ends.append({"M": m, "mean_round_time": float(np.mean([r["time"] / r["round"] for r in sub
                                                                   if r["round"] == last]))})
    axes[0, 0].set_xlabel(style.TIME_LABEL)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].set_title("LGC, accuracy vs time")
    if ends:
        axes[0, 1].plot([e["M"] for e in ends], [e["mean_round_time"] for e in ends], marker="o", color="0.3")
    axes[0, 1].set_xscale("log", base=2)
    axes[0, 1].set_xticks(pp.BLOCKS, [str(m) for m in pp.BLOCKS])
    axes[0, 1].minorticks_off()
    axes[0, 1].set_xlabel("blocks per mini-batch M")
    axes[0, 1].set_ylabel("mean round time [time units]")
    axes[0, 1].set_title("round time")
    _finish(fig, axes, f"Number of blocks M (c = {scale.base_c}, h = {pp.BASE_H}, K = {pp.BASE_K})")
    return style.save(fig, out / "fig5_blocks", _select_fig(rows, "fig5"), EVAL_FIELDS)


def fig_error_time(rows, train_loss, out: Path, constants, scale) -> list[Path]:
    """fig6: predicted bound vs time for several K (left) and measured training loss (right)."""
    fig, axes = style.figure(ncols=2, width=3.4, height=2.7)
    colours = dict(zip(scale.ks, style.sns.color_palette("colorblind", len(scale.ks))))
    data = []
    if constants is not None:
        from theory import bounds

        for k in scale.ks:
            er = pp.expected_round_time("lgc", k, semantics=scale.semantics)
            ts = np.unique(np.geomspace(1, pp.rounds_for("lgc", k, scale), 40).astype(int))
            vals = bounds.evaluate("lgc", N=10, K=k, B=50, M=pp.BASE_M, L=constants.L, sigma2=constants.sigma2,
                                   zeta2=constants.zeta2, Delta=constants.Delta, eta=pp.BASE_LR, T=ts,
                                   h=pp.BASE_H)["total"]
            axes[0, 0].plot(ts * er, vals, color=colours[k], label=f"K = {k}")
            data += [{"kind": "bound", "K": k, "time": float(t * er), "value": float(v)} for t, v in zip(ts, vals)]
        axes[0, 0].set_yscale("log")
        axes[0, 0].set_ylabel("bound on mean ||∇F||²")
    else:
        axes[0, 0].text(0.5, 0.5, "no constants:\npass --constants FILE", ha="center", va="center",
                        transform=axes[0, 0].transAxes, fontsize="small")
    axes[0, 0].set_title("predicted (LGC)")
    for k in scale.ks:
        sub = [r for r in train_loss if r["K"] == k]
        _plot(axes[0, 1], sub, "time", "train_loss", label=f"K = {k}", colour=colours[k])
        data += [{"kind": "measured", **r} for r in sub]
    axes[0, 1].set_ylabel("training loss (mean per eval period)")
    axes[0, 1].set_title("measured (LGC)")
    for ax in axes[0]:
        ax.set_xlabel(style.TIME_LABEL)
    _finish(fig, axes, f"Error vs time for several K (c = {scale.base_c}, h = {pp.BASE_H})")
    return style.save(fig, out / "fig6_error_vs_time", data)


def train_loss_rows(done) -> list[dict]:
    """fig6's measured curves: per LGC run of fig6, the training loss averaged over eval_every rounds."""
    from lgc.runs import read_csv

    out = []
    for job, path in done:
        if "fig6" not in job.figures:
            continue
        rs = read_csv(Path(path) / "rounds.csv")
        window = max(1, job.config.eval_every)
        for s in range(0, len(rs) - window + 1, window):
            chunk = rs[s:s + window]
            out.append({"K": job.config.threshold_k, "seed": job.config.seed, "round": s + window,
                        "time": float(chunk[-1]["time"]), "train_loss": float(np.mean([float(r["loss"]) for r in chunk]))})
    return out


def fig_step_size(rows, out: Path) -> list[Path]:
    pal = style.algorithm_palette()
    fig, axes = style.figure(ncols=1, width=3.6, height=2.7)
    ax = axes[0, 0]
    data = []
    for alg in pp.CORE:
        sub = _select(rows, "fig8", algorithm=alg)
        lrs = sorted({r["lr"] for r in sub})
        means, halves = [], []
        for lr in lrs:
            runs = {}
            for r in sub:
                if r["lr"] == lr and r["round"] >= runs.get(r["seed"], (0, 0))[0]:
                    runs[r["seed"]] = (r["round"], r["test_acc"])
            v = np.array([a for _, a in runs.values()])
            means.append(v.mean())
            halves.append(_t95(len(v)) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0)
            data += [{"algorithm": alg, "lr": lr, "seed": s, "final_test_acc": a} for s, (_, a) in runs.items()]
        if lrs:
            ax.errorbar(lrs, means, yerr=halves, marker="o", ms=4, capsize=2, color=pal[alg],
                        label=style.ALGORITHM_LABELS[alg])
    ax.set_xscale("log")
    ax.set_xticks(pp.LRS, [f"{lr:g}" for lr in pp.LRS])
    ax.minorticks_off()
    ax.set_xlabel("step size η")
    ax.set_ylabel("final test accuracy")
    _finish(fig, axes, "Step-size sweep (mean, 95% CI)")
    return style.save(fig, out / "fig8_step_size", data)


CLASS_FIELDS = ("regime", "algorithm", "seed", "class", "test_acc", "slow_share")


def class_rows(done, scale=pp.PAPER) -> list[dict]:
    """Each class's test accuracy after the last round (final.json), per run of two regimes: the
    base (fig1 at c = base_c) and the persistent slow set (fig3). slow_share: the share of the
    class's training samples held by the persistent slow workers (data.json's label histogram)."""
    import json

    out = []
    n_slow = round(pp.PERSISTENT_TIMING["slow_fraction"] * 10)
    for job, path in done:
        cfg = job.config
        fin = json.loads((Path(path) / "final.json").read_text())
        per_class = fin.get("test_acc_per_class")
        if per_class is None:
            continue
        if "classes" not in job.figures:
            continue
        if cfg.timing == "heterogeneous":
            regime = pp.PERSISTENT
            hist = np.array(json.loads((Path(path) / "data.json").read_text())["label_histogram"])
            share = hist[:n_slow].sum(0) / np.maximum(hist.sum(0), 1)
        else:
            regime, share = f"h={cfg.straggling_period}", None
        out += [{"regime": regime, "algorithm": cfg.algorithm, "seed": cfg.seed, "class": k, "test_acc": float(a),
                 "slow_share": "" if share is None else float(share[k])} for k, a in enumerate(per_class)]
    return out


CIFAR10_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def fig_classes(done, out: Path, scale=pp.PAPER) -> list[Path]:
    """Who loses which classes: each class's final test accuracy per algorithm (mean over seeds,
    95% CI), in the base regime and with the persistent slow set (its classes marked)."""
    rows = class_rows(done, scale)
    if not rows:
        return []
    regimes = [r for r in (f"h={pp.BASE_H}", pp.PERSISTENT) if any(x["regime"] == r for x in rows)]
    pal = style.algorithm_palette()
    fig, axes = style.figure(ncols=1, nrows=len(regimes), width=7.0, height=2.4)
    for ax, regime in zip(axes[:, 0], regimes):
        sub = [r for r in rows if r["regime"] == regime]
        algs = [a for a in pp.ALGORITHMS if any(r["algorithm"] == a for r in sub)]
        width = 0.8 / len(algs)
        for i, alg in enumerate(algs):
            means, halves = [], []
            for k in range(10):
                v = np.array([r["test_acc"] for r in sub if r["algorithm"] == alg and r["class"] == k])
                means.append(v.mean())
                halves.append(_t95(len(v)) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0)
            n = len({r["seed"] for r in sub if r["algorithm"] == alg})
            ax.bar(np.arange(10) - 0.4 + (i + 0.5) * width, means, width, yerr=halves, color=pal[alg], capsize=1,
                   label=f"{style.ALGORITHM_LABELS[alg]} (n={n})", error_kw={"lw": 0.6})
        labels = list(CIFAR10_CLASSES)
        if regime == pp.PERSISTENT:
            share = {r["class"]: r["slow_share"] for r in sub}
            labels = [f"{c}\n{share[k]:.0%} slow" for k, c in enumerate(labels)]
        ax.set_xticks(range(10), labels, fontsize="x-small")
        ax.set_ylim(0, 1)
        ax.set_ylabel("final test accuracy")
        ax.set_title("persistent slow set (share of each class's samples on the slow workers)"
                     if regime == pp.PERSISTENT else f"straggling period {regime.replace('=', ' = ')}",
                     fontsize="small")
    _finish(fig, axes, f"Per-class test accuracy after the last round (c = {scale.base_c}, K = {pp.BASE_K})")
    return style.save(fig, out / "classes_per_class_accuracy", rows, CLASS_FIELDS)


def draw_all(done, out: Path, *, constants=None, scale=pp.PAPER, only=pp.FIGURES) -> list[Path]:
    """Every requested figure that has at least one finished run."""
    rows = eval_rows(done)
    have = {r["figure"] for r in rows}
    paths: list[Path] = []
    if "fig1" in only and "fig1" in have:
        paths += fig_algorithms(rows, out, "time", scale)
    if "fig2" in only and "fig2" in have:
        paths += fig_algorithms(rows, out, "round", scale)
    if "fig3" in only and "fig3" in have:
        paths += fig_periods(rows, out, scale)
    if "fig4" in only and "fig4" in have:
        from paper_figures.paper_threshold import fig_threshold

        paths += fig_threshold(rows, out, constants, scale)
    if "fig5" in only and "fig5" in have:
        paths += fig_blocks(rows, out, scale)
    if "fig6" in only and "fig6" in have:
        paths += fig_error_time(rows, train_loss_rows(done), out, constants, scale)
    if "fig8" in only and "fig8" in have:
        paths += fig_step_size(rows, out)
    if "classes" in only:
        paths += fig_classes(done, out, scale)
    return paths
