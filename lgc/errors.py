"""User errors: one line that names the bad value, exit status 2 (README "Targets and guarantees")."""


class UserError(Exception):
    """A mistake in the user's input. The CLI prints `lgc: error: <message>` and exits 2."""


def check(condition: bool, message: str) -> None:
    """Raise UserError(message) unless condition holds."""
    if not condition:
        raise UserError(message)
