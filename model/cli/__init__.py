"""The ``lesionbn`` command line.

Each command lives in a small module of this package that exposes ``register(subparsers)``;
``main`` builds the parser from :data:`COMMAND_MODULES`. Exit codes: 0 ok, 2 bad input (the
message goes to stderr), 1 an unexpected failure.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import LesionBNError

#: modules that contribute sub-commands, in the order ``--help`` lists them
COMMAND_MODULES = [
    "model.cli.inference",
    "model.cli.sensitivity",
    "model.cli.recommend",
    "model.cli.learn",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lesionbn",
        description="Probabilistic diagnosis of motor-system lesions with discrete Bayesian networks. "
        "For education and decision support; it does not make a diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"lesionbn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LesionBNError as exc:
        print(f"lesionbn: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"lesionbn: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `lesionbn describe | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
