"""One module per kind. Nothing here imports a backend: the registry imports
each module the first time its kind is asked for.

``unifex.backends()`` is the public function listing the kinds. Importing this
subpackage rebinds the name ``unifex.backends`` to it, so the module itself is
callable and calls that same function.
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self) -> dict[str, bool]:
        from .._registry import backends

        return backends()


sys.modules[__name__].__class__ = _CallableModule
