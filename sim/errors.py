"""One exception type for everything a user can get wrong.

The CLI turns a :class:`UserError` into a single line on stderr and exit status 2, so a bad scenario,
trace or flag never shows a traceback. Internal bugs still raise ordinary exceptions.
"""


class UserError(Exception):
    """A problem in the user's input (scenario, trace, flag, path); printed as one line, exit 2."""

    exit_code = 2


class CheckFailed(Exception):
    """A guarantee or regression bound was violated; printed as one line, exit 1."""

    exit_code = 1
