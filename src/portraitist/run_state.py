"""WS/run.json: which steps of `portraitist run` finished, with which settings; what a rerun redoes.

A step (prepare, train, one generate request, rank, upscale) is skipped on a rerun only when it
finished with the settings it would run with now and no earlier stage runs again; a changed
setting re-runs its step and every later stage, and the plan says which and why. A step
interrupted with unchanged settings continues (training from its checkpoint); any other step that
runs starts over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portraitist.workspace import Workspace, write_json_atomic

STAGES = ("prepare", "train", "generate", "rank", "upscale")
MAX_CHANGES_SHOWN = 4


def stage_of(step: str) -> str:
    """'generate:photo' -> 'generate'."""
    return step.split(":", 1)[0]


@dataclass
class RunState:
    """What WS/run.json holds: finished steps, the settings each step last started with, the files a
    step made that a rerun replaces (generate's images), and each finished step's seconds."""

    done: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def path(workspace: Workspace) -> Path:
        return workspace.root / "run.json"

    @classmethod
    def read(cls, workspace: Workspace) -> RunState:
        path = cls.path(workspace)
        stored = json.loads(path.read_text()) if path.exists() else {}
        return cls(**{key: stored[key] for key in ("done", "settings", "files", "seconds") if key in stored})

    def write(self, workspace: Workspace) -> None:
        write_json_atomic(self.path(workspace), self.__dict__)


@dataclass
class Plan:
    """What this call of `run` does with each step (names in run order)."""

    run: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished with these settings
    changed: dict[str, str] = field(default_factory=dict)  # step -> what changed since it last ran
    after: list[str] = field(default_factory=list)  # finished steps run again because an earlier stage runs
    dropped: list[str] = field(default_factory=list)  # steps of an earlier run that are no longer asked for
    continued: list[str] = field(default_factory=list)  # interrupted with the same settings: they continue


def plan_steps(state: RunState, steps: Sequence[tuple[str, dict[str, Any]]]) -> Plan:
    """Decide, for (step name, settings) in run order, what runs and why."""
    plan = Plan(dropped=[name for name in state.settings if name not in dict(steps)])
    running = {stage_of(name) for name in plan.dropped}
    for name, settings in steps:
        recorded = state.settings.get(name)
        earlier_runs = any(STAGES.index(s) < STAGES.index(stage_of(name)) for s in running)
        if recorded is not None and recorded != settings:
            plan.changed[name] = describe_changes(recorded, settings)
        elif earlier_runs:
            if name in state.done:
                plan.after.append(name)
        elif name in state.done:
            plan.skipped.append(name)
            continue
        elif recorded is not None:
            plan.continued.append(name)
        plan.run.append(name)
        running.add(stage_of(name))
    return plan


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'steps 30 -> 60, n 2 -> 3' (nested settings as dotted names), the first few changes."""
    before, now = _flat(old), _flat(new)
    changes = [
        f"{key} {_show(before.get(key))} -> {_show(now.get(key))}"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key)
    ]
    more = len(changes) - MAX_CHANGES_SHOWN
    return ", ".join(changes[:MAX_CHANGES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value, ensure_ascii=False)
