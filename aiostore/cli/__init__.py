"""The ``aiostore`` command: look into and copy stores by URL.

Every STORE argument is a URL :func:`aiostore.open_store` knows: a plain path or
``file://`` (a directory), ``nested://``, ``zip://``, ``dbm://``, ``lmdb://``,
``memory://``, ``s3://``, ``gs://``, ``az://``, ``http(s)://`` and ``cache+<url>``.

.. code-block:: console

    $ aiostore tree data.zarr                  # the zarr hierarchy (v2 and v3)
    $ aiostore ls data.zarr foo                # one group's members
    $ aiostore du data.zarr                    # stored bytes, per subdirectory
    $ aiostore info data.zarr foo/bar          # an array: shape, chunks, codecs, bytes stored
    $ aiostore copy data.zarr zip://data.zip   # copy_store, with a progress bar
    $ aiostore verify data.zarr zip://data.zip # same keys, same bytes? (exit status 1 if not)
    $ aiostore serve lmdb://data.mdb           # over HTTP, read-only (aiostore.http)

An error is one line on stderr (``aiostore: error: ...``) and exit status 1 (2 for
a bad command line, and for ``verify``); ``aiostore --debug ...`` shows the traceback.
``python -m aiostore`` is the same command. :data:`cli` is the click group, to which
other commands are added with ``cli.add_command``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from aiostore.cli._browse import du, info, ls, tree
from aiostore.cli._copy import copy
from aiostore.cli._errors import DEBUG_KEY, ErrorReportingGroup
from aiostore.cli._verify import StoreComparison, verify
from aiostore.cli.serve import serve

__all__ = ["StoreComparison", "cli", "main"]


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aiostore", prog_name="aiostore")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Look into zarr stores and copy them, by URL (a path, zip://x.zip, lmdb://x.mdb, s3://...)."""
    ctx.meta[DEBUG_KEY] = debug


for _command in (ls, tree, du, info, copy, verify, serve):
    cli.add_command(_command)


def main(args: Sequence[str] | None = None) -> None:
    """Run the ``aiostore`` command (``args``: the command line, by default ``sys.argv[1:]``)."""
    cli.main(args=list(args) if args is not None else None, prog_name="aiostore")
