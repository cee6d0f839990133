"""Command-line interface: a thin layer over the Python API.

Every subcommand parses its flags and calls one public function; the work (and its documentation) lives in
the library modules. This package builds the parser (:func:`build_parser`) and runs a command (:func:`main`); the
subcommands live in one module per subsystem (``store_commands``, ``analysis_commands``, ``evaluator_commands``,
``sampler_commands``) and the shared argument types in ``arguments``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..files import DataError
from .analysis_commands import (
    _add_analyze,
    _add_gaps,
    _add_predict_unlabeled,
    _add_reproduce,
    _add_selection_frequency,
)
from .arguments import _finish, _Parser
from .evaluator_commands import _add_evaluate
from .sampler_commands import _add_near_duplicates, _add_sample
from .store_commands import _add_import, _add_verify_store


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="generalization",
        description="Build new test sets, evaluate models on them, and measure the accuracy gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_import, _add_analyze, _add_verify_store, _add_gaps, _add_reproduce, _add_evaluate, _add_sample,
                _add_near_duplicates, _add_selection_frequency, _add_predict_unlabeled):
        add(sub)
    _finish(parser)
    return parser


def _os_error_message(e: OSError, first: int = 0) -> str:
    """One line for a failed read or write, and what was and was not written before it (files written by
    this command: :func:`written_files` from index ``first``)."""
    from ..files import written_files

    what = f"{e.filename}: {e.strerror or e}" if e.filename else str(e)
    written = written_files()[first:]
    if e.errno in (28, 30, 13, 122, 27):  # ENOSPC, EROFS, EACCES, EDQUOT, EFBIG: a write (or a lock) failed
        done = (
            f"{len(written)} file(s) were written completely before it (last: {written[-1]})"
            if written else "nothing was written"
        )
        return (f"{what}; that file was not written (no partial file is left, any earlier version is intact), "
                f"{done}; rerun after freeing space / fixing permissions: finished work is kept")
    return what + (f" ({len(written)} file(s) written completely before it)" if written else "")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``generalization`` command. Exit status: 0 done, 1 a check failed or an unexpected error,
    2 bad input or arguments (one line on stderr), 130 interrupted."""
    from ..files import written_files
    from ..store.records import RecordExistsError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    first = len(written_files())
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `generalization list-models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("generalization: interrupted; finished records are kept", file=sys.stderr)
        return 130
    except (DataError, RecordExistsError, FileExistsError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError) as e:
        if debug:
            raise
        msg = str(e) if isinstance(e, DataError | RecordExistsError) or not isinstance(e, OSError) \
            else _os_error_message(e, first)
        print(f"generalization: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        print(f"generalization: error: {_one_line(_os_error_message(e, first))}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            raise
        print(f"generalization: internal error: {type(e).__name__}: {_one_line(str(e))} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
