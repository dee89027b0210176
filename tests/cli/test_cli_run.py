"""``taskorch run`` as a user types it: a requirement to merged code, offline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fakes.cli import ok, taskorch
from fakes.github_server import FakeGitHub
from fakes.origins import bare_origin, files_on, git, tip, url
from taskorch.store import open_store


def test_run_takes_a_requirement_to_merged(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    text = "Add authentication system with security audit and documentation"
    final = json.loads(ok(taskorch("run", text, "--json", home=home, database_url=database_url)))
    assert final["state"] == "merged"
    assert [h["to"] for h in final["history"]] == [
        "pending",
        "nlp_parsing",
        "task_decomposition",
        "dependency_resolution",
        "agent_assignment",
        "processing",
        "pr_created",
        "validation_running",
        "validation_passed",
        "merged",
    ]
    assert final["pull_request"]["commits_count"] >= 6
    status = json.loads(
        ok(taskorch("status", final["workflow_id"], "--json", home=home, database_url=database_url))
    )
    assert status["state"] == "merged"
    scratch = home / "repos" / "scratch"
    log = subprocess.run(
        ["git", "-C", str(scratch), "log", "--oneline", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "auth-006-docs" in log


def test_the_same_requirement_twice_both_merge(tmp_path: Path) -> None:
    """What ``make demo`` does when run again: the second run's plan is the first's."""
    home = tmp_path / ".taskorch"
    text = "Add authentication system with security audit and documentation"
    for _ in range(2):
        final = json.loads(ok(taskorch("run", text, "--agent", "sim", "--json", home=home)))
        assert final["state"] == "merged", final["escalation"]
    scratch = home / "repos" / "scratch"
    assert git(scratch, "status", "--porcelain") == ""
    assert git(scratch, "log", "--format=%s", "main").count("merge subtask auth-006-docs") == 2


def test_run_into_a_given_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=repo, check=True
        )
    home = tmp_path / ".taskorch"
    final = json.loads(
        ok(
            taskorch(
                "run",
                "Fix bug in dashboard/server/index.js line 42",
                "--repo",
                str(repo),
                "--json",
                home=home,
            )
        )
    )
    assert final["state"] == "merged"
    assert (repo / "dashboard" / "server" / "index.js").is_file() or subprocess.run(
        ["git", "-C", str(repo), "show", "main:dashboard/server/index.js"],
        capture_output=True,
        check=False,
    ).returncode == 0


def test_run_rejects_what_is_not_a_git_repository(tmp_path: Path) -> None:
    result = taskorch("run", "Add login", "--repo", str(tmp_path), home=tmp_path / "h")
    assert result.returncode == 1
    assert "not a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_needs_a_requirement(tmp_path: Path) -> None:
    result = taskorch("run", "   ", home=tmp_path / "h")
    assert result.returncode == 1
    assert "requirement is empty" in result.stderr


def test_kill_9_mid_pipeline_then_resume_to_merged(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    env = {**os.environ, "TASKORCH_HOME": str(home), "TASKORCH_LEASE_S": "1.0"}
    env.pop("DATABASE_URL", None)
    text = "Add authentication system with security audit and documentation"
    with subprocess.Popen(
        [sys.executable, "-m", "taskorch", "run", text, "--sim-duration", "0.4"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as proc:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list((home / "logs" / "tasks").glob("*.json")):
            time.sleep(0.05)  # at least one subtask finished: we are mid-processing
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # an agent registered meanwhile: the workflow still goes on as it started (simulated), since
    # other agents would never take its subtasks
    ok(taskorch("agents", "add", "helper", "--type", "sim", home=home))
    other = taskorch("resume", "--agent", "auto", home=home)
    assert other.returncode == 1
    assert "started with --agent sim; resume it with --agent sim" in other.stderr
    resumed = json.loads(ok(taskorch("resume", "--json", home=home)))
    assert resumed["state"] == "merged"
    states = [h["to"] for h in resumed["history"]]
    assert states[-1] == "merged"
    assert len(states) == len(set(states)), "no state was entered twice"
    log = subprocess.run(
        ["git", "-C", str(home / "repos" / "scratch"), "log", "--oneline"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    merges = [line for line in log.splitlines() if "merge subtask" in line]
    assert len(merges) == 6, log  # every subtask merged exactly once


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_run_opens_a_github_pull_request(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "origin", "main")
    local_main = _git(repo, "rev-parse", "main").strip()
    with FakeGitHub(token="ghp_secret_token", git_dir=origin) as github:
        env = {
            "GITHUB_TOKEN": "ghp_secret_token",
            "GITHUB_REPOSITORY": "acme/app",
            "GITHUB_API_URL": github.url,
        }
        result = taskorch(
            "run",
            "List all repositories in the portfolio",
            "--repo",
            str(repo),
            "--json",
            home=tmp_path / ".taskorch",
            extra_env=env,
        )
        final = json.loads(ok(result))
    assert final["state"] == "merged"
    pull = final["pull_request"]["github"]
    assert pull == {
        "number": 1,
        "url": "https://github.com/acme/app/pull/1",
        "repository": "acme/app",
        "state": "open",
    }
    [(_method, path, body)] = [r for r in github.requests if r[0] == "POST"]
    assert path == "/repos/acme/app/pulls"
    assert body is not None
    assert body["base"] == "main"
    assert body["head"] == f"taskorch/{final['workflow_id']}/main"
    assert body["head"] in _git(origin, "branch", "--list")
    assert "ghp_secret_token" not in result.stdout + result.stderr

    # Merged through GitHub's API, so GitHub and taskorch agree: the merge commit is GitHub's,
    # read back from GitHub's copy; the local checkout is the user's to pull.
    [(_method, merge_path, merge_body)] = [r for r in github.requests if r[0] == "PUT"]
    assert merge_path == "/repos/acme/app/pulls/1/merge"
    assert merge_body is not None
    assert merge_body["sha"] == _git(origin, "rev-parse", body["head"]).strip()
    merge = final["result"]
    assert merge["merged_by"] == "github"
    assert merge["base_commit"] == _git(origin, "rev-parse", "main").strip()
    assert _git(origin, "log", "-1", "--format=%an", "main").strip() == "GitHub"
    assert _git(repo, "rev-parse", "main").strip() == local_main


def test_pull_request_already_open_is_found_again(tmp_path: Path) -> None:
    import asyncio

    from taskorch.runtime.github import GitHubConfig, open_pull_request

    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    _git(repo, "remote", "add", "origin", "git@github.com:acme/app.git")
    _git(repo, "remote", "set-url", "--push", "origin", str(origin))
    with FakeGitHub(token="t0k") as github:
        config = GitHubConfig("t0k", None, github.url)
        first = asyncio.run(
            open_pull_request(config, repo, head="main", base="main", title="x", body="y")
        )
        again = asyncio.run(
            open_pull_request(config, repo, head="main", base="main", title="x", body="y")
        )
    assert first == again
    assert first["repository"] == "acme/app"


FIX_CHECK = (
    f'{sys.executable} -c "import pathlib, sys; '
    "sys.exit(0 if pathlib.Path('.taskorch-sim/fix-1.md').exists() else 1)\""
)


def test_failing_tests_repaired_by_a_fixup_round(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    final = json.loads(
        ok(
            taskorch(
                "run",
                "List all repositories in the portfolio",
                "--json",
                home=home,
                extra_env={"TASKORCH_TEST_COMMAND": FIX_CHECK},
            )
        )
    )
    assert final["state"] == "merged"
    states = [h["to"] for h in final["history"]]
    assert states.count("validation_failed") == 1
    assert "fix-1" in final["completed_subtasks"]


def test_tests_that_keep_failing_fail_the_workflow_with_the_log(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    command = f"{sys.executable} -c \"print('FAILED test_login'); raise SystemExit(1)\""
    result = taskorch(
        "run",
        "List all repositories in the portfolio",
        "--json",
        home=home,
        extra_env={"TASKORCH_TEST_COMMAND": command},
    )
    assert result.returncode == 1
    final = json.loads(result.stdout)
    assert final["state"] == "failed"
    assert [h["to"] for h in final["history"]].count("validation_failed") == 3
    assert "FAILED test_login" in final["result"]["validation"]["log_tail"]


def test_process_with_priority_and_a_timeout_that_cancels(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    ok(taskorch("task", "add", "List all repositories in the portfolio", home=home))
    final = json.loads(ok(taskorch("process", "1", "--priority", "critical", "--json", home=home)))
    assert final["state"] == "merged"
    again = taskorch("process", "1", home=home)
    assert again.returncode == 1
    assert f"task-1 is already done (workflow {final['workflow_id']} merged)" in again.stderr
    ok(taskorch("task", "add", "List all repositories in the portfolio", home=home))
    slow = taskorch("process", "2", "--timeout", "1s", "--sim-duration", "30", home=home)
    assert slow.returncode == 1
    assert "did not finish within 1 s" in slow.stderr
    listed = json.loads(ok(taskorch("status", "--json", home=home)))
    assert sorted(w["state"] for w in listed) == ["cancelled", "merged"]
    scratch = home / "repos" / "scratch"
    worktrees = _git(scratch, "worktree", "list").splitlines()
    assert len(worktrees) == 1, worktrees  # the cancelled workflow's worktrees are gone
    merged = next(w for w in listed if w["state"] == "merged")["workflow_id"]
    assert f"merge subtask repo-001-list into taskorch/{merged}/main" in _git(scratch, "log")


BUG_TEXT = "Fix bug in dashboard/server/index.js line 42"
LIST_TEXT = "List all repositories in the portfolio"


def test_run_into_a_repository_by_url_lands_on_its_base_branch(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path)
    home = tmp_path / ".taskorch"
    result = taskorch("run", BUG_TEXT, "--repo", url(origin), "--agent", "sim", home=home)
    out = ok(result)
    [said] = [line for line in result.stderr.splitlines() if "merging into" in line]
    workflow_id = said.split(":", 1)[0]
    assert said == f"{workflow_id}: merging into main of {url(origin)} (merge policy auto)"
    assert f"merged into main of {url(origin)}" in out
    final = json.loads(ok(taskorch("status", workflow_id, "--json", home=home)))
    assert final["state"] == "merged"
    assert final["target"] == {"repo": url(origin), "base_branch": "main", "merge_policy": "auto"}
    # On the repository itself, not only in this host's mirror: main has the agent's work.
    assert final["result"]["base_commit"] == tip(origin)
    log = git(origin, "log", "--format=%s", "main")
    assert "simulated: bug-001-fix" in log
    assert f"taskorch/{workflow_id}/main" in log
    assert "README.md" in files_on(origin)
    assert len(files_on(origin)) > 1


def test_merge_approve_waits_until_approved(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path)
    before = tip(origin)
    home = tmp_path / ".taskorch"
    args = ["--repo", url(origin), "--merge", "approve", "--agent", "sim"]
    waiting = json.loads(ok(taskorch("run", BUG_TEXT, *args, "--json", home=home)))
    workflow_id = waiting["workflow_id"]
    assert (waiting["state"], waiting["waiting_for"]) == ("validation_passed", "approval")
    assert waiting["target"]["merge_policy"] == "approve"
    assert tip(origin) == before  # validated, not merged
    shown = ok(taskorch("status", workflow_id, home=home))
    assert f"{workflow_id} validated; waiting for approval: taskorch approve {workflow_id}" in shown
    listed = json.loads(ok(taskorch("status", "--json", home=home)))
    assert listed[0]["waiting_for"] == "approval"

    approved = ok(taskorch("approve", workflow_id, home=home))
    assert approved.startswith(f"{workflow_id}  merged  into main of {url(origin)}")
    assert tip(origin) != before
    assert "simulated: bug-001-fix" in git(origin, "log", "--format=%s", "main")
    final = json.loads(ok(taskorch("status", workflow_id, "--json", home=home)))
    assert (final["state"], final["waiting_for"]) == ("merged", None)
    assert final["result"]["base_commit"] == tip(origin)
    again = taskorch("approve", workflow_id, home=home)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"error: workflow {workflow_id} is merged: only a validated workflow "
        "(validation_passed) can be approved"
    ]


def test_reject_leaves_the_base_branch_alone(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path)
    before = tip(origin)
    home = tmp_path / ".taskorch"
    args = ["--repo", url(origin), "--merge", "approve", "--agent", "sim"]
    result = taskorch("run", LIST_TEXT, *args, home=home)
    out = ok(result)  # waiting for approval is not a failure
    [hint] = [line for line in out.splitlines() if "waiting for approval" in line]
    workflow_id = hint.split()[0]
    assert hint == (
        f"{workflow_id} validated; waiting for approval: taskorch approve {workflow_id} "
        f"(or taskorch reject {workflow_id} --reason TEXT)"
    )
    assert f"merging into main of {url(origin)} (merge policy approve)" in result.stderr
    missing = taskorch("reject", workflow_id, home=home)
    assert missing.returncode == 2
    assert "--reason" in missing.stderr
    rejected = json.loads(
        ok(taskorch("reject", workflow_id, "--reason", "not this sprint", "--json", home=home))
    )
    assert rejected["state"] == "failed"
    assert rejected["result"]["reason"] == "rejected: not this sprint"
    assert tip(origin) == before
    branch = f"taskorch/{workflow_id}/main"
    assert git(origin, "branch", "--list", branch).strip() == branch  # the work is kept
    assert "reason: rejected: not this sprint" in ok(taskorch("status", workflow_id, home=home))
    late = taskorch("approve", workflow_id, home=home)
    assert late.returncode == 1
    assert "is failed: only a validated workflow" in late.stderr


def test_a_task_keeps_its_repository_base_branch_and_policy(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path, "develop")
    main_before = tip(origin)
    home = tmp_path / ".taskorch"
    added = json.loads(
        ok(
            taskorch(
                "task",
                "add",
                BUG_TEXT,
                "--repo",
                url(origin),
                "--base-branch",
                "develop",
                "--merge",
                "auto",
                "--json",
                home=home,
            )
        )
    )
    assert added["metadata"] == {
        "repo": url(origin),
        "base_branch": "develop",
        "merge_policy": "auto",
    }
    shown = ok(taskorch("task", "show", "1", home=home))
    assert f"repository  {url(origin)}" in shown
    assert "base branch develop" in shown
    final = json.loads(ok(taskorch("process", "1", "--agent", "sim", "--json", home=home)))
    assert final["state"] == "merged"
    assert final["target"] == {
        "repo": url(origin),
        "base_branch": "develop",
        "merge_policy": "auto",
    }
    assert tip(origin) == main_before
    assert tip(origin, "develop") == final["result"]["base_commit"]
    assert "simulated: bug-001-fix" in git(origin, "log", "--format=%s", "develop")


def test_bad_targets_are_one_line_errors(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    origin = bare_origin(tmp_path)
    cases = [
        (["--merge", "later"], "merge policy 'later' is not one of: auto, approve"),
        (["--repo", "https://me:secret@example.com/app.git"], "carries a password"),
        (["--repo", "ftp://example.com/app.git"], "unknown scheme 'ftp'"),
        (["--repo", url(tmp_path / "nothing.git")], "git ls-remote failed"),
        (["--repo", url(origin), "--base-branch", "release"], "'release' does not exist"),
        (["--repo", str(tmp_path)], "not a git repository"),
        (["--base-branch", "a..b"], "not a valid branch name"),
    ]
    for args, fragment in cases:
        for command in (["run", LIST_TEXT], ["task", "add", LIST_TEXT]):
            result = taskorch(*command, *args, home=home)
            assert result.returncode == 1, (command, args)
            assert "Traceback" not in result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (command, args, result.stderr)
            assert fragment in lines[0], (command, args, result.stderr)
    assert json.loads(ok(taskorch("task", "list", "--json", home=home))) == []
    assert "secret" not in ok(taskorch("status", home=home))


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_the_workflow_stays_resumable_and_how(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["TASKORCH_HOME"] = str(home)
    argv = ["run", "Add a health check endpoint", "--agent", "sim", "--sim-duration", "10"]
    with subprocess.Popen(
        [sys.executable, "-m", "taskorch", *argv],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,  # read as it comes; communicate() below takes the rest
        # As from a terminal: a suite started in the background (`cmd &`, as CI may) passes on
        # an ignored SIGINT, and Python leaves it ignored.
        preexec_fn=_interruptible,
    ) as proc:
        assert proc.stderr is not None
        said = b""
        deadline = time.monotonic() + 60
        # The interrupt lands while the subtask's agent is at work (10 s): after its progress
        # line says it runs, however long planning and git took on a loaded machine.
        while b"attempt 1" not in said and time.monotonic() < deadline:
            said += os.read(proc.stderr.fileno(), 4096) or b""
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest = proc.communicate(timeout=60)[1]
    err = (said + rest).decode()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert "error: interrupted" in lines
    [hint] = [line for line in lines if "resumable" in line]
    workflow_id = hint.split()[0]
    assert hint.endswith(
        f"and resumable: taskorch resume {workflow_id} (or stop it: taskorch cancel {workflow_id})"
    )
    resumed = json.loads(ok(taskorch("resume", workflow_id, "--json", home=home)))
    assert resumed["state"] == "merged"


def test_the_specifications_timeout_is_milliseconds_and_stored_as_a_deadline(
    tmp_path: Path,
) -> None:
    """``process 1 --timeout 600000`` (the specification's milliseconds) gives up after ten
    minutes: the deadline is stored with the workflow, so a resume or a server honours it too."""
    home = tmp_path / ".taskorch"
    ok(taskorch("task", "add", LIST_TEXT, home=home))
    before = datetime.now(UTC)
    final = json.loads(ok(taskorch("process", "1", "--timeout", "600000", "--json", home=home)))
    assert final["state"] == "merged"
    started = next(h for h in final["history"] if h["to"] == "pending")
    assert started  # the options are in the workflow's metadata, read back from the store
    stored = _options(home, final["workflow_id"])
    deadline = datetime.fromisoformat(stored["deadline"])
    assert timedelta(minutes=10) <= deadline - before <= timedelta(minutes=10, seconds=30)
    for bad in ("soon", "0", "inf"):
        refused = taskorch("process", "1", "--timeout", bad, home=home)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: --timeout")
        assert len(refused.stderr.strip().splitlines()) == 1


def test_a_workflow_past_its_deadline_is_given_up_when_carried_on(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    env = {**os.environ, "TASKORCH_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    ok(taskorch("task", "add", LIST_TEXT, home=home))
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskorch",
            "process",
            "1",
            "--timeout",
            "3s",
            "--sim-duration",
            "30",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as proc:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (home / "events.jsonl").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # before its own timer could fire
        proc.wait(timeout=10)
    time.sleep(3)  # the stored deadline passes while nobody carries the workflow
    resumed = taskorch("resume", "--json", home=home)
    assert json.loads(resumed.stdout)["state"] == "cancelled", resumed.stderr


def _options(home: Path, workflow_id: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = await open_store(f"sqlite:///{home / 'taskorch.db'}")
        try:
            options: dict[str, str] = (await store.get_workflow(workflow_id)).metadata["options"]
            return options
        finally:
            await store.close()

    return asyncio.run(read())


def test_resume_names_the_tasks_no_workflow_took_yet(tmp_path: Path) -> None:
    """A ``batch`` killed before it started its tasks leaves them pending, where ``resume`` (which
    carries workflows) cannot see them: it says which they are and what carries them."""
    home = tmp_path / ".taskorch"
    nothing = taskorch("resume", home=home)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == "error: no unfinished workflows to resume"
    ids = [
        json.loads(ok(taskorch("task", "add", f"w{i} handler", "--json", home=home)))["id"]
        for i in range(2)
    ]
    stopped = taskorch("resume", home=home)
    assert stopped.returncode == 1
    assert "Traceback" not in stopped.stderr
    listed = ",".join(map(str, ids))
    assert f"tasks {listed} were never started: `taskorch batch {listed}` carries them" in (
        " ".join(stopped.stderr.split())
    )
