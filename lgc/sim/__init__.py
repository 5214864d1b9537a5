"""The `sim` backend: N workers on one device and a virtual clock.

    sim = Simulator(TrainConfig(...)); row = sim.step()    # in-memory, for tests and scripts
    run_dir = train(TrainConfig(...))                        # run directory, cache, checkpoints
    run_dir = train(config, task=lgc.Task(...), rule=...)    # a user's task and rule (lgc.simulate wraps it)

Modules: simulator (one round: schedule, plan, gradients, rule, clock), engines (the gradient
engine interface and the two-pass BatchedEngine), fused (the one-pass FusedEngine and compiled
engines), training (the run directory loop).
"""
from lgc.sim.simulator import Simulator, resolve_device
from lgc.sim.training import train

__all__ = ["Simulator", "resolve_device", "train"]
