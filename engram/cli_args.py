"""argparse for the entry points that use it (report.py, demo.py): a bad flag or value is one line on stderr and
exit 2, the convention of every entry point (argparse's own error prints the usage block first)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from engram.config.rules import one_line


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(one_line(f"{self.prog}: {message} (--help for usage)"), file=sys.stderr)
        sys.exit(2)
