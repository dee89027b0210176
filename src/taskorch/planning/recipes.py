"""Stages for the requirement shapes of :mod:`taskorch.planning.shapes`.

- **A CI pipeline** is its configuration, then one job per job the requirement names (in
  parallel), then a verification run, all owned by the ``cicd`` master. Without named jobs the
  pipeline's stages and triggers are defined first.
- **Dependencies upgraded for security advisories**: a security audit lists the affected packages,
  the upgrade follows (owned by ``security``), then the test suite and a re-scan run in parallel.
  No design step: there is nothing to design.
- **One change to several components** ("add retries to the client and the scheduler, with
  tests") is one subtask per component, in parallel.
- **Migration steps** named together run in their dependent order: schema, models, data,
  cut-over, clean-up.
"""

from __future__ import annotations

import re
from itertools import groupby

from taskorch.domain.plan import Domain, WorkerType
from taskorch.planning.classify import domain_of, phase_rank
from taskorch.planning.shapes import ci_name, cut_clause, migration_step
from taskorch.planning.text import Item, extract_files, shorten
from taskorch.planning.wording import TITLE_CHARS, capitalised, slug_of, subject_of
from taskorch.planning.work import Work, bounded

_DEPENDENCY_NOUN = re.compile(
    r"\s+(?:with|for|that|which|to|in|across|because|so|from|on|by|flagged|listed|reported|"
    r"affected|named|mentioned)\s+.*$",
    re.IGNORECASE,
)
_UPGRADED = re.compile(r"\b(?:upgrad|bump|updat)\w*\s+(?P<rest>.+)$", re.IGNORECASE)


def _work(
    item: Item, kind: WorkerType, domain: Domain, title: str, slug: str, step: int = 0
) -> Work:
    return Work(
        key=(item.group, phase_rank(kind), step),
        worker_type=kind,
        domain=domain,
        title=shorten(title, TITLE_CHARS),
        label=title,
        slug=slug,
        description="",
        source=item.text,
        shaped=True,
    )


def ci_works(item: Item, jobs: list[str]) -> list[Work]:
    """Configuration, the named jobs in parallel, a verification run."""
    name = ci_name(subject_of(item.text))
    whole = bounded(item.text)
    config = _work(
        item, WorkerType.IMPLEMENTATION, Domain.CICD, f"Write the {name} configuration", "ci-config"
    )
    config.description = f"{whole}. Write the pipeline file: triggers, runners, caching."
    config.files = extract_files(item.text)
    config.criteria = (
        f"The {name} configuration is valid (the CI system accepts it) and runs on the "
        "triggers the requirement names"
    )
    works = [config]
    if not jobs:
        define = _work(
            item, WorkerType.PLANNER, Domain.CICD, f"Define the stages of the {name}", "ci-stages"
        )
        define.description = f"{whole}. Decide the stages, triggers and secrets it needs."
        define.criteria = "Every stage, its trigger and the secrets it needs are listed"
        works.insert(0, define)
    for job in jobs:
        added = _work(
            item,
            WorkerType.IMPLEMENTATION,
            Domain.CICD,
            f"Add the {job} job to the {name}",
            slug_of(f"{job} job"),
            step=1,
        )
        added.description = f"{whole}. This subtask: the {job} job."
        added.criteria = f"The {job} job runs in the {name} and fails the run when {job} fails"
        works.append(added)
    verify = _work(item, WorkerType.TEST, Domain.CICD, f"Verify the {name} on a branch", "ci-check")
    verify.description = (
        f"{whole}. Push a branch: every job passes; push a deliberately broken commit: the "
        "right job fails."
    )
    verify.criteria = "A run on a branch passes every job and a broken commit fails the run"
    return [*works, verify]


def upgrade_works(item: Item, *, with_tests: bool) -> list[Work]:
    """Audit, upgrade, then the test suite (unless the requirement names its own) and a
    re-scan in parallel."""
    upgraded = _UPGRADED.search(item.text[1:])  # "fix CVE-1 by upgrading grpcio": grpcio
    phrase = subject_of(f"upgrade {upgraded['rest']}") if upgraded else subject_of(item.text)
    deps = _DEPENDENCY_NOUN.sub("", cut_clause(phrase)) or "dependencies"
    whole = bounded(item.text)
    audit = _work(
        item, WorkerType.AUDIT, Domain.SECURITY, f"Audit {deps} for known vulnerabilities", "audit"
    )
    audit.key = (item.group, phase_rank(WorkerType.PLANNER), 0)
    audit.description = f"{whole}. List the affected packages, advisories and fixed versions."
    audit.criteria = (
        "Every affected package is listed with its advisory id (CVE or GHSA), installed version "
        "and first fixed version"
    )
    upgrade = _work(
        item, WorkerType.IMPLEMENTATION, Domain.SECURITY, f"Upgrade {deps} to patched versions",
        "upgrade",
    )  # fmt: skip
    upgrade.description = f"{whole}."
    upgrade.files = extract_files(item.text)
    upgrade.criteria = (
        f"{capitalised(deps)} are at versions with no known advisory, the lockfile is updated "
        "and the project builds"
    )
    rescan = _work(
        item, WorkerType.AUDIT, Domain.SECURITY, f"Re-scan {deps} for known vulnerabilities",
        "rescan",
    )  # fmt: skip
    rescan.key = (item.group, phase_rank(WorkerType.TEST), 0)
    rescan.description = f"{whole}. Run the dependency audit again after the upgrade."
    rescan.criteria = f"A dependency audit reports no known advisory for {deps}"
    works = [audit, upgrade, rescan]
    if with_tests:
        tests = _work(
            item, WorkerType.TEST, Domain.DEVELOPMENT,
            f"Run the test suite against the upgraded {deps}", "tests",
        )  # fmt: skip
        tests.description = f"{whole}. Fix what the new versions break."
        tests.criteria = "The whole test suite passes on the upgraded versions"
        works.insert(2, tests)
    return works


def component_works(item: Item, prefix: str, parts: list[str], suffix: str) -> list[Work]:
    """One subtask per component the item names, sharing its key (in parallel)."""
    works: list[Work] = []
    for part in parts:
        title = capitalised(" ".join(w for w in (prefix, part, suffix) if w).strip(" ,;:"))
        label = subject_of(f"add {part}")
        owner = domain_of(item.text, WorkerType.IMPLEMENTATION)
        work = _work(item, WorkerType.IMPLEMENTATION, owner, title, slug_of(label))
        work.label = label
        work.shaped = False  # components get the usual design and tests around them
        work.description = f"{bounded(item.text)}. This subtask: {part}."
        work.source = title  # its own migration step: "create the table", "create the model"
        work.files = extract_files(part)
        works.append(work)
    return works


def order_migration(works: list[Work]) -> None:
    """Implementation work of one group that names two or more migration steps (schema, models,
    data, cut-over, clean-up) runs in that order instead of in parallel."""
    building = [w for w in works if w.worker_type is WorkerType.IMPLEMENTATION and w.source]
    building.sort(key=lambda w: w.key[0])
    for _, same_group in groupby(building, key=lambda w: w.key[0]):
        group = list(same_group)
        steps = [migration_step(w.source) for w in group]
        if len({s for s in steps if s}) < 2:
            continue
        for work, step in zip(group, steps, strict=True):
            work.key = (work.key[0], work.key[1], step or 1)  # unnamed steps beside the schema
