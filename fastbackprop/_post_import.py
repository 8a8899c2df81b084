"""Run a function once a module has been imported, whether it is imported before or after.

``fastbackprop.sklearn`` registers its estimators with skl2onnx this way:
at once if skl2onnx is already imported, else right after skl2onnx's own
import, so neither module imports the other and the user imports nothing
more (``wrapt``'s post-import hooks do the same). This module imports
nothing heavy.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

_lock = threading.Lock()


def when_imported(name, callback):
    """Call ``callback(module)`` now if the top-level module ``name`` is imported, else once,
    right after its first import has finished (the callback's errors then propagate from
    that import: catch them in ``callback``)."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            sys.meta_path.insert(0, _Finder(name, callback))
            return
    callback(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for ``name``, it asks the other finders and wraps the loader."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        with _lock:
            if self not in sys.meta_path:
                return None
            sys.meta_path.remove(self)  # once only; and the lookup below must not find us
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, self.callback)
        return spec


class _Loader(importlib.abc.Loader):
    """``loader``, then ``callback(module)``; the module keeps ``loader`` as its own."""

    def __init__(self, loader, callback):
        self.loader, self.callback = loader, callback

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.callback(module)
