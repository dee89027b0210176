"""Agents' worktrees live outside taskorch's data folder (its database and config): by default
in the user's cache, else where ``TASKORCH_WORKTREES`` says, never inside ``TASKORCH_HOME``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.cli import taskorch
from taskorch.domain.errors import ConfigError
from taskorch.settings import default_worktrees_root, load_settings


def test_the_default_is_in_the_cache_one_folder_per_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    one, two = tmp_path / "one" / ".taskorch", tmp_path / "two" / ".taskorch"
    root = load_settings(taskorch_home=one).worktrees_root
    assert root.parent == tmp_path / "cache" / "taskorch" / "worktrees"
    assert root != load_settings(taskorch_home=two).worktrees_root
    assert not root.is_relative_to(one)


def test_without_xdg_the_cache_is_under_the_users_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    root = default_worktrees_root(tmp_path / ".taskorch")
    assert root.is_relative_to(tmp_path / "user" / ".cache" / "taskorch" / "worktrees")


def test_a_data_folder_holding_the_cache_gets_a_default_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    assert not default_worktrees_root(tmp_path).is_relative_to(tmp_path)


def test_a_setting_outside_the_data_folder_is_used_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKORCH_WORKTREES", str(tmp_path / "trees"))
    assert load_settings(taskorch_home=tmp_path / "home").worktrees_root == tmp_path / "trees"


def test_worktrees_inside_the_data_folder_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TASKORCH_WORKTREES", str(home / "worktrees"))
    with pytest.raises(ConfigError) as caught:
        load_settings(taskorch_home=home)
    message = caught.value.message
    assert message.startswith(f"invalid setting TASKORCH_WORKTREES='{home / 'worktrees'}': ")
    assert "inside TASKORCH_HOME" in message
    assert "\n" not in message
    result = taskorch("task", "list", home=home, extra_env={"TASKORCH_WORKTREES": str(home / "w")})
    assert result.returncode == 1
    assert "inside TASKORCH_HOME" in result.stderr
    assert "Traceback" not in result.stderr
