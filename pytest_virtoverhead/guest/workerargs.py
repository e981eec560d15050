"""The worker's command line, read without argparse in the usual forms
(argparse costs ~0.2 s of a worker's start under TCG).

Standard library only: this runs inside every environment.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _argparser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_virtoverhead.guest.worker",
                                     description="The worker of pytest-virtoverhead: serves requests over a byte stream.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--device", help="talk over this character device (a serial port)")
    where.add_argument("--connect", help="talk over this unix socket")
    parser.add_argument("--cwd", help="change to this directory first")
    parser.add_argument("--cwd-hex", help="the same, hex-encoded (a VM guest's /init passes the host's)")
    parser.add_argument("--ready", default="", help="write this line to stderr when serving")
    return parser


class _Args:
    def __init__(self, **values: Any):
        self.__dict__.update(values)


def parse_args(argv: list[str]) -> Any:
    """The command line as :func:`_argparser` reads it. The usual forms
    (``--name value``, ``--name=value``) are read here without importing
    argparse (~0.2 s under TCG); anything else (``--help``, abbreviations,
    mistakes) goes to argparse, which answers or explains."""
    values: dict[str, Any] = {"device": None, "connect": None, "cwd": None, "cwd_hex": None, "ready": ""}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else ""
        if key not in values:
            return _argparser().parse_args(argv)
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return _argparser().parse_args(argv)
            i += 1
            value = argv[i]
        values[key] = value
        i += 1
    if values["device"] is not None and values["connect"] is not None:
        return _argparser().parse_args(argv)
    return _Args(**values)
