"""What ends a round, as one object per kind: the registry of the algorithm table's `round_end` values.

A round kind answers every question the layers ask about a round's end, so none of them branches
on the kind's name (README "Layout", the paragraph on a new kind of round):

  name                 the table's `round_end` value (theory/algorithms.py)
  waits_for_k          the round ends at the K-th fastest worker, so A_t has K workers
  counts_every_worker  outside warm-up its own end rule decides every worker's blocks, not a fast
                       set of K (rounds.csv's partial_blocks sums all workers; a replayed round is not
                       checked against N, M and K)
  in_dist              the dist backend runs it (lgc/dist/run.py refuses the others)
  parameter            the TrainConfig field that sets it (the deadline, S), or None
  schedule(finish, ctx)           the round from the drawn block finish times: (RoundSchedule without
                                  communication, messages to the server), DERIVATION.md section 2
  expected_round_times(q)         E[R(K)] for every K in q.ks, communication included: (mean,
                                  standard error, route), for optimize-k and the trade-off

A new kind is a module that defines such an object and passes it to register_round_kind, plus the
table entries that name it (theory/algorithms.py imports the module, so that the kind is registered
before the table is built). The built-in kinds below keep their math where it lives (the K-th fastest
and the deadline in theory/schedule.py and theory/order_stats.py, the block counts in theory/peers.py)
and import it when called: those modules read the algorithm table, which reads this registry, so a
kind's module reads the table only inside its methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from theory.errors import require
from theory.schedule import RoundSchedule, schedule_deadline, schedule_round


@dataclass(frozen=True)
class RoundContext:
    """What a round's schedule may depend on besides the drawn finish times.

    entry: the algorithm's table entry (theory.algorithms.Algorithm: messages, waits_for_reports);
    k: K of this round (N in warm-up); semantics: "abort" or "boundary" (eq. 2.3');
    previous: the last round's schedule (its carry-over, previous.next_start()), None in round 0;
    weights: pi_i up to scale (None: 1/N); param: the value of the kind's `parameter`, resolved
    (lgc.protocol.round_parameter), None for kinds without one."""

    entry: Any
    k: int
    round_index: int = 0
    semantics: str = "abort"
    previous: Optional[RoundSchedule] = None
    weights: Any = None
    param: Any = None


@dataclass(frozen=True)
class RoundTimesQuery:
    """What E[R(K)] of a kind may depend on (theory.order_stats.expected_round_times builds it):
    the timing model, N, M, the K of ks, the algorithm's entry, the CommModel, the Monte Carlo
    rounds and seed, the kind's param, lgc-fresh's report latency, whether the rounds form the
    boundary chain (eq. 2.3'), and what expected_round_times already computed: the RoundStats of
    the same draws, the exact E[t_cut(K)] (None where only Monte Carlo applies) and its route."""

    model: Any
    n: int
    m_blocks: int
    ks: np.ndarray
    entry: Any
    comm: Any
    rounds: int
    seed: int
    param: Any
    report_latency: float
    chained: bool
    stats: Any
    exact: Optional[np.ndarray]
    method: str

    @property
    def t_cut(self) -> np.ndarray:
        """E[t_cut(K)]: exact where a route applies, else the Monte Carlo mean."""
        return self.stats.t_cut if self.exact is None else self.exact


@runtime_checkable
class RoundKind(Protocol):
    """One `round_end` value: its facts and its two computations (see the module docstring)."""

    name: str
    waits_for_k: bool
    counts_every_worker: bool
    in_dist: bool
    parameter: Optional[str]

    def schedule(self, finish: np.ndarray, ctx: RoundContext) -> tuple[RoundSchedule, int]: ...

    def expected_round_times(self, q: RoundTimesQuery) -> tuple[np.ndarray, np.ndarray, str]: ...


class KthFastest:
    """The round closes at the K-th fastest worker (eqs. 2.3, 2.4): "k"; with K = N, "all" (full-sync,
    eq. 2.1, and every warm-up round)."""

    counts_every_worker = False
    in_dist = True
    parameter = None

    def __init__(self, name: str, waits_for_k: bool):
        self.name, self.waits_for_k = name, waits_for_k

    def schedule(self, finish, ctx):
        start = ctx.previous.next_start() if ctx.previous is not None else None  # the carry-over (eq. 2.3')
        s = schedule_round(finish, ctx.k, semantics=ctx.semantics, round_index=ctx.round_index, start=start,
                           wait_reports=ctx.entry.waits_for_reports)
        reporting = sum(1 for i, b in enumerate(s.blocks_done) if b > 0 and i not in s.fast)
        return s, ctx.entry.messages(ctx.k, reporting)

    def expected_round_times(self, q):
        """"all": E[max_i X_i] + comm(N messages), the same for every K (theory.order_stats, eq. 2.1).
        "k": E[R(K)] + comm (eqs. 2.3, 2.4), exact or Monte Carlo, with the boundary chain's excess
        on the same draws as a control variate (eq. 2.3'), plus the report latency where the server
        waits for the reports (lgc-fresh, eq. 3.4)."""
        if not self.waits_for_k:
            from theory.order_stats import full_round_times

            return full_round_times(q)
        exact, stats, method = q.exact, q.stats, q.method
        if not q.chained:
            mean, se = q.t_cut.copy(), (stats.t_cut_se if exact is None else np.zeros(len(q.ks)))
        elif exact is None:
            mean, se, method = stats.wall.copy(), stats.wall_se, "monte carlo"
        else:  # exact cutoff plus the chain's excess on the same draws: a control variate, smaller error
            mean, se, method = exact + stats.excess, stats.excess_se, method + " + monte carlo carry-over"
        mean = mean + q.comm.time(q.entry.messages(q.ks, q.n - q.ks))  # every straggler reports where the rule uses them
        if q.entry.waits_for_reports:
            mean = mean + q.report_latency
        return mean, se, method


class Deadline:
    """Every block finished by a fixed deadline counts (anytime-minibatch, eq. 2.6)."""

    name = "deadline"
    waits_for_k = False
    counts_every_worker = True
    in_dist = True
    parameter = "deadline"

    def schedule(self, finish, ctx):
        s = schedule_deadline(finish, ctx.param, round_index=ctx.round_index)
        return s, int(np.count_nonzero(np.asarray(s.blocks_done) > 0))

    def expected_round_times(self, q):
        """The deadline (q.param; by default E[t_cut(K)], so K sets it) + comm(N) (eq. 2.6)."""
        dl = q.t_cut if q.param is None else np.full(len(q.ks), float(q.param))
        require(bool(np.all(dl > 0)), f"deadline={q.param} must be > 0")
        se = q.stats.t_cut_se if (q.param is None and q.exact is None) else np.zeros(len(q.ks))
        return dl + q.comm.time(q.entry.messages(q.ks, q.n - q.ks)), se, q.method if q.param is None else "given"


class BlockCount:
    """A count of block gradients from the workers' block streams (the optimal-time peers,
    theory/peers.py, eqs. 6.2-6.3): B_i may exceed M, and every block is one message."""

    name = "blocks"
    waits_for_k = False
    counts_every_worker = True
    in_dist = False
    parameter = "peer_s"

    def schedule(self, finish, ctx):
        from theory.peers import peer_schedule

        s = peer_schedule(ctx.entry.name, finish, ctx.param, weights=ctx.weights, round_index=ctx.round_index)  # eq. 6.3'
        return s, int(np.sum(s.blocks_done))

    def expected_round_times(self, q):
        from theory.peers import peer_round_times

        return peer_round_times(q)


_KINDS: dict = {}


def register_round_kind(kind: RoundKind) -> RoundKind:
    """Make `kind` a valid `round_end` of the algorithm table; a name already taken is refused."""
    require(isinstance(kind, RoundKind), f"{kind!r} is not a RoundKind (theory/round_kinds.py lists what it needs)")
    require(kind.name not in _KINDS, f"round_end={kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def round_kind(name: str) -> RoundKind:
    """The registered kind called `name`; TheoryInputError names the valid ones."""
    require(name in _KINDS, f"round_end={name!r} must be one of {', '.join(_KINDS)}")
    return _KINDS[name]


def round_kind_names() -> tuple:
    return tuple(_KINDS)


FULL = register_round_kind(KthFastest("all", waits_for_k=False))  # also every warm-up round
for _kind in (KthFastest("k", waits_for_k=True), Deadline(), BlockCount()):
    register_round_kind(_kind)
