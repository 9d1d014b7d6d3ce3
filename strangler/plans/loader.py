"""Read a plan file: YAML with node marks, so every error names the file, the line and the key."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from strangler.plans.schema import Plan, PlanError, PlanIssue, build_plan

PLAN_DIR = "migrations_plan"


def default_plan_path(service: str, root: Path | None = None) -> Path:
    """``migrations_plan/<service>.yaml`` under the working directory, else the repository."""
    candidate = (root or Path.cwd()) / PLAN_DIR / f"{service}.yaml"
    if candidate.exists() or root is not None:
        return candidate
    from strangler.conf import REPO_ROOT

    return REPO_ROOT / PLAN_DIR / f"{service}.yaml"


def load_plan(path: str | Path) -> Plan:
    """Load and validate one plan file; PlanError names the file, line, key and fix."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlanError(
            [
                PlanIssue(
                    str(path),
                    None,
                    "",
                    f"cannot read plan file ({exc.strerror})",
                    "pass --plan FILE or create migrations_plan/<service>.yaml",
                )
            ]
        ) from None
    return load_plan_text(text, str(path))


def load_plan_text(text: str, file: str = "<plan>") -> Plan:
    """Validate plan YAML given as text (``file`` is only used in messages)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PlanError(
                [PlanIssue(file, 1, "", "the file is empty", "write a plan")]
            )
        lines: dict[str, int] = {}
        issues: list[PlanIssue] = []
        _walk(node, "", lines, issues, file)
        if issues:
            raise PlanError(issues)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError(
            [
                PlanIssue(
                    file,
                    mark.line + 1 if mark else None,
                    "",
                    f"not valid YAML ({problem})",
                    "fix the YAML syntax at that line (indentation, quotes, colons)",
                )
            ]
        ) from None
    finally:
        loader.dispose()
    return build_plan(data, file=file, lines=lines, validate_parity=_parity_validator())


def _walk(
    node: yaml.Node,
    path: str,
    lines: dict[str, int],
    issues: list[PlanIssue],
    file: str,
) -> None:
    """Record the line of every key path; flag duplicate keys, which YAML would drop silently."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = str(key_node.value)
            child = f"{path}.{name}" if path else name
            if name in seen:
                issues.append(
                    PlanIssue(
                        file,
                        key_node.start_mark.line + 1,
                        child,
                        f"key {name!r} appears twice in the same mapping",
                        "keep one of them",
                    )
                )
            seen.add(name)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, issues, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{path}[{index}]", lines, issues, file)


def _parity_validator() -> Callable[[Mapping[str, Any]], None] | None:
    """``strangler.compare.load_rules`` when that layer is installed, else no check."""
    try:
        rules = importlib.import_module("strangler.compare.rules")
    except ImportError:
        return None
    load_rules = getattr(rules, "load_rules", None)
    if load_rules is None:
        return None

    def validate(section: Mapping[str, Any]) -> None:
        load_rules({"parity": dict(section)})

    return validate
