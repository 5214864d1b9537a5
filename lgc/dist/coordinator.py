"""Arrival-order coordination of one round through the rendezvous store.

The protocol in words: docs/DIST.md, "What a round does".

The fast set A_t is decided by real arrival order: a worker that finishes its M-th block
adds 1 to the round's arrival counter (TCPStore `add` is atomic), and the value it gets
back is its arrival position. Positions 1..K are A_t; the K-th finisher closes the round
by setting the round's `closed` key. A straggler looks at that key at each block boundary
and stops there (boundary semantics), so its m_j is decided by when the K-th worker really
finished, never recomputed from the seed.

Keys live under `lgc/<run>/` so several runs can share a store:
    r<t>/arrived     arrival counter of round t
    r<t>/closed      set by the K-th finisher
    alive/<rank>     "stamp started reported completed": a worker's keep-alive stamp, the
                     round it started, the round it reported, the rounds completed (rank 0);
                     the launcher's watchdog reads them to name a missing worker
    error/<rank>     a worker's one-line error message

The store has no authentication: every value read from it is checked (an arrival position in
1..N, a status in range; the round's reports by lgc.dist.worker: |A_t| = K, positions distinct,
m_j in 0..M), and a value this protocol cannot have written stops the run (StoreInconsistent).
"""
from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import Sequence

from torch.distributed import TCPStore

from lgc.errors import UserError


KEEPALIVE_EVERY_S = 0.25  # how often a worker publishes its status
STALE_S = 2.0  # a status older than this: the worker is frozen


class StoreInconsistent(UserError):
    """The rendezvous store holds a value the round protocol cannot have written."""

    def __init__(self, what: str):
        super().__init__(f"the rendezvous store is inconsistent: {what}; another client may have written to it "
                         f"(the store has no authentication: see the README's trust model); run stopped")


class RoundCoordinator:
    """One worker's view of the store-based round protocol."""

    def __init__(self, store, rank: int, world_size: int, *, prefix: str = "lgc"):
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.prefix = prefix
        self.status = [-1, -1, -1]  # round started, round reported, rounds completed

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    # -- the round protocol ------------------------------------------------------------
    def arrive(self, round_index: int, k: int) -> int:
        """Report that this worker finished all M blocks; returns its arrival position (1-based).

        The K-th arrival closes the round; later arrivals are stragglers (their m_j is M-1).
        """
        pos = int(self.store.add(self._key(f"r{round_index}/arrived"), 1))
        if not 1 <= pos <= self.world_size:  # each of at most N workers adds 1 once per round
            raise StoreInconsistent(f"round {round_index}: arrival position {pos}, expected 1..{self.world_size}")
        if pos == k:
            self.store.set(self._key(f"r{round_index}/closed"), str(self.rank))
        return pos

    def closed(self, round_index: int) -> bool:
        """Has the K-th worker of this round arrived? (one round trip to the store)."""
        return bool(self.store.check([self._key(f"r{round_index}/closed")]))

    def wait_closed(self, round_index: int, seconds: float, poll_s: float = 0.002) -> bool:
        """Sleep up to `seconds`, waking within `poll_s` when the round closes; True if it closed.

        Polls instead of TCPStore.wait with a timeout: a timed-out wait leaves the server's late
        reply on the connection, which the next request would read."""
        deadline = time.perf_counter() + seconds
        while True:
            if self.closed(round_index):
                return True
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            time.sleep(min(poll_s, left))

    def forget(self, round_index: int) -> None:
        """Drop a finished round's keys (rank 0, two rounds later) so the store stays small."""
        for name in (f"r{round_index}/arrived", f"r{round_index}/closed"):
            try:
                self.store.delete_key(self._key(name))
            except Exception:  # pragma: no cover - best effort
                pass

    # -- liveness and errors ------------------------------------------------------------
    # Kept in memory and published by a keep-alive thread (start_keepalive), so the round's
    # critical path makes no store round trip for them.
    def heartbeat(self, round_index: int) -> None:
        """This worker started round `round_index`."""
        self.status[0] = round_index

    def reported(self, round_index: int) -> None:
        """This worker's report of the round is in (the launcher names workers that are not)."""
        self.status[1] = round_index

    def set_progress(self, round_index: int) -> None:
        """Rounds completed (rank 0; the launcher's watchdog reads it)."""
        self.status[2] = round_index

    def start_keepalive(self, host: str, port: int, every_s: float = KEEPALIVE_EVERY_S) -> None:
        """Publish `alive/<rank>` = "stamp hb rep progress" every `every_s` from a daemon thread
        with its own store connection. A frozen process (stopped, swapped out, its machine
        gone) stops stamping; one blocked in a collective keeps stamping."""
        key = self._key(f"alive/{self.rank}")

        def loop():
            try:
                store = TCPStore(host, port, world_size=None, is_master=False, timeout=timedelta(seconds=10))
                while True:
                    hb, rep, prog = self.status
                    store.set(key, f"{time.time()!r} {hb} {rep} {prog}")
                    time.sleep(every_s)
            except Exception:  # the store is gone: the run is over
                return

        threading.Thread(target=loop, name=f"lgc-keepalive-{self.rank}", daemon=True).start()

    def report_error(self, message: str) -> None:
        try:
            self.store.set(self._key(f"error/{self.rank}"), message)
        except Exception:  # pragma: no cover - the store itself may be gone
            pass


def read_status(store, world_size: int, prefix: str = "lgc",
                rounds: int | None = None) -> list[tuple[float, int, int, int]]:
    """Per worker (stamp, round started, round reported, rounds completed); -1 where unknown.
    With `rounds`, a status that is not "stamp hb rep progress" with rounds in -1..rounds and a
    finite stamp raises StoreInconsistent."""
    out = []
    for r in range(world_size):
        key = f"{prefix}/alive/{r}"
        try:
            raw = store.get(key) if store.check([key]) else None
        except Exception:  # the store is going away with the run
            raw = None
        if raw is None:
            out.append((-1.0, -1, -1, -1))
            continue
        try:
            stamp, hb, rep, prog = raw.decode().split()
            st = (float(stamp), int(hb), int(rep), int(prog))
        except (ValueError, UnicodeDecodeError):
            st = None
        if rounds is not None and (st is None or not math.isfinite(st[0])
                                   or not all(-1 <= v <= rounds for v in st[1:])):
            raise StoreInconsistent(f"worker status {key} = {raw[:40]!r}, expected a time stamp and rounds in "
                                    f"-1..{rounds}")
        out.append(st if st is not None else (-1.0, -1, -1, -1))
    return out


def suspects(status, now: float, stale_s: float = STALE_S) -> list[int]:
    """The workers a stuck round waits for: frozen ones (stale stamp) first, else the ones that
    have not reported the round the most advanced worker is in."""
    frozen = [r for r, st in enumerate(status) if st[0] > 0 and now - st[0] > stale_s]
    if frozen:
        return frozen
    top = max(st[1] for st in status)
    return [r for r, st in enumerate(status) if st[1] < top or st[2] < top]


def read_int(store, key: str, default: int = -1) -> int:
    """An integer key of the store, or `default` when it is not set."""
    try:
        if not store.check([key]):
            return default
        return int(store.get(key).decode())
    except Exception:
        return default


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
