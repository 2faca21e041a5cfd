"""One exception type for every kind of bad input.

The CLI turns an ``OodBenchError`` into a one-line message and exit status 2, so
anything a user can get wrong (a name, a config value, a file) raises this rather
than a bare ValueError that would surface as a traceback.
"""


class OodBenchError(Exception):
    """Bad input from the user: unknown name, invalid value, unreadable file."""


class ConfigError(OodBenchError):
    """A configuration value is out of range or of the wrong type."""
