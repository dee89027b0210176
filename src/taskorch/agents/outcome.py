"""Judging what an agent said: terminal text cleanup, "waiting for human input", failure classes.

Shared by the adapters. The rules are deliberately simple and documented:

- :func:`clean_text`: lines right-stripped (terminal text is padded to the screen width), leading
  and trailing blank lines dropped.
- :func:`waiting_question`: the reply's last non-empty line is a question to the user (ends with
  ``?``) or a confirmation prompt (``(y/n)``, ``[Y/n]``, ``(Y)es/(N)o``, "press enter"). Adapters
  raise :class:`NeedsInputError` only when such a reply comes with no evidence of work (no change
  and no commit in a git worktree); a reply that asks "anything else?" after doing the work is a
  success.
- :func:`classify_failure`: a failed run's output mapped to an error class by its wording
  (auth, a model request the API rejected, rate limit or usage limit, service unavailable,
  network; otherwise "agent"). A rate limit opens the agent's rate window
  (:mod:`taskorch.domain.rate_window`) rather than using up a try. Runtime error names count
  in their one-word forms too (Bun's ``ConnectionRefused``,
  Node's ``ECONNREFUSED``, ``ETIMEDOUT``, ``ENOTFOUND``, Python's ``ConnectionResetError``).
- :func:`model_rejection`: the model API refused the request itself (HTTP 400/404/413/422:
  ``invalid_request_error``, a prompt too long, an unknown model). The same request is refused
  again, so it is not retryable, even when the agent exits 0 after printing it.
"""

from __future__ import annotations

import re

from taskorch.domain.errors import NeedsInputError as NeedsInputError  # where adapters look for it
from taskorch.domain.retry import ErrorClass

_PROMPT = re.compile(
    r"\((?:y/n|yes/no)\)|\[(?:y/n|yes/no)\]|\(y\)es/\(n\)o|press enter|\?\s*$", re.IGNORECASE
)

_AUTH = re.compile(
    r"invalid (?:x-)?api[ _-]?key|incorrect api key|authentication[ _]?error|unauthori[sz]ed|"
    r"\b401\b|"
    r"not logged in|please run /login|missing api key|api key (?:is )?(?:not set|missing)|"
    r"credit balance is too low|permission_error",
    re.IGNORECASE,
)
_RATE_LIMIT = re.compile(
    # Claude Code's "5-hour limit reached ∙ resets 3pm" and "You've hit your limit" too
    r"rate[ _-]?limit|too many requests|\b429\b|quota exceeded|usage limit|"
    r"\blimit reached\b|hit your (?:usage )?limit",
    re.IGNORECASE,
)
_UNAVAILABLE = re.compile(
    r"overloaded|\b529\b|\b503\b|service unavailable|bad gateway|\b502\b|internal server error",
    re.IGNORECASE,
)
_REJECTED = re.compile(
    r"invalid_request_error|not_found_error|request_too_large|"
    r"\bAPI Error: 4(?:00|04|13|22)\b|\(HTTP 4(?:00|04|13|22)\)|\b400 Bad Request\b|"
    r"\b(?:BadRequest|NotFound|UnprocessableEntity)Error\b|"
    r"prompt is too long|context[_ ]length[_ ]exceeded|maximum context length",
    re.IGNORECASE,
)
_NETWORK = re.compile(
    # "connection refused", Bun's "ConnectionRefused", Python's "ConnectionResetError"
    r"connection[ _-]?(?:refused|reset|error|dropped|closed|aborted|timed out)|"
    r"\be(?:connrefused|connreset|connaborted|timedout|notfound|hostunreach|netunreach|"
    r"ai_again|pipe)\b|"
    r"failedtoopensocket|socket hang up|und_err_socket|fetch failed|getaddrinfo|"
    r"apiconnection(?:timeout)?error|connecttimeout|"
    r"network is unreachable|no route to host|name or service not known|"
    r"temporary failure in name resolution",
    re.IGNORECASE,
)
_API_ERROR_LINE = re.compile(r"^\s*API Error: 4(?:00|04|13|22)\b", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Terminal text as plain text: lines right-stripped, blank lines at both ends dropped."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def tail(text: str, limit: int = 4000) -> str:
    """The last ``limit`` characters of ``text``, marked when cut."""
    if len(text) <= limit:
        return text
    return "…" + text[-limit:]


def waiting_question(text: str) -> str | None:
    """The question the reply ends with, if it ends by asking the user something."""
    lines = [line.strip() for line in clean_text(text).splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1].lstrip("\u2502>\u276f ").rstrip("\u2502 ")
    return last if _PROMPT.search(last) else None


def classify_failure(text: str) -> tuple[ErrorClass, bool]:
    """(error class, retryable) for a failed run, from what the agent printed."""
    if _AUTH.search(text):
        return ErrorClass.AUTH, False
    if _REJECTED.search(text):
        return ErrorClass.VALIDATION, False
    if _RATE_LIMIT.search(text):
        return ErrorClass.RATE_LIMIT, True
    if _UNAVAILABLE.search(text):
        return ErrorClass.SERVICE_UNAVAILABLE, True
    if _NETWORK.search(text):
        return ErrorClass.NETWORK, True
    return ErrorClass.AGENT, True


def model_rejection(reply: str, api_status: object = None) -> str | None:
    """Why the model API rejected the request, when a run that exited 0 says it did: the API
    status the agent reports (400, 404, 413, 422), or a reply that starts with the agent's
    "API Error: 400 ..." line. Only the reply's start counts: an agent that writes about
    HTTP 400 while doing its work must not read as rejected."""
    if isinstance(api_status, int) and api_status in (400, 404, 413, 422):
        return f"the model API rejected the request (HTTP {api_status})"
    first = next((line for line in reply.splitlines() if line.strip()), "")
    if _API_ERROR_LINE.match(first):
        return f"the model API rejected the request: {first.strip()[:300]}"
    return None
