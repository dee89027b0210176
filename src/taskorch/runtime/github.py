"""Opening, and merging, a real pull request on GitHub through its REST API, for a workflow
branch.

Used when a token and a GitHub repository are configured (``GITHUB_TOKEN``; the repository from
``GITHUB_REPOSITORY=owner/name`` or the ``origin`` remote's URL). The branch is pushed to
``origin`` first. Opening is idempotent: when GitHub answers that a pull request for the branch
already exists, that one is returned. The token is sent only in the Authorization header and
never appears in errors, logs or results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskorch.domain.errors import HostError, WorkspaceError
from taskorch.domain.models import JSONDict
from taskorch.runtime import git as g

if TYPE_CHECKING:
    import httpx

DEFAULT_API_URL = "https://api.github.com"
_REMOTE = re.compile(r"github\.com[:/](?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True, slots=True)
class GitHubConfig:
    token: str
    repository: str | None = None
    """``owner/name``; None: read it from the ``origin`` remote."""
    api_url: str = DEFAULT_API_URL


async def remote_url(repo: Path) -> str | None:
    """The URL of a local repository's own ``origin`` remote (where its pull requests live)."""
    url = (await g.git(repo, "remote", "get-url", "origin", check=False)).stdout.strip()
    return url or None


async def repository_of(repo: Path, configured: str | None) -> str:
    if configured:
        return configured
    url = await remote_url(repo) or ""
    match = _REMOTE.search(url)
    if not match:
        raise WorkspaceError(
            "no GitHub repository: set GITHUB_REPOSITORY=owner/name or add a GitHub 'origin' remote"
        )
    return f"{match['owner']}/{match['name']}"


async def open_pull_request(
    config: GitHubConfig, repo: Path, *, head: str, base: str, title: str, body: str
) -> JSONDict:
    """Push ``head`` to origin and open (or find) its pull request against ``base``."""
    repository = await repository_of(repo, config.repository)
    await g.git(repo, "push", "--quiet", "origin", f"{head}:refs/heads/{head}")
    owner = repository.split("/", 1)[0]
    import httpx  # (only with a GitHub token: not for every workflow)

    async with _client(config) as client:
        try:
            response = await client.post(
                f"/repos/{repository}/pulls",
                json={"title": title, "head": head, "base": base, "body": body},
            )
            if response.status_code == 422 and "already exists" in response.text:
                listing = await client.get(
                    f"/repos/{repository}/pulls",
                    params={"head": f"{owner}:{head}", "base": base, "state": "open"},
                )
                listing.raise_for_status()
                found: list[dict[str, Any]] = listing.json()
                if found:
                    return _record(found[0], repository)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise WorkspaceError(
                f"GitHub refused the pull request for {head} on {repository}: "
                f"HTTP {exc.response.status_code} {_message(exc.response)}"
            ) from None
        except httpx.HTTPError as exc:
            raise WorkspaceError(
                f"cannot reach GitHub at {config.api_url}: {type(exc).__name__}"
            ) from None
        return _record(response.json(), repository)


async def merge_pull_request(
    config: GitHubConfig, repository: str, number: int, head_sha: str, title: str
) -> JSONDict:
    """Merge pull request ``number`` on GitHub (a merge commit), only if its head is still
    ``head_sha``; idempotent: one merged already is reported as it is. Returns ``{"number",
    "sha"}`` with the merge commit GitHub made."""
    import httpx  # (only with a GitHub token: not for every workflow)

    async with _client(config) as client:
        try:
            response = await client.put(
                f"/repos/{repository}/pulls/{number}/merge",
                json={"merge_method": "merge", "sha": head_sha, "commit_title": title},
            )
            if response.status_code == 405:  # not mergeable: merged already, or it conflicts
                pull = await client.get(f"/repos/{repository}/pulls/{number}")
                pull.raise_for_status()
                found: dict[str, Any] = pull.json()
                if found.get("merged"):
                    return {"number": number, "sha": found.get("merge_commit_sha")}
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise WorkspaceError(
                f"GitHub refused to merge pull request #{number} on {repository}: "
                f"HTTP {exc.response.status_code} {_message(exc.response)}"
            ) from None
        except httpx.HTTPError as exc:
            raise HostError(
                f"cannot reach GitHub at {config.api_url}: {type(exc).__name__}"
            ) from None
        return {"number": number, "sha": response.json().get("sha")}


def _client(config: GitHubConfig) -> httpx.AsyncClient:
    import httpx

    headers = {
        "Authorization": f"Bearer {config.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    return httpx.AsyncClient(base_url=config.api_url, headers=headers, timeout=30)


def _record(pull: dict[str, Any], repository: str) -> JSONDict:
    return {
        "number": pull.get("number"),
        "url": pull.get("html_url"),
        "repository": repository,
        "state": pull.get("state"),
    }


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.text[:200]
