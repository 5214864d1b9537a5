"""The sim backend against an explicit per-worker loop written here, independently.

The loop below never calls lgc.sim / lgc.sim.engines / lgc.rules: it computes every worker's
g_i and every straggler's gp_j by its own backward and combines them by theory/DERIVATION.md
section 3, with heavy-ball SGD written out. Only the per-worker pure functions (data,
partition, model constructor, sampling) are shared.
"""
import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from lgc.config import TrainConfig
from lgc.data.synthetic import make_classification
from lgc.models import make_model
from lgc.partition import make_partition
from lgc.sampling import augment, augment_params, batch_indices
from lgc.sim import Simulator
from theory.algorithms import NAMES
from theory.algorithms import algorithm as algorithm_entry
from theory.schedule import RoundSchedule, schedule_to_csv

N, K, B, M = 5, 2, 6, 3
b = B // M
T = 6


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
# rounds after warm-up: stragglers that finished 0, some and M-1 blocks, in varying places
PATTERNS = [
    ((3, 0), (3, 0, 1, 3, 2)),
    ((1, 4), (2, 3, 0, 1, 3)),
    ((2, 3), (0, 0, 3, 3, 0)),  # no straggler reports: rho = 0, u = 0
    ((0, 1), (3, 3, 2, 2, 2)),
]
# every table entry (theory/algorithms.py) whose rounds a schedule file replays; the peers' rounds
# (round_end "blocks") have their own independent event loop in tests/test_peers.py
REPLAYED = tuple(n for n in NAMES if algorithm_entry(n).round_end != "blocks")
ANYTIME = [(0, 1, 2, 3, 3), (3, 0, 0, 1, 2), (0, 0, 0, 0, 0), (1, 3, 2, 2, 3)]


def _schedule(algorithm, warmup):
    rows = []
    for t in range(T):
        if t < warmup:
            rows.append(RoundSchedule(t, tuple(range(N)), (M,) * N, 1.0, 2.0))
        elif algorithm_entry(algorithm).round_end == "deadline":
            blocks = ANYTIME[(t - warmup) % len(ANYTIME)]
            rows.append(RoundSchedule(t, tuple(i for i in range(N) if blocks[i] == M), blocks, 1.0, 1.0))
        else:
            fast, blocks = PATTERNS[(t - warmup) % len(PATTERNS)]
            rows.append(RoundSchedule(t, fast, blocks, 1.0, 1.5))
    return rows


def _config(tmp_path, algorithm, model="cnn", **kw):
    warmup = kw.pop("warmup_rounds", 1)
    path = tmp_path / f"schedule_{algorithm}.csv"
    path.write_text(schedule_to_csv(_schedule(algorithm, warmup)))
    base = dict(algorithm=algorithm, n_workers=N, threshold_k=K, batch_size=B, blocks=M, rounds=T,
                warmup_rounds=warmup, lr=0.1, momentum=0.9, weight_decay=1e-3, dataset="synthetic",
                synthetic_train=400, synthetic_test=50, model=model, width=4, partition="main-label",
                classes_per_worker=3, samples_per_worker=40, augment=True, seed=3, eval_every=0,
                schedule_file=str(path), device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def explicit_loop(cfg: TrainConfig, schedule):
    """theory/DERIVATION.md section 3, worker by worker."""
    ds = make_classification(cfg.task.synthetic_train, cfg.task.synthetic_test, signal=cfg.task.synthetic_signal,
                             in_shape=(3, cfg.task.synthetic_side, cfg.task.synthetic_side), seed=cfg.seed)
    parts = make_partition("main-label", ds.y_train.numpy(), N, seed=cfg.seed, classes_per_worker=3,
                           samples_per_worker=40, main_share=0.8)
    torch.manual_seed(cfg.seed)
    model = make_model(cfg.task.model, 10, ds.in_shape, width=cfg.task.width, norm=cfg.task.norm)
    params = list(model.parameters())
    pi = np.full(N, 1.0 / N)

    def mean_grad(x, y):
        if cfg.task.norm == "batch":  # a worker runs its blocks one by one: batch statistics per block
            losses = [torch.nn.functional.cross_entropy(model(x[k:k + b]), y[k:k + b]) for k in range(0, len(y), b)]
            loss = sum(losses) / len(losses)
        else:
            loss = torch.nn.functional.cross_entropy(model(x), y)  # mean over the samples
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    w = parameters_to_vector(params).detach().clone()
    v = torch.zeros_like(w)
    u_prev = torch.zeros_like(w)
    for t in range(cfg.rounds):
        s = schedule[t]
        warm = t < cfg.warmup_rounds
        g, gp = {}, {}
        for i in range(N):  # one worker at a time
            idx = batch_indices(cfg.seed, t, i, parts[i], B)
            x = augment(ds.x_train[idx], augment_params(cfg.seed, t, i, B))
            y = ds.y_train[idx]
            g[i] = mean_grad(x, y)
            m = s.blocks_done[i]
            if 0 < m:
                gp[i] = mean_grad(x[: m * b], y[: m * b])
        fast = set(s.fast)
        strag = [j for j in range(N) if j not in fast and s.blocks_done[j] >= 1]
        if warm or cfg.algorithm == "full-sync":
            d = sum(pi[i] * g[i] for i in range(N))
            u_prev = torch.zeros_like(w)
        elif cfg.algorithm == "anytime-minibatch":
            total = sum(s.blocks_done)
            d = sum(s.blocks_done[i] / total * gp[i] for i in range(N) if s.blocks_done[i] > 0) if total else torch.zeros_like(w)
        else:
            pa = sum(pi[i] for i in fast)
            gA = sum(pi[i] / pa * g[i] for i in fast)
            rho = sum(pi[j] for j in strag)
            gS = sum(pi[j] / rho * gp[j] for j in strag) if strag else None
            if cfg.algorithm == "fastest-k":
                d = gA
            elif cfg.algorithm == "lgc-fresh":
                d = gA if gS is None else (1 - rho) * gA + rho * gS
            elif cfg.algorithm == "lgc":  # d_t = gA_t + u_{t-1}; u_t = rho_t (gS_t - gA_t)
                d = gA + u_prev
                u_prev = torch.zeros_like(w) if gS is None else rho * (gS - gA)
            else:
                pytest.fail(f"a new algorithm {cfg.algorithm!r}: write its rule here, independently of lgc.rules")
        v = cfg.momentum * v + d + cfg.weight_decay * w
        w = w - cfg.lr * v
        with torch.no_grad():
            vector_to_parameters(w, params)
    return w


@pytest.mark.parametrize("algorithm", REPLAYED)
def test_batched_rounds_equal_the_explicit_per_worker_loop(tmp_path, algorithm):
    cfg = _config(tmp_path, algorithm)
    sim = Simulator(cfg)
    w0 = sim.w.clone()
    for _ in range(T):
        sim.step()
    expected = explicit_loop(cfg, _schedule(algorithm, cfg.warmup_rounds))
    torch.testing.assert_close(sim.w, expected, rtol=1e-5, atol=1e-6)
    assert (expected - w0).abs().max() > 1e-3  # the runs moved: the comparison is not vacuous


def test_block_batch_norm_matches_workers_that_run_blocks_one_by_one(tmp_path):
    # Batch statistics over blocks of b = 2 samples amplify float32 rounding: 16 x 16 images (not
    # 1 x 1 maps at 8 x 8) and 4 rounds (warm-up, then stragglers with 0, 1, 2 and 3 blocks) keep
    # the two summation orders within rtol 1e-5 (float64 agrees to 1e-11 even where float32 does not)
    cfg = _config(tmp_path, "lgc", model="resnet18", width=2, norm="batch", synthetic_side=16, lr=0.02, rounds=4)
    sim = Simulator(cfg)
    for _ in range(cfg.rounds):
        sim.step()
    torch.testing.assert_close(sim.w, explicit_loop(cfg, _schedule("lgc", cfg.warmup_rounds)), rtol=1e-5, atol=1e-5)


def test_schedule_and_clock_come_from_the_timing_model():
    from theory.schedule import schedule_round
    from theory.timing_factory import make_timing_model

    cfg = TrainConfig(algorithm="lgc", n_workers=6, threshold_k=4, batch_size=10, blocks=5, rounds=7, lr=0.1,
                      dataset="quadratic", timing="shifted-exp", timing_params={"rate": 0.5},
                      straggling_period=3, seed=5, comm_alpha=0.1, comm_beta=1e-3, device="cpu")
    sim = Simulator(cfg)
    rows = [sim.step() for _ in range(7)]
    model = make_timing_model("shifted-exp", rate=0.5)
    n_bytes = 4 * cfg.task.quad_dim
    for t, (row, s) in enumerate(zip(rows, sim.schedules)):
        k = 6 if t < cfg.warmup_rounds else 4
        ref = schedule_round(model.block_finish_times(5, t, 6, 5, period=3), k, round_index=t)
        assert (s.fast, s.blocks_done, s.t_cut) == (ref.fast, ref.blocks_done, ref.t_cut)
        reporting = sum(1 for j in range(6) if j not in ref.fast and ref.blocks_done[j] > 0)
        messages = 6 if t < cfg.warmup_rounds else 4 + reporting  # lgc: K full + the partial reports
        assert row["round_time"] == pytest.approx(ref.wall + 0.1 + 1e-3 * n_bytes * messages)
    assert sim.schedules[3].fast == sim.schedules[5].fast  # h = 3: times held within a period
    assert rows[-1]["time"] == pytest.approx(sum(r["round_time"] for r in rows))


def test_stragglers_partial_work_enters_lgc(tmp_path):
    """The schedule's m_j are what the batched pass used: rho and sample counts per round."""
    cfg = _config(tmp_path, "lgc", model="mlp")
    sim = Simulator(cfg)
    rows = [sim.step() for _ in range(T)]
    assert rows[1]["rho"] == pytest.approx(0.4) and rows[1]["samples"] == K * B + (1 + 2) * b
    assert rows[1]["partial_blocks"] == 3 and rows[1]["n_fast"] == K
    assert rows[3]["rho"] == 0.0 and rows[3]["samples"] == K * B  # no straggler reported
    assert rows[0]["warmup"] == 1 and rows[0]["samples"] == N * B


@pytest.mark.parametrize("n_workers", [4, 10])
def test_lgc_at_k_equal_n_is_bit_identical_to_full_sync(n_workers):
    common = dict(n_workers=n_workers, threshold_k=n_workers, batch_size=10, blocks=5, rounds=8, lr=0.2,
                  momentum=0.5, dataset="synthetic", synthetic_train=1000, synthetic_test=50, model="mlp",
                  width=16, partition="main-label", samples_per_worker=50, seed=1, eval_every=0, device="cpu")
    a, f = Simulator(TrainConfig(algorithm="lgc", **common)), Simulator(TrainConfig(algorithm="full-sync", **common))
    for _ in range(8):
        ra, rf = a.step(), f.step()
        assert ra["time"] == rf["time"]
    assert torch.equal(a.w, f.w)
    assert not torch.equal(a.w, Simulator(TrainConfig(algorithm="lgc", **common)).w)  # it trained


def _quadratic(algorithm, h, seed=0, rounds=300):
    cfg = TrainConfig(algorithm=algorithm, dataset="quadratic", n_workers=10, threshold_k=7, batch_size=10,
                      blocks=5, rounds=rounds, lr=0.2, quad_dim=10, quad_h_min=0.5, quad_h_max=1.0,
                      quad_spread=1.0, quad_sigma2=0.5, straggling_period=h, seed=seed, data_seed=0,
                      eval_every=0, device="cpu")
    sim = Simulator(cfg)
    iterates = []
    for _ in range(rounds):
        sim.step()
        iterates.append(sim.w.double().numpy())
    opt = sim.task.problem.cbar
    mean_iterate = np.mean(iterates[rounds // 2:], axis=0)
    return float(np.linalg.norm(mean_iterate - opt))


def test_persistent_slow_set_biases_fastest_k_and_lgc_corrects_it():
    persistent = 10_000  # h > T: the drawn times, hence A_t, hold for the whole run
    dist = {a: _quadratic(a, persistent) for a in ("full-sync", "fastest-k", "lgc")}
    print("distance of the mean iterate to the optimum (persistent slow set):", dist)
    assert dist["fastest-k"] > 0.3  # settles at the fast workers' optimum
    assert dist["lgc"] < 0.25 * dist["fastest-k"]
    assert dist["full-sync"] < 0.25 * dist["fastest-k"]


def test_fastest_k_is_unbiased_with_fresh_iid_times():
    biased = _quadratic("fastest-k", 10_000)
    fresh = _quadratic("fastest-k", 1, rounds=600)
    print("fastest-k mean-iterate distance: persistent", biased, "h=1", fresh)
    assert fresh < 0.25 * biased


def test_channels_last_layout_gives_the_same_run(tmp_path):
    """The CUDA path keeps the model and inputs channels_last; parameters are flattened in
    logical order either way (checked here on the CPU)."""
    cfg = _config(tmp_path, "lgc", model="cnn", synthetic_side=16)
    plain, cl = Simulator(cfg), Simulator(cfg)
    cl.model.to(memory_format=torch.channels_last)
    cl.task.channels_last = True
    assert any(p.dim() == 4 and not p.is_contiguous() for p in cl.params)
    for _ in range(cfg.rounds):
        plain.step(), cl.step()
    torch.testing.assert_close(cl.w, plain.w, rtol=1e-5, atol=1e-6)


def test_size_weights_and_the_default_anytime_deadline():
    cfg = TrainConfig(algorithm="anytime-minibatch", n_workers=5, threshold_k=3, batch_size=10, blocks=5, rounds=3,
                      model="softmax", synthetic_train=1000, synthetic_test=50, partition="dirichlet",
                      dirichlet_alpha=0.5, min_size=20, worker_weights="size", device="cpu")
    sim = Simulator(cfg)
    sizes = np.array([len(p) for p in sim.task.parts])
    np.testing.assert_allclose(sim.task.pi, sizes / sizes.sum())
    assert len(set(sizes.tolist())) > 1
    # E[X_(3:5)] of the default shifted exponential: 1 + 1/5 + 1/4 + 1/3
    assert sim.round_param == pytest.approx(1 + 1 / 5 + 1 / 4 + 1 / 3)
    rows = [sim.step() for _ in range(3)]
    assert rows[2]["round_time"] == pytest.approx(sim.round_param)  # after warm-up: the deadline
    assert rows[2]["samples"] == rows[2]["partial_blocks"] * 2  # every finished block of b = 2 samples counts


def test_eval_subset_evaluates_the_first_samples_during_training_and_all_at_the_end():
    """eval_subset: evaluations before the last use the first n test samples; the last uses all."""
    common = dict(algorithm="lgc", n_workers=4, threshold_k=2, batch_size=10, blocks=5, rounds=4, eval_every=2,
                  dataset="synthetic", synthetic_train=800, synthetic_test=50, model="mlp", width=4,
                  partition="iid", samples_per_worker=100, device="cpu")
    sub, full = Simulator(TrainConfig(eval_subset=7, **common)), Simulator(TrainConfig(**common))
    for t in range(4):
        a, b = sub.step(), full.step()
        assert torch.equal(sub.w, full.w)  # evaluation does not touch training
        if t == 1:  # during training: the first 7 test samples only
            with torch.no_grad():
                out = full.model(full.task._prepare(full.task.ds.x_test[:7]))
            assert a["test_acc"] == pytest.approx(float((out.argmax(1) == full.task.ds.y_test[:7]).float().mean()))
            assert b["test_acc"] * 50 == pytest.approx(round(b["test_acc"] * 50))
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]  # the last: the whole test set
