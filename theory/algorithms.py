"""The algorithm table: every fact about an algorithm that more than one module needs, once.

Every layer reads this table (the rules, the expected round times, the bounds, optimize-k,
the config check, both backends, the figures); none lists algorithm names of its own. Adding
an algorithm means: its entry here, its rule in lgc/rules.py (`RULES`), and its tests.

Fields (theory/DERIVATION.md sections 2 and 3):
  name               the name on the command line, in configs and in CSVs
  groups             the gradient means the rule reads outside warm-up (lgc.rules.aggregate's
                     `grads` keys): "all" sum_i pi_i g_i (eq. 3.1), "fast" gA_t, "strag" gS_t
                     (eq. 3.2), "any" the sample-weighted blocks finished by the deadline (eq. 3.5)
  round_end          what closes a round, a kind registered in theory/round_kinds.py (its
                     schedule, E[R], whether dist runs it): "all" (every worker's mini-batch),
                     "k" (the K-th fastest, t_cut of eq. 2.3), "deadline" (a fixed deadline,
                     eq. 2.6), "blocks" (a count of block gradients from the workers' block
                     streams, theory/peers.py, eq. 6.2-6.3; blocks[i] = B_i may exceed M, and
                     every block is one message)
  stragglers_report  stragglers send their partial gradients (eq. 2.5 counts their messages)
  waits_for_reports  the server also waits for the partial reports (the round lasts the report
                     latency longer: lgc-fresh, eq. 3.4)
  has_bound          theory/bounds.py has a convergence bound for it
  strong_bound       theory/strong.py also bounds it under strong convexity (eqs. 4.48-4.49)
  paper_rule         one of the three rules the paper compares (LGC, K-sync SGD, full SGD): every
                     figure of the paper profile draws it; those that wait for K are its K sweeps
  label, line        legend label and matplotlib line style (dash tuple) of its curves
  peer               an optimal-time peer (Tyurin & Richtarik 2023; theory/peers.py, fig_peers)
  paper_figures      the paper's experiments (fig_algorithms, the paper profile) draw it (PAPER_NAMES);
                     False for the peers, which fig_peers compares
"""
from __future__ import annotations

from dataclasses import dataclass

from theory.errors import require
from theory.round_kinds import RoundKind, round_kind, round_kind_names

GROUPS = ("all", "fast", "strag", "any")


@dataclass(frozen=True)
class Algorithm:
    name: str
    groups: tuple
    round_end: str
    stragglers_report: bool
    has_bound: bool
    label: str
    waits_for_reports: bool = False
    strong_bound: bool = False
    paper_rule: bool = False
    line: object = "-"
    peer: bool = False
    paper_figures: bool = True

    def __post_init__(self):
        require(self.round_end in round_kind_names(),
                f"round_end={self.round_end!r} must be one of {', '.join(round_kind_names())}")
        require(set(self.groups) <= set(GROUPS), f"groups={self.groups!r} must be among {', '.join(GROUPS)}")

    @property
    def round_kind(self) -> RoundKind:
        """What ends its round, as one object (theory/round_kinds.py): schedule, E[R], dist or not."""
        return round_kind(self.round_end)

    @property
    def waits_for_k(self) -> bool:
        """The round ends at the K-th fastest worker, so the fast set A_t has K workers."""
        return self.round_kind.waits_for_k

    @property
    def counts_every_worker(self) -> bool:
        """Outside warm-up, the round's own end rule (a deadline, a block count) decides every
        worker's blocks, not a fast set of K: all workers' finished blocks count as partial work
        (rounds.csv's partial_blocks), and a replayed round is not checked against N, M and K."""
        return self.round_kind.counts_every_worker

    def messages(self, n_fast, n_reporting):
        """Messages to the server in one round, the count in eq. (2.5): the |A_t| fast workers,
        plus the stragglers that report a partial gradient where the algorithm uses them."""
        return n_fast + n_reporting if self.stragglers_report else n_fast


ALGORITHMS = (
    Algorithm("full-sync", groups=("all",), round_end="all", stragglers_report=False, has_bound=True,
              label="full-sync", paper_rule=True),
    Algorithm("fastest-k", groups=("fast",), round_end="k", stragglers_report=False, has_bound=True,
              label="fastest-K", strong_bound=True, paper_rule=True),
    Algorithm("lgc", groups=("fast", "strag"), round_end="k", stragglers_report=True, has_bound=True,
              label="LGC", strong_bound=True, paper_rule=True),
    Algorithm("lgc-fresh", groups=("fast", "strag"), round_end="k", stragglers_report=True, has_bound=True,
              label="LGC-fresh (ablation)", line=(0, (4, 2)), waits_for_reports=True),
    Algorithm("anytime-minibatch", groups=("any",), round_end="deadline", stragglers_report=True, has_bound=False,
              label="anytime-minibatch", line=(0, (1, 1.5))),
    # the optimal-time peers (Tyurin & Richtarik, NeurIPS 2023; DERIVATION.md section 6)
    Algorithm("rennala", groups=("any",), round_end="blocks", stragglers_report=True, has_bound=False,
              label="Rennala SGD", line=(0, (6, 1.5, 1, 1.5)), peer=True, paper_figures=False),
    Algorithm("malenia", groups=("all",), round_end="blocks", stragglers_report=True, has_bound=False,
              label="Malenia SGD", line=(0, (2, 1)), peer=True, paper_figures=False),
)
NAMES = tuple(a.name for a in ALGORITHMS)
BOUND_NAMES = tuple(a.name for a in ALGORITHMS if a.has_bound)
PAPER_NAMES = tuple(a.name for a in ALGORITHMS if a.paper_figures)  # the paper's rules and baselines
PAPER_RULES = tuple(a.name for a in ALGORITHMS if a.paper_rule)  # full-sync, fastest-k, lgc
K_RULES = tuple(a.name for a in ALGORITHMS if a.paper_rule and a.waits_for_k)  # the paper's K sweeps: fastest-k, lgc
_BY_NAME = {a.name: a for a in ALGORITHMS}


def algorithm(name: str) -> Algorithm:
    """The table entry of `name`; TheoryInputError names the valid ones."""
    require(name in _BY_NAME, f"algorithm={name!r} must be one of {', '.join(NAMES)}")
    return _BY_NAME[name]
