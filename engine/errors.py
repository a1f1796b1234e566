"""The errors mlbuild reports to users: one readable message, a non-zero exit, no traceback."""


class UserError(Exception):
    """Something the user can fix; the message names the target or file at fault."""

    exit_code = 2


class BuildFailed(UserError):
    """One or more actions failed; what was built before them is cached."""

    exit_code = 1
