"""The package's layers point one way, as docs/design.md's layer table states them.

The table in docs/design.md ("Layers") is the rule: every room (a top-level package of rise_exp) sits on
a floor, and a room may import only rooms on lower floors (and itself). Nothing else imports the CLI or
the stages, stage modules do not import each other, module imports form no cycle, and no module grows past
~400 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "rise_exp"
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 420


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every rise_exp module a file imports (absolute or relative, at any depth of the file)."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rise_exp")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("rise_exp"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def all_modules() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {i for i in imports_of(path) if i in mods} for name, path in mods.items()}


def room(module: str) -> str:
    """The room of a module: its top-level package (``rise_exp.run.runner`` -> ``run``), or its own name
    for a top-level module (``rise_exp.cli`` -> ``cli``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rise_exp"


def design_floors() -> dict[str, int]:
    """``{room: floor}`` read from the layer table of docs/design.md (rows ``| N | `room/`, ... | ...``)."""
    text = DESIGN.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        for name in re.findall(r"`([a-z_]+)(?:/|\.py)`", cells[1]):
            assert name not in floors, f"{name} stands on two floors of design.md's layer table"
            floors[name] = int(cells[0])
    return floors


def test_design_md_places_every_room_on_a_floor():
    floors = design_floors()
    rooms = {room(m) for m in all_modules()} - {"rise_exp"}
    assert rooms - set(floors) == set(), "rooms missing from design.md's layer table"
    assert set(floors) - rooms == set(), "design.md's layer table names rooms that do not exist"


def test_imports_point_down_the_floors_of_design_md():
    floors = design_floors()
    offenders = []
    for name, deps in all_modules().items():
        here = room(name)
        for dep in deps:
            there = room(dep)
            if there not in (here, "rise_exp") and floors[there] >= floors[here]:
                offenders.append(f"{name} (floor {floors[here]}) imports {dep} (floor {floors[there]})")
    assert not offenders, "\n".join(sorted(offenders))


def test_ground_floor_imports_nothing_of_rise_exp_but_itself():
    floors = design_floors()
    ground = {r for r, f in floors.items() if f == min(floors.values())}
    for name, deps in all_modules().items():
        if room(name) in ground:
            assert {room(d) for d in deps} <= {room(name)}, f"{name} imports {sorted(deps)}"


def test_only_the_cli_imports_cli_or_stages():
    offenders = []
    for name, deps in all_modules().items():
        if name == "rise_exp.cli" or name == "rise_exp.__main__" or name.startswith("rise_exp.stages"):
            continue
        bad = sorted(d for d in deps if d == "rise_exp.cli" or d.startswith("rise_exp.stages"))
        if bad:
            offenders.append(f"{name} imports {bad}")
    assert not offenders, offenders


def test_stage_modules_do_not_import_each_other():
    for name, deps in all_modules().items():
        if name.startswith("rise_exp.stages.") and name != "rise_exp.stages":
            assert not [d for d in deps if d.startswith("rise_exp.stages")], f"{name} imports another stage"


def test_the_top_level_holds_only_the_entry_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py"], loose


def test_module_imports_form_no_cycle():
    graph = all_modules()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep.startswith(node + "."):  # a package importing its own submodule
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_is_over_about_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_stage_registry_imports_every_stage():
    from rise_exp.config.stages import STAGE_CONFIGS
    from rise_exp.stages import STAGES, stage_entry

    assert set(STAGES) == set(STAGE_CONFIGS)
    for name in STAGES:
        assert callable(stage_entry(name))
