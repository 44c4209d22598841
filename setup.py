"""How wardgate's native modules are built (everything else about the package is in pyproject.toml).

Two kinds, both compiled by any install (`pip install -e .` puts each built module next to its source):

- C extensions: the loops over bytes (message framing, the DataRow walk, masking's prefilter and per-row masks,
  audit records for the journal, the chain and the SQLite store's times).
- The per-statement Python, compiled with mypyc (the modules listed under [tool.wardgate] in pyproject.toml):
  the same typed source that mypy checks, turned into C so that a statement costs fewer instructions. Measured
  under callgrind (bench/instructions.py), per pgbench select-only transaction in the gateway's main process:
  218-222k instructions interpreted, 151-157k compiled (docs/design.md, "Compiled modules").

A compiled module shadows its source, so a changed source must be rebuilt: `make` does it when one changes, and
the tests refuse to run on a compiled module older than its source (tests/conftest.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["wardgate"]["compiled"]
PREFILTER = ["wardgate/masking/_prefilter_core.h"]  # a changed header rebuilds every module that includes it

C_EXTENSIONS = [
    Extension("wardgate.masking._prefilter", ["wardgate/masking/_prefilter.c"], depends=PREFILTER),
    Extension("wardgate.masking._bulk", ["wardgate/masking/_bulk.c"], depends=PREFILTER),
    Extension("wardgate.protocols.postgres._datarow", ["wardgate/protocols/postgres/_datarow.c"], depends=PREFILTER),
    Extension("wardgate.protocols.postgres._framing", ["wardgate/protocols/postgres/_framing.c"]),
    Extension("wardgate.audit._records", ["wardgate/audit/_records.c"], libraries=["z"]),  # zlib's crc32
]

# How mypyc reads the code. The build runs in an environment of its own, without wardgate's dependencies
# (SQLAlchemy, pydantic...): their types are unknown there, so the build ignores the project's mypy settings
# (strict, which `make lint` applies with every dependency installed) and any cache of them, and takes what it
# cannot import as Any; compiled code then reaches those libraries as interpreted code does. wardgate and
# wardgate.frontends are namespace packages: mypy needs the explicit package bases to name their modules.
MYPY_OPTIONS = ["--config-file=", "--python-version=3.11", "--explicit-package-bases", "--ignore-missing-imports",
                f"--cache-dir={ROOT / 'build' / 'mypyc-cache'}"]

# One shared library for the compiled modules (calls between them skip the interpreter), inside the package so
# that an editable install finds it as wardgate._compiled__mypyc.
setup(ext_modules=[*C_EXTENSIONS, *mypycify([*MYPY_OPTIONS, *COMPILED], group_name="wardgate._compiled")])
