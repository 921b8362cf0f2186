"""The one exception type library code raises; cli.py turns it into a one-line message."""


class MidigenError(Exception):
    """A problem the user can fix, explained in one line a musician understands."""
