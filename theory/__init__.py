"""Pure math of LGC-SGD: timing models, order statistics, schedules, convergence bounds,
the time-error trade-off and the optimal straggler threshold K.

numpy / scipy / sympy only; never imports torch (the trainers in `lgc` import this package).
Equation numbers cited in the code refer to theory/DERIVATION.md.
"""
