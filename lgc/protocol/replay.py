"""A replayed schedule file: loaded for a run and checked against its N, M and K (the same in both backends)."""
from __future__ import annotations

from typing import Optional, Sequence

from lgc.config import TrainConfig
from lgc.errors import UserError, check
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import TheoryInputError
from theory.schedule import RoundSchedule, check_schedule, load_schedule


def check_replayed_k(cfg, by_round) -> None:
    """A replayed schedule's |A_t| must be the run's K after warm-up (fastest-k, lgc, lgc-fresh),
    else config.json would record a K the run did not use. With --k auto, K is known only as the
    run goes: check_round_k checks each round then."""
    if not algorithm_entry(cfg.algorithm).waits_for_k or cfg.k_auto:
        return
    for t in range(cfg.warmup_rounds, cfg.rounds):
        k = len(by_round[t].fast)
        check(k == cfg.threshold_k, f"schedule round {t} has K={k} fast workers, run has K={cfg.threshold_k}")


def load_replay(cfg: TrainConfig, schedule: Optional[Sequence[RoundSchedule]] = None) -> Optional[list]:
    """The replayed schedule of a run, one RoundSchedule per round 0..rounds-1 (list index = t):
    `schedule`, else cfg.schedule_file, else None (the timing model decides). Every round is
    checked against N and M (except anytime-minibatch rounds after warm-up, whose A_t and m_j
    come from the deadline), and |A_t| against K (check_replayed_k). UserError, one line, if not."""
    try:
        if schedule is None and cfg.schedule_file:
            schedule = load_schedule(cfg.schedule_file)
        if schedule is None:
            return None
        by_round = {s.round: s for s in schedule}
        check(all(t in by_round for t in range(cfg.rounds)),
              f"replayed schedule lacks rounds (has {len(by_round)}, run needs 0..{cfg.rounds - 1})")
        check_replayed_k(cfg, by_round)
        for t in range(cfg.rounds):
            if not algorithm_entry(cfg.algorithm).counts_every_worker or t < cfg.warmup_rounds:
                check_schedule(by_round[t], cfg.n_workers, cfg.blocks)
    except TheoryInputError as e:
        raise UserError(str(e)) from None
    return [by_round[t] for t in range(cfg.rounds)]


def check_round_k(schedule: RoundSchedule, k: int) -> None:
    """A replayed round under --k auto must have |A_t| = the K the controller chose for it."""
    check(len(schedule.fast) == k, f"schedule round {schedule.round} has K={len(schedule.fast)} fast workers, "
                                   f"--k auto chose K={k} (replay a schedule recorded with the same settings)")
