"""Arrival-order coordination of one round through the rendezvous store (SPEC section 2).

The fast set A_t is decided by real arrival order: a worker that finishes its M-th block
adds 1 to the round's arrival counter (TCPStore `add` is atomic), and the value it gets
back is its arrival position. Positions 1..K are A_t; the K-th finisher closes the round
by setting the round's `closed` key. A straggler looks at that key at each block boundary
and stops there (boundary semantics), so its m_j is decided by when the K-th worker really
finished, never recomputed from the seed.

Keys live under `lgc/<run>/` so several runs can share a store:
    r<t>/arrived     arrival counter of round t
    r<t>/closed      set by the K-th finisher
    hb/<rank>        the last round a worker started (for messages naming a missing worker)
    rep/<rank>       the last round a worker finished its blocks and reported
    progress         the last round rank 0 completed (the launcher's watchdog reads it)
    error/<rank>     a worker's one-line error message
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Sequence


class RoundCoordinator:
    """One worker's view of the store-based round protocol."""

    def __init__(self, store, rank: int, world_size: int, *, prefix: str = "lgc"):
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    # -- the round protocol ------------------------------------------------------------
    def arrive(self, round_index: int, k: int) -> int:
        """Report that this worker finished all M blocks; returns its arrival position (1-based).

        The K-th arrival closes the round; later arrivals are stragglers (their m_j is M-1).
        """
        pos = int(self.store.add(self._key(f"r{round_index}/arrived"), 1))
        if pos == k:
            self.store.set(self._key(f"r{round_index}/closed"), str(self.rank))
        return pos

    def closed(self, round_index: int) -> bool:
        """Has the K-th worker of this round arrived? (one round trip to the store)."""
        return bool(self.store.check([self._key(f"r{round_index}/closed")]))

    def wait_closed(self, round_index: int, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when the round closes; True if it closed."""
        if seconds <= 0:
            return self.closed(round_index)
        try:
            self.store.wait([self._key(f"r{round_index}/closed")], timedelta(seconds=seconds))
            return True
        except Exception:  # the store raises on timeout (DistStoreError in torch >= 2.2)
            return False

    def forget(self, round_index: int) -> None:
        """Drop a finished round's keys (rank 0, two rounds later) so the store stays small."""
        for name in (f"r{round_index}/arrived", f"r{round_index}/closed"):
            try:
                self.store.delete_key(self._key(name))
            except Exception:  # pragma: no cover - best effort
                pass

    # -- liveness and errors -----------------------------------------------------------
    def heartbeat(self, round_index: int) -> None:
        self.store.set(self._key(f"hb/{self.rank}"), str(round_index))

    def reported(self, round_index: int) -> None:
        """This worker's report of the round is in (the launcher names workers that are not)."""
        self.store.set(self._key(f"rep/{self.rank}"), str(round_index))

    def set_progress(self, round_index: int) -> None:
        self.store.set(self._key("progress"), str(round_index))

    def report_error(self, message: str) -> None:
        try:
            self.store.set(self._key(f"error/{self.rank}"), message)
        except Exception:  # pragma: no cover - the store itself may be gone
            pass


def read_int(store, key: str, default: int = -1) -> int:
    """An integer key of the store, or `default` when it is not set."""
    try:
        if not store.check([key]):
            return default
        return int(store.get(key).decode())
    except Exception:
        return default


def heartbeats(store, world_size: int, prefix: str = "lgc") -> list[int]:
    """The last round each worker started (-1: never started)."""
    return [read_int(store, f"{prefix}/hb/{r}") for r in range(world_size)]


def lagging_workers(store, world_size: int, prefix: str = "lgc") -> list[int]:
    """Workers whose heartbeat is behind the most advanced one: the ones a round waits for."""
    hb = heartbeats(store, world_size, prefix)
    top = max(hb) if hb else -1
    return [r for r, h in enumerate(hb) if h < top]


def read_errors(store, ranks: Sequence[int], prefix: str = "lgc") -> dict[int, str]:
    out = {}
    for r in ranks:
        key = f"{prefix}/error/{r}"
        try:
            if store.check([key]):
                out[r] = store.get(key).decode()
        except Exception:
            pass
    return out


def sleep_until(deadline: float) -> None:
    """Sleep until time.perf_counter() reaches `deadline` (no spinning: cores are shared)."""
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left)
