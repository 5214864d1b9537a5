"""Rennala SGD and Malenia SGD in the sim backend: equality with an explicit per-worker loop on the
quadratics, the reductions to full-sync, table membership and the user errors."""
import numpy as np
import pytest

from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.protocol import peer_s, plan_groups
from theory.algorithms import NAMES, algorithm
from lgc.sim import Simulator

BASE = dict(dataset="quadratic", n_workers=4, batch_size=4, blocks=2, rounds=6, warmup_rounds=0, lr=0.3,
            momentum=0.0, threshold_k=2, quad_dim=3, quad_sigma2=0.5, eval_every=0, checkpoint_every=0, device="cpu", seed=3)


def explicit_run(cfg: TrainConfig, sim: Simulator, w0: np.ndarray):
    """Each worker's clock block by block; the server takes blocks in time order (ties: worker
    index) until the algorithm's condition holds; gradients H (w - c_i) + xi sample by sample."""
    p = sim.task.problem
    n, m, b, s = cfg.n_workers, cfg.blocks, cfg.block_size, sim.round_param
    w = w0.copy()
    clock = 0.0
    for t in range(cfg.rounds):
        finish = sim.timing.block_finish_times(cfg.seed, t, n, m, period=cfg.straggling_period)
        dur = np.diff(np.concatenate([np.zeros((n, 1)), finish], axis=1), axis=1)
        events = []
        for i in range(n):
            c = 0.0
            for q in range(4 * s + 4):
                c += dur[i, q % m]
                events.append((c, i))
        events.sort()
        counts = [0] * n
        for when, i in events:
            counts[i] += 1
            if cfg.algorithm == "rennala" and sum(counts) == s:
                break
            if cfg.algorithm == "malenia" and min(counts) >= 1 and sum(1 / c for c in counts) <= n * n / s + 1e-12:
                break
        clock += when
        d = np.zeros_like(w)
        for i in range(n):
            xi = p.noise(cfg.seed, t, i, max(cfg.batch_size, counts[i] * b))[: counts[i] * b].astype(np.float64)
            g = p.h * (w - p.c[i]) + xi  # per-sample gradients (counts_i b, d)
            if cfg.algorithm == "rennala":
                d += g.sum(axis=0) / (s * b)
            else:
                d += p.pi[i] * g.mean(axis=0)
        w = w - cfg.lr * d
    return w, clock


@pytest.mark.parametrize("algorithm,timing,params,s", [
    ("rennala", "shifted-exp", {}, 5),
    ("rennala", "deterministic", {"times": [1.0, 2.5, 1.3, 4.0]}, 7),
    ("malenia", "shifted-exp", {}, 6),
    ("malenia", "heterogeneous", {"slowdown": 4.0, "slow_fraction": 0.25}, 9),
])
def test_equals_explicit_per_worker_loop(algorithm, timing, params, s):
    cfg = TrainConfig(**BASE, algorithm=algorithm, timing=timing, timing_params=params, peer_s=s)
    sim = Simulator(cfg)
    w0 = sim.w.double().numpy().copy()
    for _ in range(cfg.rounds):
        sim.step()
    w, clock = explicit_run(cfg.resolved(), sim, w0)
    assert np.allclose(sim.w.double().numpy(), w, rtol=1e-5, atol=1e-6)
    assert sim.clock == pytest.approx(clock)
    assert all(r["partial_blocks"] == (s if algorithm == "rennala" else r["partial_blocks"]) for r in sim.rows)


PEERS = ("rennala", "malenia")


@pytest.mark.parametrize("algorithm", PEERS)
def test_reduces_to_full_sync(algorithm):
    """Equal fixed speeds, M = 1, S = N: every worker's one mini-batch, as full-sync (eq. 3.1)."""
    kw = {**BASE, "blocks": 1, "timing": "deterministic", "timing_params": {"slow_fraction": 0.0}}
    ref = Simulator(TrainConfig(**kw, algorithm="full-sync"))
    peer = Simulator(TrainConfig(**kw, algorithm=algorithm, peer_s=kw["n_workers"]))
    for _ in range(kw["rounds"]):
        a, b = ref.step(), peer.step()
        assert a["round_time"] == b["round_time"] and a["samples"] == b["samples"]
    assert np.allclose(ref.w.numpy(), peer.w.numpy(), rtol=1e-6, atol=1e-7)


def test_table_membership_and_groups():
    for alg in PEERS:
        assert alg in NAMES and algorithm(alg).round_end == "blocks" and not algorithm(alg).has_bound
    assert plan_groups("rennala", warmup=False) == ("any",)
    assert plan_groups("malenia", warmup=False) == ("all",)


def test_default_s_from_the_papers_formula():
    cfg = TrainConfig(**BASE, algorithm="rennala", target_eps=0.05).resolved()
    assert peer_s(cfg) == int(np.ceil(0.5 / 2 / 0.05))  # sigma^2 / b / eps, b = 2
    cfg = TrainConfig(**BASE, algorithm="malenia", target_eps=1.0).resolved()
    assert peer_s(cfg) == 4  # at least N
    assert peer_s(TrainConfig(**BASE, algorithm="lgc").resolved()) is None
    assert peer_s(TrainConfig(algorithm="rennala", n_workers=6, blocks=5).resolved()) == 30  # no sigma^2: N*M


def test_user_errors():
    with pytest.raises(UserError, match="peer_s S=0"):
        TrainConfig(**BASE, algorithm="malenia", peer_s=0).validate()
    from lgc.dist.run import run_dist

    with pytest.raises(UserError, match="sim backend only"):
        run_dist(TrainConfig(**BASE, algorithm="rennala", peer_s=3))


def test_malenia_with_size_weights_waits_until_the_weighted_variance_is_small():
    """--worker-weights size (Dirichlet sizes): every round's counts satisfy sum_i pi_i^2/B_i <= 1/S (eq. 6.3'),
    the condition that bounds the step's variance by sigma_b^2/S, where the paper's pi = 1/N rule
    alone does not (it stops earlier in some round)."""
    from theory.peers import malenia_schedule

    cfg = TrainConfig(dataset="synthetic", model="softmax", partition="dirichlet", dirichlet_alpha=0.3,
                      worker_weights="size", n_workers=5, threshold_k=3, batch_size=4, blocks=2, rounds=8,
                      warmup_rounds=0,
                      algorithm="malenia", peer_s=10, synthetic_train=1500, synthetic_test=50, eval_every=0,
                      checkpoint_every=0, device="cpu", seed=1)
    sim = Simulator(cfg)
    pi = sim.task.pi
    assert pi.max() > 1.5 / cfg.n_workers  # the sizes differ
    earlier = 0
    for t in range(cfg.rounds):
        sim.step()
        blocks = np.array(sim.schedules[-1].blocks_done)
        assert np.sum(pi**2 / blocks) <= 1 / 10 * (1 + 1e-12)
        finish = sim.timing.block_finish_times(cfg.seed, t, cfg.n_workers, cfg.blocks, period=cfg.straggling_period)
        earlier += malenia_schedule(finish, 10).wall < sim.schedules[-1].wall
    assert earlier >= 1
