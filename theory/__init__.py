"""Pure math of LGC-SGD: timing models, order statistics, schedules, convergence bounds,
the time-error trade-off and the optimal straggler threshold K (theory.optimize_k: theory/optimal_k.py).

numpy / scipy / sympy only; never imports torch (the trainers in `lgc` import this package).
Equation numbers cited in the code refer to theory/DERIVATION.md.
"""

__all__ = ["optimize_k"]


def __getattr__(name: str):
    if name == "optimize_k":  # loaded on first use: `import theory` stays free of numpy and scipy
        from theory.optimal_k import optimize_k

        return optimize_k
    raise AttributeError(f"module 'theory' has no attribute {name!r}")
