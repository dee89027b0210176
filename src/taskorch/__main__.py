"""``python -m taskorch`` runs the CLI."""

from taskorch.cli.main import main

main()
