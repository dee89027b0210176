"""The agent registry as a table: shown by ``taskorch agents list`` and ``taskorch status``.

Apart from :mod:`taskorch.cli.agents` so that ``status`` shows agents without loading the
registry's adapters, which only registering an agent needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from taskorch.cli.app import console

if TYPE_CHECKING:
    from taskorch.engine.agents import AgentInfo

_STATUS_STYLE = {"available": "green", "busy": "yellow", "offline": "bold red", "disabled": "dim"}


def agents_table(agents: list[AgentInfo]) -> Table:
    """The registry with its figures."""
    table = Table("agent", "type", "status", "load", "success", "mean", "p95", "adapter", box=None)
    for info in agents:
        record = info.record
        rate = f"{record.success_rate:.0%} of {record.attempts}" if record.attempts else "-"
        table.add_row(
            Text(info.agent.name, style="bold", no_wrap=True),
            info.agent.type,
            _status_text(info),
            f"{info.active}/{info.agent.max_concurrency}",
            rate,
            seconds(record.mean_s),
            seconds(record.p95_s),
            Text(info.to_json()["adapter"]),
        )
    return table


def _status_text(info: AgentInfo) -> Text:
    if info.window is not None:  # a limit answered: its work waits for the reset
        return Text(f"rate-limited until {info.window.until:%H:%M:%S} UTC", style="yellow")
    return Text(info.status.value, style=_STATUS_STYLE.get(info.status.value, ""))


def print_agents(agents: list[AgentInfo]) -> None:
    console.print(agents_table(agents))
    for info in agents:
        if info.record.last_error:
            console.print(
                Text.assemble(f"  {info.agent.name} last error: ", (info.record.last_error, "red"))
            )


def seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else "-"
