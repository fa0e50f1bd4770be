"""Every failure the library can foresee, and the exit code each one means in the CLIs.

Two families:
- bad input or a missing prerequisite (`exit_code` 2): the user fixes the call. They subclass the builtin error a
  library caller would expect (`ValueError`, `FileNotFoundError`, `ImportError`), so code catching those keeps working.
- an artifact or a measurement failed (`ArtifactError`, `exit_code` 1): the converter, the quantizer, the verification
  or a runner did not produce a usable result for one job; the CLIs report it in that job's row and go on.

The CLIs print `error: <message>` and exit with `exc.exit_code` in one place (`cli.common.run_app`).
"""

from __future__ import annotations


class EffvitError(Exception):
    """Base of every foreseeable failure; the message is one line naming the problem and the fix."""

    exit_code = 2


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


class ArtifactError(EffvitError, RuntimeError):
    """One artifact could not be made or measured; the other jobs of the run go on (exit code 1)."""

    exit_code = 1


class ConversionError(ArtifactError):
    """A converter (torch.onnx, litert-torch, ExecuTorch) rejected the model; the message names target and model."""


class QuantizationError(ArtifactError):
    """int8 quantization produced a graph that breaks its own contract (e.g. attention islands lost)."""


class RunnerError(ArtifactError):
    """A runtime runner failed to load or run an artifact."""
