#!/usr/bin/env bash
# The main job on the embedded default: SQLite under .taskorch/, the offline planner, simulated
# agents in a managed scratch git repository. No services, no network. Safe to run again: each
# run is a new workflow that lands on top of the previous ones.
set -euo pipefail
cd "$(dirname "$0")/.."
taskorch=.venv/bin/taskorch

$taskorch init
$taskorch run "Add authentication system with security audit and documentation" --agent sim
$taskorch status
$taskorch metrics

python=.venv/bin/python
latest=$($taskorch status --json | $python -c 'import json, sys; print(json.load(sys.stdin)[0]["workflow_id"])')
repo=$($taskorch status "$latest" --json | $python -c 'import json, sys; print(json.load(sys.stdin)["target"]["repo"])')
cat <<MSG

The merged code is in the demo's scratch repository, on its main branch:
  git -C $repo log --oneline --graph -12 main
  git -C $repo show --stat main
From here on, call taskorch as .venv/bin/taskorch (or run 'source .venv/bin/activate' first).
MSG
