"""What every command shares: bad input becomes one line on stderr and exit code 2, never a traceback."""

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
    """Run a typer app as a console script, mapping `EffvitError` to `error: <message>` and exit code 2.

    Usage errors (unknown option, a value of the wrong type) are reported by typer itself with exit code 2.
    """
    try:
        app(args=argv)
    except EffvitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
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


def fail(message: str) -> None:
    """Stop a command with one clear line and exit code 2 (for checks that live only in the CLI)."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_BAD_INPUT)
