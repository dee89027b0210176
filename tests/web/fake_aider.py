"""A scripted agent that talks like Aider: a model line, progress lines as it works, a change in
its worktree, and Aider's printed token and cost line (what ``parse_aider`` reads).

``write_fake_aider(folder, pause_s, steps, release)`` writes it as an executable for
``AgentSpec(type="aider", executable=...)``; each progress line comes ``pause_s`` after the
last, so a reader sees the output grow while it runs."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPT = """#!{python}
import sys, time, hashlib, pathlib
prompt = " ".join(a for a in sys.argv[1:] if a.startswith("--message=")) or "none"
name = hashlib.sha1(prompt.encode()).hexdigest()[:10]
release = {release!r}
print("Main model: openai/gpt-fake with diff edit format", flush=True)
step, started = 0, time.monotonic()
while True:
    step += 1
    print(f"working: step {{step}}", flush=True)
    released = release is None or pathlib.Path(release).exists()
    if (step >= {steps} and released) or time.monotonic() - started > 120:
        break
    time.sleep({pause_s})
path = pathlib.Path("fake-aider") / f"{{name}}.txt"
path.parent.mkdir(exist_ok=True)
path.write_text(f"written by the fake aider for {{name}}\\n")
print(f"Applied edit to {{path}}", flush=True)
print("Tokens: 2.5k sent, 300 received. Cost: $0.01 message, $0.03 session.", flush=True)
print("Done: the change is in.", flush=True)
"""


def write_fake_aider(
    folder: Path, pause_s: float = 0.0, steps: int = 3, release: Path | None = None
) -> Path:
    """With ``release``, it goes on working (a line every ``pause_s``) until that file exists
    (two minutes at most), so a test decides when it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-aider"
    text = SCRIPT.format(
        python=sys.executable,
        pause_s=pause_s,
        steps=steps,
        release=str(release) if release else None,
    )
    path.write_text(text)
    path.chmod(0o755)
    return path
