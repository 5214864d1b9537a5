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
    assert PAPER_NAMES == tuple(a.name for a in ALGORITHMS if a.paper_figures)
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
    # the table, one rule per entry, and each name's fixed colour (colours go by name, not position)
    allowed = {"theory/algorithms.py", "lgc/rules.py", "paper_figures/style.py"}
    found = []
    for pkg in ("theory", "lgc", "paper_figures"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed:
                found += [f"{rel}:{line}" for line in _listings(ast.parse(path.read_text()))]
    assert not found, f"algorithm names listed outside theory/algorithms.py: {found}"


# Where a module may compare with an algorithm's name: the modules that hold one formula or one
# simulated branch per algorithm (dispatch on the name is what they are), and a few figures that
# draw one named algorithm's data. Anywhere else a name check is a property the table should hold.
NAME_CHECKS_ALLOWED = {
    ("theory/bounds.py", "*"): "each bound's own terms (DERIVATION.md section 4)",
    ("theory/strong.py", "*"): "each strong-convexity bound's own recursion (eqs. 4.48-4.49)",
    ("theory/peers.py", "*"): "each optimal-time peer's own schedule (eqs. 6.2-6.3)",
    ("theory/predict.py", "*"): "each rule's own round in the error model (DERIVATION.md section 8)",
    ("theory/predict_curv.py", "*"): "each rule's round with per-worker curvatures (DERIVATION.md eq. 8.5''b)",
    ("paper_figures/kstar_sim.py", "*"): "an independent simulation of each rule, not the trainers' code",
    ("paper_figures/heldout_dev.py", "*"): "the rules each development setting runs (an experiment's choice)",
    ("theory/tradeoff.py", "fastest-k"): "the one bound with an independent-set form (eq. 4.11')",
    ("paper_figures/fig_tradeoff.py", "lgc"): "panels that draw LGC's round times and bound terms",
    ("paper_figures/fig_peers.py", "rennala"): "the papers'-S marker is labelled once, on Rennala's bar",
    ("paper_figures/paper_profile.py", "lgc"): "the profile's base run (the budget tau) and fig6 are LGC's",
}


def _literal_names(node) -> list:
    """The algorithm names a string constant or a tuple/list/set literal holds."""
    if isinstance(node, ast.Constant):
        return [node.value] if node.value in NAMES else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in NAMES]
    return []


def name_checks(tree):
    """(line, name) of every comparison with an algorithm's name (==, !=, in, not in a literal) and of
    every tuple/list/set literal that names two or more different algorithms (a property in disguise)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                yield from ((node.lineno, name) for name in _literal_names(side))
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(set(_literal_names(node))) >= 2:
            yield from ((node.lineno, name) for name in sorted(set(_literal_names(node))))


def test_name_checks_read_the_table():
    """`alg in ("fastest-k", "lgc")` or `alg == "lgc-fresh"` outside the table is a property of the
    table's entries (waits_for_k, waits_for_reports, round_end, ...) spelled as names: a new
    algorithm with that property would be silently left out. Read the property instead."""
    allowed = {"theory/algorithms.py", "lgc/rules.py"}  # the table, and one rule per entry
    found = []
    for pkg in ("theory", "lgc", "paper_figures"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed or (rel, "*") in NAME_CHECKS_ALLOWED:
                continue
            found += [f"{rel}:{line} {name!r}" for line, name in sorted(set(name_checks(ast.parse(path.read_text()))))
                      if (rel, name) not in NAME_CHECKS_ALLOWED]
    assert not found, f"algorithm names compared or grouped outside the table: {found}"


@pytest.mark.parametrize("src, hits", [
    ('ok = alg in ("fastest-k", "lgc")', {"fastest-k", "lgc"}),
    ('ok = cfg.algorithm == "lgc-fresh"', {"lgc-fresh"}),
    ('ok = "anytime-minibatch" != a', {"anytime-minibatch"}),
    ('for a in ["full-sync", "lgc"]: pass', {"full-sync", "lgc"}),
    ('pkgs = ("theory", "lgc"); default = "lgc"; methods = ("lgc", "lgc")', set()),
])
def test_the_name_check_scan_can_fail(src, hits):
    """One- and two-name checks are found; a lone name that is not compared, or a package called lgc, is not."""
    assert {name for _, name in name_checks(ast.parse(src))} == hits


def test_entries_answer_the_protocol_questions():
    full, fk, lgc, fresh, anytime = (algorithm(n) for n in ("full-sync", "fastest-k", "lgc", "lgc-fresh",
                                                            "anytime-minibatch"))
    # per entry, not a list of the table: a new entry must not have to edit this test
    assert fk.waits_for_k and lgc.waits_for_k and fresh.waits_for_k
    assert not full.waits_for_k and not anytime.waits_for_k
    assert fk.strong_bound and lgc.strong_bound and not fresh.strong_bound and not full.strong_bound
    assert anytime.counts_every_worker and not (full.counts_every_worker or fk.counts_every_worker or lgc.counts_every_worker)
    # eq. (2.5): fastest-k drops the stragglers' messages; lgc and anytime-minibatch count them
    assert fk.messages(3, 2) == 3 and lgc.messages(3, 2) == 5 and anytime.messages(3, 2) == 5
    assert full.groups == ("all",) and set(lgc.groups) == {"fast", "strag"} and anytime.groups == ("any",)
    assert fresh.waits_for_reports and not lgc.waits_for_reports
    assert not anytime.has_bound


def test_unknown_algorithm_names_the_valid_ones():
    with pytest.raises(TheoryInputError, match=r"algorithm='sgd' must be one of full-sync, fastest-k"):
        algorithm("sgd")


def test_peer_and_paper_figures_are_separate_facts():
    """Being an optimal-time peer and being left out of the paper's figures are two fields: an
    entry can be either without the other (each is read where it means what it says)."""
    import dataclasses

    from theory import peers

    lgc = algorithm("lgc")
    assert not dataclasses.replace(lgc, paper_figures=False).peer
    assert dataclasses.replace(lgc, peer=True).paper_figures
    assert peers.PEERS == tuple(a.name for a in ALGORITHMS if a.peer)


def test_a_new_entry_recolours_no_other():
    """Colours go by name: a new algorithm anywhere in the table (here first) leaves every other
    algorithm's colour as it was, and gets one that no named algorithm has."""
    from paper_figures import style

    before = style.algorithm_palette()
    after = style.algorithm_palette(("new-rule",) + NAMES)
    assert {n: after[n] for n in NAMES} == before
    assert after["new-rule"] not in before.values()
    assert len(set(before.values())) == len(NAMES)  # every algorithm its own colour
    assert style.algorithm_colour("new-rule") == after["new-rule"]  # stable: the same in every figure
