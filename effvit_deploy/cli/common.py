"""What every command shares: a foreseeable failure becomes one line on stderr and its exit code, never a traceback."""

from __future__ import annotations

import sys

import typer

from ..errors import EffvitError
from . import interrupts

EXIT_BAD_INPUT = 2  # typer/click use 2 for usage errors too


def make_app(help_text: str) -> typer.Typer:
    """A Typer app configured like every effvit command (no rich tracebacks: errors are one line)."""
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app as a console script, mapping an `EffvitError` to `error: <message>` and its `exit_code`
    (2 bad input, 1 a failed artifact or measurement; see `effvit_deploy.errors`).

    Usage errors (unknown option, a value of the wrong type) are reported by typer itself with exit code 2.
    """
    try:
        app(args=argv)
    except EffvitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        # typer turns Ctrl-C / SIGTERM (our handler raises KeyboardInterrupt) into a silent exit 130
        if exc.code == 130:
            _say_interrupted()
        raise


def _say_interrupted() -> None:
    if not interrupts.was_announced():
        interrupts.announced()
        print("interrupted: finished results are kept", file=sys.stderr, flush=True)

