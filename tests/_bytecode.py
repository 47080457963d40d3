"""Write the bytecode of this checkout's modules, even under PYTHONDONTWRITEBYTECODE.

The variable, which the CI machine sets, would have every run, and each of
pytest-xdist's workers, compile the package and the tests again: about 1 s of
each worker's start on that 2-core machine, a tenth of the suite's time. So
tests/conftest.py imports this module before anything of the
project's: from then on, Python writes bytecode where it would without the
variable, in the ``__pycache__`` folders of this checkout, which ``.gitignore``
lists (and of any installed module that has none yet). The processes the
tests start keep the variable: they read that bytecode and write none.
README's "Development" says so.
"""

from __future__ import annotations

import os
import sys

WRITTEN = bool(sys.flags.dont_write_bytecode and os.environ.get("PYTHONDONTWRITEBYTECODE"))
"""Whether the variable said not to write bytecode, and it is written all the same."""

if WRITTEN:
    sys.dont_write_bytecode = False
