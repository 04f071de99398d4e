"""What a suite file imports: proxies, fetching, comparisons, memoised references. See docs/authoring.md."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .compare import assert_close, fail
from .device import OnDevice
from .reference import reference
from .remote import CheckFailed, Proxy, StudentException, fetch, run, student_raises

__all__ = ["CheckFailed", "OnDevice", "Proxy", "StudentException", "assert_close", "fail", "fetch", "reference",
           "run", "sibling", "student_raises"]


def sibling(anchor: str, filename: str) -> ModuleType:
    """The module in `filename` next to `anchor` (pass `__file__`), executed once per process.

    Suites are imported by path (pytest's importlib mode), so `import reference` would not find
    a file beside them; this loads it by path instead, and every suite file that asks for the
    same file shares one module (and so one set of memoised references).
    """
    path = (Path(anchor).parent / filename).resolve()
    # registered under its own name: dataclasses and pickling look classes up by their __module__
    name = f"kit_suite_{path.parent.name}_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
