"""The import graph of the product packages: no cycle between packages, no import upward.

Read from the source with `ast`: every import, also those inside functions, but not those under
`if TYPE_CHECKING:`, which never run; so it holds for code that a test run never imports. The
entry points sit on top: `telemetry/cli.py` reaches each subcommand by name through importlib,
and nothing imports `telemetry.cli` or `telemetry.dev`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    p.name
    for p in ROOT.iterdir()
    if (p / "__init__.py").is_file() and p.name not in {"tests", "bench", "scripts"}
)
ENTRY_POINTS = ("telemetry.cli", "telemetry.dev")


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith(
        "TYPE_CHECKING"
    )


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    # Imports under `if TYPE_CHECKING:` never run: a type named in an annotation, not a floor.
    skipped = {id(n) for node in ast.walk(tree) if _type_checking(node) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _module_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            edges[module] = {m for m in _imports(path) if m.split(".")[0] in PACKAGES}
    return edges


def test_the_product_packages_are_found() -> None:
    assert {"api", "catalogue", "influx", "ingest", "sigfox", "telemetry"} <= set(PACKAGES)


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module, targets in _module_edges().items():
        here = module.split(".")[0]
        graph[here] |= {t.split(".")[0] for t in targets} - {here}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"packages import each other in a circle: {exc.args[1]}") from None
    assert set(order) == set(PACKAGES)


def test_nothing_imports_the_entry_points() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _module_edges().items()
        for target in targets
        if target.startswith(ENTRY_POINTS) and not module.startswith(ENTRY_POINTS)
    )
    assert upward == []


def test_the_ground_floor_imports_no_command() -> None:
    # Settings, errors, the child-process class and the backoff are imported by every
    # package, so they must not pull in a subcommand or a server launcher.
    floor = ("telemetry.errors", "telemetry.settings", "telemetry.process", "telemetry.backoff")
    edges = _module_edges()
    reached = sorted(t for m in floor for t in edges[m] if not t.startswith(floor))
    assert all(t.startswith(("sigfox.limits", "catalogue")) for t in reached), reached
