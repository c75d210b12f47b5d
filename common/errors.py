"""The one error type a user sees: printed as a single line by the CLI, never a traceback."""


class UserError(Exception):
    """Bad input or state the user can fix: message names the thing and what was expected."""
