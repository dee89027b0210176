"""A shared repository reached by URL, for the tests of the faces: a bare git repository with one
commit on ``main`` (and more branches if asked), named by its ``file://`` URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def bare_origin(root: Path, *branches: str) -> Path:
    """``<root>/origin.git`` with a first commit on ``main`` (and on each of ``branches``),
    pushed from a throwaway clone."""
    origin = root / "origin.git"
    origin.mkdir(parents=True)
    git(origin, "init", "-q", "--bare", "-b", "main")
    seed = root / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("# shared project\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", str(origin), "main", *(f"main:{b}" for b in branches))
    shutil.rmtree(seed)
    return origin


def url(origin: Path) -> str:
    return origin.resolve().as_uri()


def tip(origin: Path, branch: str = "main") -> str:
    return git(origin, "rev-parse", f"refs/heads/{branch}")


def files_on(origin: Path, branch: str = "main") -> list[str]:
    return git(origin, "ls-tree", "-r", "--name-only", branch).splitlines()
