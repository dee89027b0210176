"""Entry point of the ``taskorch`` console script: imports every command module, then runs."""

from __future__ import annotations

import logging

from taskorch.cli import commands as _commands  # noqa: F401  (registers the commands)
from taskorch.cli.app import app


def main() -> None:
    # The connection pool logs every failed connect; the CLI reports failures itself, in one line.
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    app()


if __name__ == "__main__":
    main()
