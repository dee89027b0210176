"""Entry point of the ``taskorch`` console script: imports every command module, then runs."""

from __future__ import annotations

from taskorch.cli import commands as _commands  # noqa: F401  (registers the commands)
from taskorch.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
