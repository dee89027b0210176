"""Validation: the test command (pass, fail, timeout, skipped) and the working-spec checks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from taskorch.runtime.validation import (
    FindingKind,
    TestRun,
    TestStatus,
    ValidationReport,
    run_test_command,
    working_spec_check,
)

PY = sys.executable


async def test_a_passing_command(tmp_path: Path) -> None:
    run = await run_test_command([PY, "-c", "print('3 passed')"], tmp_path, 30)
    assert run.status is TestStatus.PASSED
    assert run.ok
    assert run.returncode == 0
    assert "3 passed" in run.output_tail
    assert run.summary.startswith("tests passed:")


async def test_a_failing_command_keeps_the_tail_of_its_output(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(2000): print('line', i)\nsys.exit('1 failed')"
    run = await run_test_command([PY, "-c", script], tmp_path, 30, tail_chars=200)
    assert run.status is TestStatus.FAILED
    assert not run.ok
    assert run.returncode == 1
    assert run.reason == "exit code 1"
    assert run.output_tail.endswith("1 failed\n")
    assert "line 1999" in run.output_tail
    assert len(run.output_tail) <= 201


async def test_the_command_runs_in_the_given_directory(tmp_path: Path) -> None:
    run = await run_test_command([PY, "-c", "import os; print(os.getcwd())"], tmp_path, 30)
    assert run.output_tail.strip() == str(tmp_path)


async def test_a_command_past_its_timeout_fails_with_the_reason(tmp_path: Path) -> None:
    started = time.monotonic()
    run = await run_test_command([PY, "-c", "import time; time.sleep(30)"], tmp_path, 0.5)
    assert time.monotonic() - started < 10
    assert run.status is TestStatus.FAILED
    assert run.timed_out
    assert run.reason.startswith("timed out after 0.5 s")


async def test_no_command_is_skipped_and_says_so(tmp_path: Path) -> None:
    nothing: list[list[str] | None] = [None, []]
    for argv in nothing:
        run = await run_test_command(argv, tmp_path, 30)
        assert run.status is TestStatus.SKIPPED
        assert run.ok
        assert run.summary == "tests skipped: no test command is configured"


async def test_a_missing_executable_or_directory_fails_with_the_reason(tmp_path: Path) -> None:
    run = await run_test_command(["no-such-test-runner-xyz"], tmp_path, 30)
    assert run.status is TestStatus.FAILED
    assert "test command not found: 'no-such-test-runner-xyz'" in run.reason
    gone = await run_test_command([PY, "-V"], tmp_path / "gone", 30)
    assert gone.status is TestStatus.FAILED
    assert "does not exist" in gone.reason


def test_files_outside_the_declared_scope_are_flagged_by_subtask() -> None:
    findings = working_spec_check(
        {"api": ["src/api.py", "tests/"], "docs": ["docs/*.md"], "fix-1": []},
        {
            "api": ["src/api.py", "tests/test_api.py", "setup.cfg"],
            "docs": ["docs/api.md"],
            "fix-1": ["anything.py"],
        },
    )
    assert [(f.kind, f.subtask, f.files) for f in findings] == [
        (FindingKind.OUT_OF_SCOPE, "api", ["setup.cfg"])
    ]
    assert not findings[0].blocking
    assert "subtask api changed files outside its declared scope" in str(findings[0])
    strict = working_spec_check({"api": ["src/api.py"]}, {"api": ["x.py"]}, strict_scope=True)
    assert strict[0].blocking


def test_file_and_line_budgets_block() -> None:
    findings = working_spec_check(
        {"big": []},
        {"big": [f"f{i}.py" for i in range(4)], "small": ["a.py"]},
        max_files=3,
        max_lines=100,
        lines_changed={"big": 500, "small": 10},
    )
    assert [(f.kind, f.subtask, f.blocking) for f in findings] == [
        (FindingKind.FILE_BUDGET, "big", True),
        (FindingKind.LINE_BUDGET, "big", True),
    ]
    off = working_spec_check({}, {"big": ["a"] * 50}, max_files=None, max_lines=None)
    assert off == []


def test_a_file_changed_by_two_subtasks_without_both_declaring_it_is_flagged() -> None:
    findings = working_spec_check(
        {"a": ["README.md"], "b": ["docs/b.md"]},
        {"a": ["README.md"], "b": ["docs/b.md", "README.md"]},
    )
    kinds = [f.kind for f in findings]
    assert kinds == [FindingKind.OUT_OF_SCOPE, FindingKind.UNDECLARED_OVERLAP]
    assert findings[1].files == ["README.md"]
    assert "not declared by b" in findings[1].message
    declared_both = working_spec_check({"a": ["x"], "b": ["x"]}, {"a": ["x"], "b": ["x"]})
    assert declared_both == []


def test_the_report_passes_only_without_failures_or_blocking_findings() -> None:
    passed = TestRun(TestStatus.PASSED, ["pytest"], 0, 1.0, "ok")
    skipped = TestRun(TestStatus.SKIPPED, [], reason="no test command is configured")
    failed = TestRun(TestStatus.FAILED, ["pytest"], 1, 1.0, "boom", reason="exit code 1")
    warning = working_spec_check({"a": ["x"]}, {"a": ["y"]})
    blocking = working_spec_check({}, {"a": ["1", "2"]}, max_files=1)

    assert ValidationReport(passed).passed
    assert ValidationReport(skipped, warning).passed
    assert not ValidationReport(failed).passed
    assert not ValidationReport(passed, blocking).passed
    report = ValidationReport(failed, warning + blocking)
    assert report.summary == (
        "validation failed: tests failed: pytest: exit code 1; 1 blocking finding(s); 1 warning(s)"
    )
    body = report.to_json()
    assert body["passed"] is False
    assert body["test"]["output_tail"] == "boom"
    assert [f["kind"] for f in body["findings"]] == ["out_of_scope", "file_budget"]
