"""Entry point of the ``taskorch`` console script: imports every command module, then runs."""

from __future__ import annotations

import logging

from taskorch.cli import commands as _commands  # noqa: F401  (registers the commands)
from taskorch.cli.app import app
from taskorch.runtime import tracing


def main() -> None:
    # The connection pool logs every failed connect; the CLI reports failures itself, in one line.
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    try:
        app()
    finally:
        tracing.shutdown()  # export the spans of a short run before the process ends


if __name__ == "__main__":
    main()
