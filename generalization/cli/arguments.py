"""Shared argparse pieces of the ``generalization`` command: argument types and validators (``positive_int``,
``fraction``, ``device``, ``out_dir``, ...), the one-line-error parser ``_Parser``, the help formatter that
shows defaults and ``_finish``, which applies it to every subcommand (moved out of
:mod:`generalization.cli`, which builds the parser from these modules and runs ``main``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import DataError

# Each checks one argument where it enters and says what is wrong in argparse's one-line error (exit 2).


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = _int_at_least(1)


non_negative_int = _int_at_least(0)


def _float_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be in {low:g}..{high:g}, got {text}")
        return value

    parse.__name__ = f"number in {low:g}..{high:g}"
    return parse


fraction = _float_in(0.0, 1.0)


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (checked for availability when the run starts)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def class_threshold(text: str) -> tuple[str, float]:
    """CLASS=TAU with TAU in 0..1."""
    cls, sep, tau = text.rpartition("=")
    if not sep or not cls:
        raise argparse.ArgumentTypeError(f"expected CLASS=TAU (e.g. n01440764=0.6), got {text!r}")
    try:
        return cls, fraction(tau)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: TAU {e}") from None


def url_template(text: str) -> str:
    """A str.format template whose only field is {image_id}."""
    from ..sampler.tasks import check_url_template

    try:
        return check_url_template(text)
    except DataError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def out_file(text: str) -> Path:
    """A file to write: not an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return path


def out_dir(text: str) -> Path:
    """A folder to write into: not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line (and exit 2), with where to find the usage; subcommands inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (None: not set)."""


def _finish(parser: argparse.ArgumentParser) -> None:
    """For every (sub)command: show defaults in --help, and accept --debug after the command too."""
    parser.formatter_class = _HelpFormatter
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for child in action.choices.values():
            _finish(child)
    if not subs and parser.prog != "generalization":
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show the traceback of an unexpected error")
