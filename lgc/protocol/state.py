"""The server state of a run: what every backend steps and what a checkpoint holds."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lgc.rules import RuleState, ServerState


@dataclass
class RunState:
    """The server state of a run (every dist rank holds a replica): w_t, the momentum buffer,
    LGC's u_{t-1}, the next round and the clock [time units]. A checkpoint holds it (checkpoint()),
    with whatever a backend adds (sim: model buffers, rows, RNG; dist: dead workers)."""

    w: torch.Tensor
    server: ServerState = field(default_factory=ServerState)
    rule: RuleState = field(default_factory=RuleState)
    round: int = 0
    clock: float = 0.0

    def checkpoint(self) -> dict:
        """Tensors on the CPU, copied (the run goes on changing its own)."""
        def cpu(v):
            return None if v is None else v.detach().cpu().clone()

        return {"round": self.round, "clock": self.clock, "w": cpu(self.w), "momentum": cpu(self.server.momentum),
                "u": cpu(self.rule.u)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device) -> "RunState":
        def dev(v):
            return None if v is None else v.to(device)

        return cls(w=ckpt["w"].to(device), server=ServerState(momentum=dev(ckpt.get("momentum"))),
                   rule=RuleState(u=dev(ckpt.get("u"))), round=int(ckpt["round"]), clock=float(ckpt["clock"]))
