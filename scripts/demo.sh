#!/usr/bin/env bash
# The main job on the embedded default: SQLite under .taskorch/, the offline planner, simulated
# agents in a managed scratch git repository. No services, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
taskorch=.venv/bin/taskorch

$taskorch init
$taskorch run "Add authentication system with security audit and documentation" --agent sim
$taskorch status
$taskorch metrics
