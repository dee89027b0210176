"""What a user expects of any CLI: a version, shell completion."""

from __future__ import annotations

from pathlib import Path

from fakes.cli import ok, taskorch
from taskorch import __version__


def test_version(tmp_path: Path) -> None:
    assert ok(taskorch("--version", home=tmp_path / ".taskorch")) == f"taskorch {__version__}\n"
    assert not (tmp_path / ".taskorch").exists()


def test_shell_completion_script(tmp_path: Path) -> None:
    script = ok(taskorch("--show-completion", "bash", home=tmp_path / ".taskorch"))
    assert "complete" in script
    assert "taskorch" in script


def test_a_bad_log_level_is_one_line(tmp_path: Path) -> None:
    result = taskorch("--log-level", "loud", "status", home=tmp_path / ".taskorch")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: invalid log level 'loud': use one of debug, info, warning, error, critical"
    )


def test_piped_output_is_never_cut_at_80_columns(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    title = "word " * 30 + "end"
    ok(taskorch("task", "add", title, home=home, extra_env={"COLUMNS": ""}))
    env = {"COLUMNS": ""}
    listed = ok(taskorch("task", "list", home=home, extra_env=env))
    assert title in listed
