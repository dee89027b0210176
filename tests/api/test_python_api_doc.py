"""The examples in docs/python-api.md are Python as written (top-level ``await``, as in a notebook
or ``python -m asyncio``) and use only names taskorch has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import taskorch
from taskorch.engine import coordinator, orchestrator
from taskorch.runtime import recovery

DOC = Path(__file__).parents[2] / "docs" / "python-api.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_the_python_examples_parse_and_name_real_methods() -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) == 3
    methods = {
        name
        for cls in (
            coordinator.AgentCoordinator,
            orchestrator.TaskOrchestrator,
            recovery.ErrorRecoveryManager,
        )
        for name in dir(cls)
    }
    called = set()
    for block in blocks:
        tree = compile(block, str(DOC), "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "taskorch":
                assert all(hasattr(taskorch, alias.name) for alias in node.names)
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id in ("coordinator", "orchestrator", "manager"):
                called.add(node.attr)
    assert called <= methods, called - methods
    assert {"execute_task", "monitor_execution", "get_statistics"} <= called
    assert {"register_recovery_strategy", "execute_with_dependencies"} <= called
    assert "update_task_state" in called
