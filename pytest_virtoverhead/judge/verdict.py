"""The four verdict words, one enum: what a claim's interval says
(``pass``, ``fail``, ``inconclusive``) and ``skipped`` (the claim could
not be judged). Every module that names a verdict takes it from here.

Imports nothing of the package (claims, footprint, the results and the
formatters all import it).
"""

from __future__ import annotations

import enum


class Verdict(str, enum.Enum):
    """A claim's verdict. A ``str`` whose value is the word the JSON, the
    reports and earlier code use (``Verdict.PASS == "pass"``, the same
    hash), so a verdict read back from a file compares and looks up as the
    member does. ``skipped``: the claim could not be judged (an environment
    absent or not measured)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


PASS, FAIL, INCONCLUSIVE, SKIPPED = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.SKIPPED
