"""Run an entry point (`python tests/_run_entry.py train.py args...`) and, at exit, write the names of every module
it imported to $MODULES_OUT: a run that never imported torch cannot have loaded any weights."""

import atexit
import os
import runpy
import sys


def _write_modules() -> None:
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write("\n".join(sorted(sys.modules)))


atexit.register(_write_modules)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # import engram from the script's checkout
runpy.run_path(sys.argv[0], run_name="__main__")
