"""A local fake of the GitHub REST endpoints taskorch uses: create a pull request, list pull
requests by head, get one, merge one. Real HTTP on 127.0.0.1, so the real httpx client code runs;
with ``git_dir`` (a bare repository standing for GitHub's copy) a merge is a real git merge
there, as GitHub's merge button makes it."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeGitHub:
    def __init__(self, token: str, git_dir: Path | None = None) -> None:
        self.token = token
        self.git_dir = git_dir
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._reply(401, {"message": "Bad credentials"})
                    return False
                return True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, body))
                if not self._authorised():
                    return
                repo = self.path.removeprefix("/repos/").removesuffix("/pulls")
                if any(p["head"]["ref"] == body["head"] for p in fake.pulls):
                    self._reply(
                        422,
                        {
                            "message": "Validation Failed",
                            "errors": [
                                {"message": f"A pull request already exists for {body['head']}."}
                            ],
                        },
                    )
                    return
                number = len(fake.pulls) + 1
                pull = {
                    "number": number,
                    "state": "open",
                    "title": body["title"],
                    "body": body.get("body"),
                    "head": {"ref": body["head"]},
                    "base": {"ref": body["base"]},
                    "html_url": f"https://github.com/{repo}/pull/{number}",
                }
                fake.pulls.append(pull)
                self._reply(201, pull)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("PUT", self.path, body))
                if not self._authorised():
                    return
                number = int(self.path.rsplit("/pulls/", 1)[1].split("/", 1)[0])
                pull = fake.pulls[number - 1]
                if pull.get("merged"):
                    self._reply(405, {"message": "Pull Request is not mergeable"})
                    return
                sha = fake.merge(pull["base"]["ref"], pull["head"]["ref"], body.get("sha"))
                if sha is None:
                    self._reply(409, {"message": "Head branch was modified."})
                    return
                pull |= {"merged": True, "state": "closed", "merge_commit_sha": sha}
                self._reply(200, {"sha": sha, "merged": True, "message": "merged"})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, None))
                if not self._authorised():
                    return
                if "/pulls/" in self.path:
                    number = int(self.path.rsplit("/pulls/", 1)[1])
                    self._reply(200, fake.pulls[number - 1])
                    return
                query = parse_qs(urlsplit(self.path).query)
                head = query.get("head", [""])[0].split(":", 1)[-1]
                self._reply(200, [p for p in fake.pulls if p["head"]["ref"] == head])

        return Handler

    def merge(self, base: str, head: str, expected: str | None) -> str | None:
        """A merge commit of ``head`` into ``base`` in ``git_dir`` (None: the head moved)."""
        assert self.git_dir is not None, "FakeGitHub(git_dir=...) to merge"

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-c", "user.name=GitHub", "-c", "user.email=noreply@github.com", *args],
                cwd=self.git_dir,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()

        head_sha, base_sha = git("rev-parse", f"refs/heads/{head}"), git("rev-parse", base)
        if expected and expected != head_sha:
            return None
        tree = git("merge-tree", "--write-tree", base_sha, head_sha).splitlines()[0]
        merge = git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m", f"Merge {head}")
        git("update-ref", f"refs/heads/{base}", merge, base_sha)
        return merge
