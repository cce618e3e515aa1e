"""Errors as a shell user expects them: one line on stderr and a non-zero exit.

Every command of the ``aiostore`` group runs inside :class:`ErrorReportingGroup`,
which turns an exception into ``aiostore: error: <one line>`` and exit status 1
(or what the command asked for with :func:`set_error_exit_code`); ``--debug``
shows the traceback instead. Usage errors stay click's (exit status 2).

>>> one_line(KeyError("a/0.0"))
"key 'a/0.0' not found"
>>> one_line(FileNotFoundError(2, "No such file or directory", "x.zarr"))
"[Errno 2] No such file or directory: 'x.zarr'"
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from aiostore.errors import StoreError

__all__ = ["DEBUG_KEY", "ErrorReportingGroup", "UserError", "one_line", "set_error_exit_code"]

#: ``ctx.meta`` key: True when ``--debug`` was given.
DEBUG_KEY = "aiostore.debug"
_EXIT_KEY = "aiostore.error_exit_code"
#: Exceptions whose message says it all; anything else also names its type.
_EXPECTED = (OSError, ValueError, LookupError, PermissionError, TimeoutError)


class UserError(Exception):
    """A problem the command found and explains in its message (no type name shown)."""


def set_error_exit_code(ctx: click.Context, code: int) -> None:
    """Make an error in this command exit with ``code`` (``verify`` uses 2: 1 means "differ")."""
    ctx.meta[_EXIT_KEY] = code


def _leaf(exc: BaseException) -> BaseException:
    """The first exception of a (nested) exception group, as a task group raises them."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def one_line(exc: BaseException) -> str:
    """What went wrong, on one line, for ``aiostore: error: ...``."""
    exc = _leaf(exc)
    if type(exc) is KeyError and exc.args:
        text = f"key {exc.args[0]!r} not found"
    else:
        text = str(exc) or type(exc).__name__
    if not isinstance(exc, (UserError, StoreError, *_EXPECTED)):
        text = f"{type(exc).__name__}: {text} (run with --debug for the traceback)"
    return " ".join(text.split())


class ErrorReportingGroup(click.Group):
    """A click group whose commands report errors in one line (``--debug``: a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an exception becomes one line on stderr and exit status 1."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if ctx.meta.get(DEBUG_KEY):
                raise
            if isinstance(_leaf(exc), BrokenPipeError):
                # the reader went away (``aiostore tree x | head``): stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                ctx.exit(1)
            click.echo(f"aiostore: error: {one_line(exc)}", err=True)
            ctx.exit(ctx.meta.get(_EXIT_KEY, 1))
