"""The one exception type a user sees: a problem with their input, and its fix."""


class UserError(Exception):
    """Bad input or usage. The message is one line that names the problem and the fix.

    The CLI prints it without a traceback and exits with `exit_code` (2 by contract).
    """

    exit_code = 2
