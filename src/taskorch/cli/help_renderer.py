"""typer's help renderer without the two rich modules a help screen never uses.

``typer.rich_utils`` draws every ``--help``; at import it takes ``rich.markdown`` (the Markdown
parser, for apps in markdown markup mode: this one is in rich mode) and ``rich.traceback`` (with
pygments, for pretty tracebacks: turned off here). The two were a third of ``taskorch --help``'s
CPU time. :func:`load` imports ``typer.rich_utils`` with stand-ins for those two names that load
the real class the first time one is used, so nothing changes but the cost.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """A stand-in class: calling it or reading an attribute (``Traceback.from_exception``)
    goes to the real class, imported then."""

    _module: str

    def real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real(), name)


def load() -> None:
    """Import ``typer.rich_utils`` (once) without loading ``rich.markdown`` or ``rich.traceback``
    unless something already did."""
    if "typer.rich_utils" in sys.modules:
        return
    standing_in: dict[str, types.ModuleType] = {}
    for module, name in _DEFERRED.items():
        if module not in sys.modules:
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, _Deferred(name, (), {"_module": module}))
            standing_in[module] = sys.modules[module] = stand_in
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        for module, stand_in in standing_in.items():
            if sys.modules.get(module) is stand_in:  # the real one imports normally from now on
                del sys.modules[module]
