"""The one exception type for bad user input (files, fields, values).

The CLI prints ``starft: error: <message>`` for it and exits with status 2 instead of a
traceback, so its message must stand on its own: name the file, field or value that is wrong and
what was expected.
"""


class StarftError(Exception):
    """A user-facing error with a one-line, self-contained message."""
