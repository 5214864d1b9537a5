"""The round protocol both backends share (`sim`: lgc.sim, `dist`: lgc.dist), one idea per module.

A round t of a run: the timing model or a replayed schedule file gives the schedule (A_t, every
m_j, R_t); the round plan says which workers' samples enter which gradient group with which
weights; lgc.rules aggregates and steps the server state; the round's record is its row of
rounds.csv.

  round_end   what ends a round: the timing model (make_timing), the round kind's parameter
              (round_parameter): anytime-minibatch's deadline (anytime_deadline), the block count S
              of rennala and malenia (peer_s)
  replay      a replayed schedule file, loaded and checked (load_replay, check_round_k)
  k_auto      K chosen online (`--k auto`): the controller, each round's K, refits.csv, final.json
  plan        the samples and weights of a round (round_plan; local_weight and group_norms: dist's two steps)
  state       RunState: the server state, also what a checkpoint holds
  record      rounds.csv (ROUND_FIELDS, its schema) and round_record; RUN_KIND of the run cache
  divergence  when a run stops because it diverged

The names below are the protocol's surface: callers import them from lgc.protocol.
"""
from lgc.protocol.divergence import DIVERGED, divergence_record, diverged
from lgc.protocol.k_auto import REFIT_FIELDS, deviation_norm2, k_auto_summary, k_controller, refit_rows, round_k
from lgc.protocol.plan import RoundPlan, group_norms, local_weight, plan_groups, round_plan
from lgc.protocol.record import ROUND_FIELDS, RUN_KIND, round_record
from lgc.protocol.replay import check_replayed_k, check_round_k, load_replay
from lgc.protocol.round_end import anytime_deadline, make_timing, peer_s, round_parameter
from lgc.protocol.state import RunState

__all__ = ["DIVERGED", "REFIT_FIELDS", "ROUND_FIELDS", "RUN_KIND", "RoundPlan", "RunState", "anytime_deadline",
           "check_replayed_k", "check_round_k", "deviation_norm2", "divergence_record", "diverged", "group_norms",
           "k_auto_summary", "k_controller", "load_replay", "local_weight", "make_timing", "peer_s", "plan_groups",
           "refit_rows", "round_k", "round_parameter", "round_plan", "round_record"]
