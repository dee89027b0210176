#!/usr/bin/env bash
# The main job on the embedded default: SQLite under .taskorch/, offline planner, no services.
set -euo pipefail
cd "$(dirname "$0")/.."
taskorch=.venv/bin/taskorch

$taskorch init
$taskorch task add "Add authentication system with security audit and documentation" \
  --priority high --description "Users log in with email and password; audit it; document it."
$taskorch task list
$taskorch parse "Add authentication system with security audit and documentation"
$taskorch health
