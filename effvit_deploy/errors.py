"""User-facing errors: one clear line that names the problem and the fix.

The CLI turns any of these into that line on stderr and exit code 2. They subclass the builtin error a library caller
would expect (`ValueError`, `FileNotFoundError`), so code that catches those keeps working.
"""

from __future__ import annotations


class EffvitError(Exception):
    """Base of every error caused by bad user input or a missing prerequisite (exit code 2 in the CLI)."""


class InvalidInputError(EffvitError, ValueError):
    """A value the user gave is not acceptable (unknown name, bad resolution, malformed file)."""


class MissingFileError(EffvitError, FileNotFoundError):
    """A file the user named does not exist."""


class CheckpointError(InvalidInputError):
    """A checkpoint file cannot be loaded into the requested model."""


class MissingDependencyError(EffvitError, ImportError):
    """An optional runtime package is not installed; the message names the pip extra."""


class DeviceError(EffvitError, RuntimeError):
    """A device is unknown, offline, unauthorized or cannot do what was asked."""
