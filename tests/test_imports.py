"""The import graph of the `rnr` package, read from the source with ast (imports inside functions included, so
a lazy import cannot hide a cycle): no cycle, and the workflow's parse-time modules stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnr"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import, modules: set[str]) -> list[str]:
    """The rnr modules one import statement of ``module`` loads (``from . import x`` names module x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = []
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        if submodule in modules:
            found.append(submodule)
        elif target in modules:
            found.append(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """rnr module -> the rnr modules it imports anywhere in its source (top level or inside functions);
    importing ``a.b.c`` also runs ``a`` and ``a.b`` (their ``__init__``), so those count as well."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in resolve(name, path.name == "__init__.py", node, modules):
                    parts = target.split(".")
                    edges.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        edges.discard(name)
        # A package's own parents run before it; a module importing its parent package is no cycle edge.
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path):
    """The reader itself, on a made-up cycle through a function-level import."""
    graph = {"rnr.a": {"rnr.b"}, "rnr.b": {"rnr.c"}, "rnr.c": {"rnr.a"}, "rnr.d": {"rnr.a"}}
    assert cycles(graph) == [["rnr.a", "rnr.b", "rnr.c"]]
    real = import_graph()
    assert "rnr.methods" in real["rnr.methods.rnr"] or "rnr.methods.base" in real["rnr.methods.rnr"]
    assert "rnr.data" in real["rnr.plan"] and "rnr.layout" in real["rnr.plan"]


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in found)


#: Packages a rule file must not load at parse time: every dry run and every SLURM job (which parses the
#: workflow again) would pay for them. numpy (~50 ms) is allowed: rnr.layout needs it.
HEAVY = ("torch", "pandas", "scipy", "SimpleITK", "matplotlib", "seaborn", "ants", "itk", "lungmask")


def test_the_rule_files_import_nothing_heavy_at_parse_time():
    """Every module-level import of the Snakefile and the rule files, run in a fresh interpreter: none of
    :data:`HEAVY` is loaded (imports inside input functions run when a job is planned, not at parse time)."""
    root = PACKAGE.parent
    sources = [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]
    statements = [
        line
        for path in sources
        for line in path.read_text().splitlines()
        if line.startswith(("import ", "from ")) and "rnr" in line
    ]
    assert any("rnr.plan" in s for s in statements), "the reader found no rnr import in the rule files"
    code = "\n".join([*statements, "import sys", f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]", f"heavy packages loaded at parse time: {out.stdout.strip()}"


#: The pipeline's stages, in order: a module in a stage folder imports only the shared core and modules of its
#: own or an earlier stage (rnr/README.md, "Modules").
STAGES = ("data", "fitting", "methods", "evaluation", "reporting")
#: The shared core: top-level modules that import no stage.
CORE = ("rnr", "rnr.config", "rnr.coords", "rnr.figure_style", "rnr.io", "rnr.layout", "rnr.runtime")
#: Top-level modules that join stages (the workflow's plan, one registration with its accuracy curve, the CLI).
ENTRY = ("rnr.cli", "rnr.plan", "rnr.registration")


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_every_module_sits_in_a_stage_the_core_or_an_entry_point():
    top = {m for m in import_graph() if m.count(".") == 1 and stage_of(m) is None and m != "rnr.commands"}
    assert top <= set(CORE) | set(ENTRY), f"top-level modules outside core and entry points: {top - set(CORE)}"


def test_a_stage_imports_only_the_core_and_earlier_stages():
    graph = import_graph()
    wrong = []
    for module, deps in sorted(graph.items()):
        here = stage_of(module)
        for dep in sorted(deps):
            if dep in CORE:
                continue
            if module in CORE or (here is not None and (stage_of(dep) is None or stage_of(dep) > here)):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports against the stage order (rnr/README.md, 'Modules'):\n" + "\n".join(wrong)


def test_the_rnr_command_loads_torch_only_for_steps_that_fit_or_score():
    """`rnr` builds every subcommand's parser; a step such as `rnr tables` or `rnr convert` must not pay for
    torch (about 2 s per job) because another step needs it."""
    code = "import sys, rnr.cli; rnr.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
