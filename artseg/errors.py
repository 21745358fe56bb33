"""Exceptions that reach the user as one clear line."""


class ArtsegInputError(ValueError):
    """Bad user input: a missing or unreadable file, a malformed manifest, mismatched shapes.

    The message names the file (or manifest row) and the problem; the CLI prints it
    as a single line and exits with status 2, without writing partial outputs.
    """
