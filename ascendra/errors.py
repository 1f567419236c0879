"""The one exception type that reaches the user as a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, invalid number).

    The CLI prints the message on one line and exits with code 2; anything else is a bug and
    keeps its traceback.
    """
