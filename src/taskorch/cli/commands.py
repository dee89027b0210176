"""Imports every command module so they register on the app."""

from taskorch.cli import agents as agents
from taskorch.cli import gc as gc
from taskorch.cli import mcp as mcp
from taskorch.cli import metrics as metrics
from taskorch.cli import parse as parse
from taskorch.cli import run as run
from taskorch.cli import serve as serve
from taskorch.cli import system as system
from taskorch.cli import taskmaster as taskmaster
from taskorch.cli import tasks as tasks
from taskorch.cli import worker as worker
from taskorch.cli import workflows as workflows
