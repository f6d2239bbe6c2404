"""The package's layers point one way: nothing under rise_exp/ imports the CLI or the stages but the CLI,
module imports form no cycle, and no module grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rise_exp"
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


def test_module_imports_form_no_cycle():
    graph = all_modules()
    # a package __init__ that only re-exports its own submodules is part of them, not above them
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
