"""The algorithm table (theory/algorithms.py) is the one place the algorithms are listed."""
import ast
from pathlib import Path

import pytest

from theory.algorithms import ALGORITHMS, BOUND_NAMES, NAMES, PAPER_NAMES, algorithm
from theory.errors import TheoryInputError

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_reads_the_table():
    from lgc import config, rules, validate
    from lgc.commands import optimize_k
    from paper_figures import fig_algorithms, fig_validation, paper_profile, style
    from theory import bounds, order_stats

    assert tuple(rules.RULES) == NAMES  # one rule per entry, nothing else
    assert config.ALGORITHMS == order_stats.ROUND_ALGORITHMS == style.ALGORITHM_ORDER == NAMES
    # the paper's experiments compare the paper's rules; the optimal-time peers have fig_peers
    assert fig_algorithms.ALGORITHMS == paper_profile.ALGORITHMS == PAPER_NAMES
    assert set(PAPER_NAMES) | {a.name for a in ALGORITHMS if a.peer} == set(NAMES)
    assert {"full-sync", "fastest-k", "lgc"} <= set(PAPER_NAMES)
    assert set(style.ALGORITHM_LABELS) == set(style.ALGORITHM_LINESTYLES) == set(NAMES)
    assert bounds.BOUND_ALGORITHMS == optimize_k.ALGORITHMS == validate.VALIDATED == fig_validation.ALGS
    assert BOUND_NAMES == tuple(a.name for a in ALGORITHMS if a.has_bound)


def _listings(tree):
    """Tuple, list, set and dict-key literals that name three or more algorithms."""
    for node in ast.walk(tree):
        elts = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and elts:
            names = {e.value for e in elts if isinstance(e, ast.Constant) and e.value in NAMES}
            if len(names) >= 3:
                yield node.lineno


def test_no_module_lists_the_algorithms_but_the_table_and_the_rules():
    allowed = {"theory/algorithms.py", "lgc/rules.py"}  # the table, and one rule per entry
    found = []
    for pkg in ("theory", "lgc", "paper_figures"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed:
                found += [f"{rel}:{line}" for line in _listings(ast.parse(path.read_text()))]
    assert not found, f"algorithm names listed outside theory/algorithms.py: {found}"


def test_entries_answer_the_protocol_questions():
    full, fk, lgc, fresh, anytime = (algorithm(n) for n in ("full-sync", "fastest-k", "lgc", "lgc-fresh",
                                                            "anytime-minibatch"))
    assert [a.name for a in ALGORITHMS if a.waits_for_k] == ["fastest-k", "lgc", "lgc-fresh"]
    # eq. (2.5): fastest-k drops the stragglers' messages; lgc and anytime-minibatch count them
    assert fk.messages(3, 2) == 3 and lgc.messages(3, 2) == 5 and anytime.messages(3, 2) == 5
    assert full.groups == ("all",) and set(lgc.groups) == {"fast", "strag"} and anytime.groups == ("any",)
    assert fresh.waits_for_reports and not lgc.waits_for_reports
    assert not anytime.has_bound


def test_unknown_algorithm_names_the_valid_ones():
    with pytest.raises(TheoryInputError, match=r"algorithm='sgd' must be one of full-sync, fastest-k"):
        algorithm("sgd")
