"""The one exception type that reaches the user as a one-line message and exit code 2, and the one way to print
a notice (a change the tool made to what was asked, which the user should know about)."""

import sys


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, invalid number).

    The CLI prints the message on one line and exits with code 2; anything else is a bug and
    keeps its traceback.
    """


def notice(text: str) -> None:
    """One line on stderr, ``ascbench: notice: ...``: the run goes on."""
    print(f"ascbench: notice: {text}", file=sys.stderr)
