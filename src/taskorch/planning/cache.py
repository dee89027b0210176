"""The cache of model answers, keyed by a full SHA-256 of (provider, model, prompt, context).

Only answers that passed validation and the plan rules are stored, and what is stored is the
answer (the draft), not the plan: the same requirement planned for two tasks gets two parent ids.
Entries live in memory (bounded, least recently used dropped first) and, when a directory is given,
on disk as one JSON file per key, so a second ``taskorch parse`` of the same text costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

DEFAULT_MAX_ENTRIES = 256
CACHE_SUBDIR = Path("cache") / "planner"


def cache_key(provider: str, model: str, prompt: str, context: str | None) -> str:
    """The full hex SHA-256 of the four parts, framed by JSON so no two tuples share a key."""
    framed = json.dumps([provider, model, prompt, context], ensure_ascii=False)
    return hashlib.sha256(framed.encode("utf-8", "surrogatepass")).hexdigest()


class PlanCache:
    def __init__(
        self, directory: Path | None = None, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.directory = directory
        self.max_entries = max_entries
        self._memory: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def off(cls) -> PlanCache:
        """A cache that keeps nothing (``NLP_ENABLE_CACHING=false``): every plan asks the model."""
        return cls(None, max_entries=0)

    def get(self, key: str) -> str | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        value = self._read(key)
        if value is not None:
            self._remember(key, value)
        return value

    def put(self, key: str, value: str) -> None:
        self._remember(key, value)
        self._write(key, value)

    def __len__(self) -> int:
        return len(self._memory)

    def _remember(self, key: str, value: str) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.json" if self.directory else None

    def _read(self, key: str) -> str | None:
        path = self._path(key)
        if path is None:
            return None
        # A cache that cannot be read is a cache miss, never a failed plan.
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _write(self, key: str, value: str) -> None:
        path = self._path(key)
        if path is None:
            return
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a concurrent reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value)
            os.replace(tmp, path)
        except OSError:
            # A cache that cannot be written only costs a model call next time.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
