"""User errors: one line that names the bad value, exit status 2 (README "Targets and guarantees")."""


class UserError(Exception):
    """A mistake in the user's input. The CLI prints `lgc: error: <message>` and exits 2."""


def check(condition: bool, message: str) -> None:
    """Raise UserError(message) unless condition holds."""
    if not condition:
        raise UserError(message)


# Under torchrun every rank checks the same flags and only rank 0 prints the one line. torchrun stops
# every rank as soon as one exits, so a rank other than 0 waits before its quiet exit: rank 0's line
# is written first (tests/test_dist_hardening.py lost it once when rank 2 was the first to exit).
QUIET_RANK_GRACE_S = 5.0


def quiet_rank_exit_wait() -> None:
    """Give rank 0 time to print its one line before this rank exits quietly."""
    import time

    time.sleep(QUIET_RANK_GRACE_S)
