"""Verdict calibration, the command (the parts and their figures: the
package calib/ beside this file, whose docstring ``--help`` shows):

    .venv/bin/python benchmarks/calibration.py [--part NAME ...] [--sessions N]
        [--quick] [--json PATH] [--out-dir DIR] [--write-results]
        [--merge SUMMARY.json] [--resummarize SUMMARY.json] [--note TEXT]
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from calib.base import BEGIN, END, covers, quantile, rel_half_width  # noqa: E402
from calib.cli import main  # noqa: E402
from calib.compare import read_comparison  # noqa: E402
from calib.report import replace_section  # noqa: E402

__all__ = ["BEGIN", "END", "covers", "main", "quantile", "read_comparison", "rel_half_width", "replace_section"]

if __name__ == "__main__":
    sys.exit(main())
