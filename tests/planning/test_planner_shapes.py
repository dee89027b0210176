"""The heuristic planner on the failure classes of the planning audit, each with requirements
written for these tests (several per class, worded differently), never the audit's own."""

from __future__ import annotations

import itertools
import re

import pytest

from taskorch.cli.parse import render
from taskorch.domain.plan import Domain, Plan, PlanSubtask, WorkerType
from taskorch.planning import HeuristicPlanner, TaskNLP
from taskorch.planning.notices import ITEMS_BEYOND_LIMIT
from taskorch.planning.text import ACTION_VERBS, MAX_ITEMS


def plan_of(text: str) -> Plan:
    return HeuristicPlanner().plan(text, task_ref="task-7")


def stage_of(plan: Plan, subtask: PlanSubtask) -> int:
    for index, ids in enumerate(plan.execution_plan.values()):
        if subtask.subtask_id in ids:
            return index
    raise AssertionError(f"{subtask.subtask_id} is in no stage")


def waits_for(plan: Plan, later: PlanSubtask, earlier: PlanSubtask) -> bool:
    """Does ``later`` depend on ``earlier``, directly or through other subtasks?"""
    seen, todo = set(), list(later.dependencies)
    while todo:
        current = todo.pop()
        if current == earlier.subtask_id:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(plan.subtask(current).dependencies)
    return False


def of_kind(plan: Plan, kind: WorkerType) -> list[PlanSubtask]:
    return [s for s in plan.subtasks if s.worker_type is kind]


# --- 1. two or more components plus tests ----------------------------------------------------

COMPONENTS = [
    (
        "Add request timeouts to the payment client and the shipping client, with integration "
        "tests",
        ["payment client", "shipping client"],
    ),
    (
        "Refactor the CSV exporter, the PDF exporter and the XML exporter and write unit tests "
        "for them",
        ["CSV exporter", "PDF exporter", "XML exporter"],
    ),
    ("Update the auth and billing services to log request ids; add tests", ["auth", "billing"]),
    ("Port src/cache.py and src/queue.py to asyncio and test both", ["cache.py", "queue.py"]),
    (
        "Add rate limiting to both the public API and the admin API, and cover it with tests",
        ["public API", "admin API"],
    ),
]


@pytest.mark.parametrize(("text", "names"), COMPONENTS)
def test_each_component_is_its_own_subtask_and_the_tests_wait_for_all(
    text: str, names: list[str]
) -> None:
    plan = plan_of(text)
    built = of_kind(plan, WorkerType.IMPLEMENTATION)
    for name in names:
        owners = [s for s in built if name in s.title]
        assert len(owners) == 1, f"{name!r} has one subtask of its own: {[s.title for s in built]}"
    assert len({stage_of(plan, s) for s in built}) == 1, "the components are built in parallel"
    tests = of_kind(plan, WorkerType.TEST)
    assert tests
    assert all(waits_for(plan, t, b) for t in tests for b in built)


@pytest.mark.parametrize("text", ["Add login and logout", "Fix the parser and the lexer"])
def test_one_change_without_other_work_stays_one_subtask(text: str) -> None:
    assert len(plan_of(text).subtasks) == 1


# --- 2. CI pipelines -------------------------------------------------------------------------

CI = [
    (
        "Set up a GitLab CI pipeline that runs unit tests, a security scan and a Docker build on "
        "merge requests",
        ["unit tests", "security scan", "Docker build"],
    ),
    ("Add a GitHub Actions workflow to run pytest, mypy and ruff on every push", ["mypy", "ruff"]),
    ("Configure CI for the docs site including link checks and a spelling check", ["link checks"]),
    ("Create a Jenkins pipeline for the mobile app", []),
    ("Introduce a CircleCI pipeline with build, test and deploy stages", ["build", "deploy"]),
]


@pytest.mark.parametrize(("text", "jobs"), CI)
def test_a_ci_pipeline_is_planned_in_stages_owned_by_cicd(text: str, jobs: list[str]) -> None:
    plan = plan_of(text)
    assert len(plan.subtasks) >= 3
    assert len(plan.execution_plan) >= 3
    config = next(s for s in plan.subtasks if "configuration" in s.title)
    assert config.assigned_to is Domain.CICD
    assert config.worker_type is WorkerType.IMPLEMENTATION
    check = of_kind(plan, WorkerType.TEST)[-1]
    assert check.assigned_to is Domain.CICD
    assert waits_for(plan, check, config)
    for job in jobs:
        job_work = next(s for s in plan.subtasks if job in s.title)
        assert job_work.assigned_to is Domain.CICD
        assert waits_for(plan, job_work, config)
        assert waits_for(plan, check, job_work)
    assert not [s for s in plan.subtasks if s.worker_type is WorkerType.PLANNER and jobs]


@pytest.mark.parametrize(
    "text", ["Fix the flaky test in the CI pipeline", "Add a timeout to the Jenkins pipeline"]
)
def test_a_change_inside_a_pipeline_stays_one_subtask(text: str) -> None:
    assert len(plan_of(text).subtasks) == 1


# --- 3. documentation only -------------------------------------------------------------------

DOCS = [
    "Write a deployment guide covering Docker, Kubernetes and bare metal installs",
    "Document the REST API: authentication, pagination, error codes and rate limits",
    "Write the README, a contributing guide and a changelog",
    "Create an operator runbook including backups and restores",
    "Document the importer. Then document the exporter",
    "Write a migration guide for v2 including breaking changes, deprecations and upgrade steps",
]


@pytest.mark.parametrize("text", DOCS)
def test_documentation_work_is_owned_by_docs_and_gets_no_development_test(text: str) -> None:
    plan = plan_of(text)
    assert {s.assigned_to for s in plan.subtasks} == {Domain.DOCS}, [
        (s.title, s.assigned_to.value) for s in plan.subtasks
    ]
    assert not of_kind(plan, WorkerType.TEST)
    assert not of_kind(plan, WorkerType.IMPLEMENTATION)


# --- 4. dependency upgrades for security advisories ------------------------------------------

UPGRADES = [
    ("Upgrade Django to 4.2.11 to fix CVE-2024-27351", "Django"),
    ("Bump the npm packages flagged by Dependabot security alerts", "npm packages"),
    ("Fix CVE-2023-44487 by upgrading grpcio and h2 in requirements.txt", "grpcio and h2"),
    ("Update vulnerable dependencies in package.json and add a regression test", "dependencies"),
]


@pytest.mark.parametrize(("text", "packages"), UPGRADES)
def test_a_security_upgrade_is_audited_and_upgraded_by_security_without_design(
    text: str, packages: str
) -> None:
    plan = plan_of(text)
    assert not of_kind(plan, WorkerType.PLANNER), "nothing to design"
    upgrade = next(s for s in of_kind(plan, WorkerType.IMPLEMENTATION) if packages in s.title)
    assert upgrade.assigned_to is Domain.SECURITY
    audits = of_kind(plan, WorkerType.AUDIT)
    assert audits
    assert all(a.assigned_to is Domain.SECURITY for a in audits)
    assert any(waits_for(plan, upgrade, a) for a in audits), "audited before the upgrade"
    tests = of_kind(plan, WorkerType.TEST)
    assert tests
    assert all(waits_for(plan, t, upgrade) for t in tests)


@pytest.mark.parametrize(
    "text",
    ["Upgrade the test runner to the latest pytest", "Update the docs on how we triage CVEs"],
)
def test_an_upgrade_without_an_advisory_is_not_a_security_plan(text: str) -> None:
    plan = plan_of(text)
    assert not of_kind(plan, WorkerType.AUDIT)
    assert all(s.assigned_to is not Domain.SECURITY for s in plan.subtasks)


# --- 5. migrations ---------------------------------------------------------------------------

MIGRATIONS = [
    (
        "Add a priority column to tasks, update the Task model and backfill existing rows",
        ["priority column", "Task model", "existing rows"],
    ),
    (
        "Migrate user sessions to PostgreSQL including the sessions table, the ORM entities and "
        "a data migration of existing sessions",
        ["sessions table", "ORM entities", "data migration"],
    ),
    (
        "Split the name field: add the full_name columns, update the Customer entity, migrate the "
        "existing data and drop the old name column",
        ["full_name columns", "Customer entity", "existing data", "old name column"],
    ),
    (
        "Copy the archived orders into the new table and create the orders_archive table, "
        "also update the OrderArchive model",
        ["orders_archive table", "OrderArchive model", "archived orders"],
    ),
    (
        "Create the invoices table and the Invoice model, then backfill invoices from the "
        "legacy system",
        ["invoices table", "Invoice model", "legacy system"],
    ),
]


@pytest.mark.parametrize(("text", "steps"), MIGRATIONS)
def test_migration_steps_run_in_their_dependent_order(text: str, steps: list[str]) -> None:
    plan = plan_of(text)
    built = of_kind(plan, WorkerType.IMPLEMENTATION)
    ordered = [next(s for s in built if step in s.title) for step in steps]
    for earlier, later in itertools.pairwise(ordered):
        assert waits_for(plan, later, earlier), f"{later.title!r} waits for {earlier.title!r}"


def test_independent_changes_of_one_group_still_run_in_parallel() -> None:
    plan = plan_of("Build a shop including a cart page, a search page and a checkout page")
    built = of_kind(plan, WorkerType.IMPLEMENTATION)
    assert len(built) == 3
    assert len({stage_of(plan, s) for s in built}) == 1


# --- 7. explicit step lists ------------------------------------------------------------------

STEP_LISTS = [
    (
        "Ship the export button: design -> build -> test -> document",
        [WorkerType.PLANNER, WorkerType.IMPLEMENTATION, WorkerType.TEST, WorkerType.DOCUMENTATION],
    ),
    (
        "Payments refund flow: design ⇒ implement ⇒ security audit ⇒ release",
        [WorkerType.PLANNER, WorkerType.IMPLEMENTATION, WorkerType.AUDIT, WorkerType.DEPLOY],
    ),
    (
        "In this order: write the schema, generate the client, update the docs",
        [WorkerType.IMPLEMENTATION, WorkerType.IMPLEMENTATION, WorkerType.DOCUMENTATION],
    ),
    (
        "Steps:\n1. Add the config loader\n2. Write tests for it\n3. Document the settings",
        [WorkerType.IMPLEMENTATION, WorkerType.TEST, WorkerType.DOCUMENTATION],
    ),
    (
        "Write the operator docs in this order: overview, upgrades, backups",
        [WorkerType.DOCUMENTATION, WorkerType.DOCUMENTATION, WorkerType.DOCUMENTATION],
    ),
    (
        "Review the API → fix what the review finds → release 2.1",
        [WorkerType.AUDIT, WorkerType.IMPLEMENTATION, WorkerType.DEPLOY],
    ),
]


@pytest.mark.parametrize(("text", "kinds"), STEP_LISTS)
def test_explicit_steps_are_stages_in_their_order(text: str, kinds: list[WorkerType]) -> None:
    plan = plan_of(text)
    assert len(plan.subtasks) >= len(kinds)
    # the steps, in the requirement's order, each in a later stage than the one before
    stages: list[int] = []
    for kind in kinds:
        candidates = [
            s for s in of_kind(plan, kind) if not stages or stage_of(plan, s) > stages[-1]
        ]
        assert candidates, f"no {kind.value} step after stage {stages[-1:]}"
        stages.append(stage_of(plan, candidates[0]))


# --- 6. readable titles ----------------------------------------------------------------------

_TITLE_VERBS = ACTION_VERBS | {"run", "carry", "re-scan", "reproduce", "outline", "plan", "define"}
_PREDICATES = {"pass", "passes", "fail", "fails", "succeed", "succeeds", "work", "works", "is"}
_SAME_WORK = {
    "design": {"design", "architecture"},
    "test": {"test", "tests", "testing"},
    "document": {"document", "documentation", "docs"},
    "audit": {"audit", "review"},
    "implement": {"implement", "implementation"},
    "deploy": {"deploy", "deployment"},
}
_PLANNER_WORDS = {
    "the",
    "of",
    "a",
    "an",
    "to",
    "in",
    "on",
    "for",
    "and",
    "or",
    "against",
    "with",
    "by",
    "it",
    "after",
    "configuration",
    "job",
    "jobs",
    "stage",
    "stages",
    "branch",
    "known",
    "vulnerabilities",
    "patched",
    "versions",
    "upgraded",
    "suite",
    "changes",
    "migration",
    "refactoring",
    "update",
    "upgrade",
    "fix",
    "split",
    "port",
    "removal",
    "conversion",
    "deployment",
    "release",
    "part",
    "backend",
    "frontend",
    "security",
    "audit",
    "verify",
    "test",
    "tests",
    "run",
    "publication",
    "renaming",
    "replacement",
    "optimisation",
    "improvement",
    "extension",
    "integration",
    "installation",
    "patch",
    "merge",
    "rewrite",
    "move",
}


def unreadable(title: str, requirement: str) -> str | None:
    """Why ``title`` is a mechanical paste rather than a verb and its object, or None.

    A readable title (1) starts with an imperative verb (or is "Security audit of X"), (2) has
    an object, (3) whose last word is not a predicate ("Design smoke tests pass" pastes a clause),
    (4) does not name its own kind of work twice ("Test tests", "Design architecture"), (5) never
    repeats a word back to back, and (6) takes every other word from the requirement.
    """
    words = re.findall(r"[\w][\w.'/-]*", title.replace("…", ""))
    first = words[0].lower()
    if first == "security":
        if not title.startswith("Security audit of "):
            return "starts with 'Security' but is not 'Security audit of ...'"
    elif first not in _TITLE_VERBS:
        return f"does not start with a verb: {first!r}"
    body = [w.lower() for w in words[1:]]
    if not body:
        return "has no object"
    if body[-1] in _PREDICATES and not title.endswith("…"):
        return f"ends in the predicate {body[-1]!r}: a clause pasted as an object"
    if body[0] in _SAME_WORK.get(first, set()):
        return f"names its kind of work twice: {first!r} {body[0]!r}"
    if any(a == b for a, b in itertools.pairwise(body)):
        return "repeats a word"
    given = {w.lower().strip(".") for w in re.findall(r"[\w][\w.'/-]*", requirement)}
    known = given | {w[:-1] for w in given if w.endswith("s")}  # "services" names a service
    foreign = [w for w in body if w not in known and w not in _PLANNER_WORDS]
    if foreign:
        return f"has words the requirement does not: {foreign}"
    return None


TITLE_REQUIREMENTS = [
    "Deploy the billing service to production once the smoke tests pass",
    "Publish the SDK after the end-to-end tests succeed",
    "Add SSO login with tests and a security review",
    "Migrate the audit log from Elasticsearch to ClickHouse",
    "Fix the memory leak in the websocket handler and add a regression test",
    *(text for text, _ in COMPONENTS),
    *(text for text, _ in CI),
    *DOCS,
    *(text for text, _ in UPGRADES),
    *(text for text, _ in MIGRATIONS),
    *(text for text, _ in STEP_LISTS),
]


@pytest.mark.parametrize("text", TITLE_REQUIREMENTS)
def test_every_title_is_a_verb_and_its_object_from_the_requirement(text: str) -> None:
    for subtask in plan_of(text).subtasks:
        reason = unreadable(subtask.title, text)
        assert reason is None, f"{subtask.title!r} {reason}"


@pytest.mark.parametrize(
    "pasted",
    ["Design smoke tests pass", "Test tests", "Smoke tests pass", "Implement implement x"],
)
def test_the_readability_check_catches_pasted_titles(pasted: str) -> None:
    assert unreadable(pasted, "Deploy after smoke tests pass; implement x and test it") is not None


# --- 8. beyond the item limit ----------------------------------------------------------------


def many_items(count: int) -> str:
    return "\n".join(f"- add report number {n} to the dashboard" for n in range(count))


async def test_items_beyond_the_limit_are_a_named_warning_everywhere_the_plan_is_shown() -> None:
    async with TaskNLP() as nlp:
        result = await nlp.plan(many_items(MAX_ITEMS + 15))
    (warning,) = result.warnings
    assert warning.code == ITEMS_BEYOND_LIMIT
    assert f"{MAX_ITEMS + 15} items" in warning.message
    assert "left out 15" in warning.message
    assert "'add report number 60 to the dashboard'" in warning.message
    assert ITEMS_BEYOND_LIMIT in result.describe()  # the workflow's "planner" metadata
    shown = " ".join(str(part) for part in render(result).renderables)
    assert ITEMS_BEYOND_LIMIT in shown
    assert "left out 15" in shown


async def test_a_requirement_within_the_limit_has_no_warning() -> None:
    async with TaskNLP() as nlp:
        result = await nlp.plan(many_items(MAX_ITEMS))
        requirements = await nlp.parse_requirements(many_items(MAX_ITEMS))
    assert result.warnings == ()
    assert "warning" not in result.describe()
    assert requirements.warnings == []


async def test_parse_requirements_names_the_items_it_leaves_out() -> None:
    requirements = await TaskNLP().parse_requirements(many_items(MAX_ITEMS + 3))
    assert len(requirements.items) == MAX_ITEMS
    (warning,) = requirements.warnings
    assert warning.startswith(f"{ITEMS_BEYOND_LIMIT}: the requirement has {MAX_ITEMS + 3} items")


async def test_parse_requirements_gives_listed_sections_their_heads_kind() -> None:
    requirements = await TaskNLP().parse_requirements(DOCS[0])
    sections = [i for i in requirements.items if not i.umbrella]
    assert {i.worker_type for i in sections} == {WorkerType.DOCUMENTATION}
    assert {i.domain for i in sections} == {Domain.DOCS}


def test_an_arrow_inside_code_is_not_a_step() -> None:
    assert len(plan_of("Fix the node->next pointer bug in list.c").subtasks) == 1


def test_a_header_line_names_its_list_without_ordering_it() -> None:
    plan = plan_of(
        "Add CSV export to the reports page\n\nAcceptance criteria:\n- exports every column\n"
        "- handles unicode names\n- has tests"
    )
    built = of_kind(plan, WorkerType.IMPLEMENTATION)
    assert len({stage_of(plan, s) for s in built}) == 1, "criteria are not steps"
    assert all("criteria" not in s.title for s in plan.subtasks)
    assert plan.subtasks[0].subtask_id.startswith("csv-")
