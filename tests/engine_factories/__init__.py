"""One module per CA engine, each defining `NAME` and `make_engine(tmp_path) -> CAEngine`.

The engine contract suite (tests/service/test_engine_contract.py) runs against every module
here; adding an engine means adding a module, not editing the suite. A factory may call
`pytest.skip` when its engine's external dependency (a SoftHSM token, pebble) is absent.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def factories() -> list[ModuleType]:
    return [
        importlib.import_module(f"{__name__}.{module.name}")
        for module in pkgutil.iter_modules(__path__)
    ]
