"""The one base class of errors that are the user's to fix (bad data, flags, files, a missing broker).

The command line prints these as one line and exits with 2; anything else is a bug in this
project and keeps its traceback.
"""


class AmsrmError(Exception):
    """A problem with the user's input or environment, stated so that they can fix it."""


class ConfigError(AmsrmError, ValueError):
    """A setting, flag or override that cannot be used (a ValueError too, for callers in code)."""
