"""Imports every command module so they register on the app."""

from taskorch.cli import system as system  # noqa: F401
from taskorch.cli import tasks as tasks  # noqa: F401
