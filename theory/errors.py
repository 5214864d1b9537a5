"""Input errors of the pure-math package (the CLI turns them into exit status 2)."""


class TheoryInputError(ValueError):
    """An invalid parameter: the message names the value and what would be valid."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise TheoryInputError(message)
