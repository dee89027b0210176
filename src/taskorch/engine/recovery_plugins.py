"""Recovery strategies from plugins, so they reach the workers the CLI builds (``run``, ``serve``,
``worker``), not only a worker built by hand.

Two ways, both calling ``register(manager)`` with the engine's :class:`ErrorRecoveryManager` once,
when the engine first builds a worker:

- ``TASKORCH_RECOVERY_STRATEGIES="package.module:register"`` (several: comma-separated);
- an installed package's entry point in the group ``taskorch.recovery``
  (``[project.entry-points."taskorch.recovery"] mine = "package.module:register"``).

A name that does not import, or a function that fails, stops the start with one line naming it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from taskorch.domain.errors import ConfigError, TaskorchError
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "taskorch.recovery"
SETTING = "TASKORCH_RECOVERY_STRATEGIES"

Register = Callable[[ErrorRecoveryManager], Any]


def recovery_manager(
    named: str | None, manager: ErrorRecoveryManager | None = None
) -> ErrorRecoveryManager:
    """``manager`` (default: a new one with the built-in policies) with the strategies of every
    plugin registered on it: the entry points, then ``named``."""
    manager = manager or ErrorRecoveryManager()
    for label, register in _plugins(named):
        try:
            register(manager)
        except TaskorchError as exc:
            raise ConfigError(f"recovery plugin {label}: {exc.message}") from None
        except Exception as exc:
            raise ConfigError(
                f"recovery plugin {label} failed: {type(exc).__name__}: {exc}"
            ) from None
        log.info("recovery plugin %s loaded", label)
    return manager


def recovery_for(settings: Settings) -> ErrorRecoveryManager:
    """The manager an engine's workers share: the built-in policies as the settings shape them,
    with every plugin's strategies."""
    # RETRY_ATTEMPTS / RETRY_DELAY shape the built-in policies; plugins' strategies
    # are registered over them and keep their own.
    base = ErrorRecoveryManager(
        max_attempts=settings.retry_attempts,
        base_delay_s=settings.retry_delay_s,
    )
    return recovery_manager(settings.recovery_strategies, base)


@functools.cache
def _entry_points(path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    """The group's entry points; looking costs ~50 ms, and every engine's worker asks, so the
    answer is kept for as long as ``sys.path`` (where distributions are found) stays the same."""
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _plugins(named: str | None) -> Iterator[tuple[str, Register]]:
    for point in _entry_points(tuple(sys.path)):
        label = f"{point.name} (entry point {point.value})"
        try:
            loaded = point.load()
        except Exception as exc:
            raise ConfigError(
                f"recovery plugin {label} does not load: {type(exc).__name__}: {exc}"
            ) from None
        yield label, _callable(label, loaded)
    for ref in (part.strip() for part in (named or "").split(",")):
        if ref:
            yield ref, _callable(ref, _resolve(ref))


def _resolve(ref: str) -> object:
    module_name, colon, attribute = ref.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigError(f"invalid setting {SETTING}: {ref!r} is not 'package.module:function'")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"invalid setting {SETTING}: cannot import {module_name!r}: {type(exc).__name__}: "
            f"{exc} (is it on PYTHONPATH?)"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"invalid setting {SETTING}: {module_name!r} has no {attribute!r}"
            ) from None
    return target


def _callable(label: str, found: object) -> Register:
    if not callable(found):
        raise ConfigError(
            f"recovery plugin {label} is not a function taking the ErrorRecoveryManager"
        )
    register: Register = found
    return register
