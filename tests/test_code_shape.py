"""The package's shape: no two modules import each other, directly or round a
longer circle, counting imports made inside functions (a circle hidden in a
function still ties the two modules' shapes together) and the packages an import
runs first (their `__init__`); no module past MAX_LINES (split by concern before
crossing it)."""

import ast
from pathlib import Path

import hive_mcp

PACKAGE = Path(hive_mcp.__file__).parent
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an `ImportFrom` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = name.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module `name` imports, anywhere in its body. A name
    taken from a package (`from .x import y`) counts as the submodule
    `x.y` when one exists, else as the package `x`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = resolve(name, path, node)
            targets = [
                f"{source}.{alias.name}"
                if f"{source}.{alias.name}" in known
                else source
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    found.update(package for t in set(found) for package in ancestors(t) - ancestors(name) if package in known)
    return found


def ancestors(name: str) -> set[str]:
    """The packages Python runs before module `name`: importing `a.b.c` runs `a` and `a.b` first (their
    `__init__`). A module's own are already running when it imports, so an import of theirs adds no edge."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_and_relative_imports():
    edges = graph()
    # cli reaches dumps.store only from inside a function, by a relative import
    # of a name its package re-exports.
    assert "hive_mcp.dumps" in edges["hive_mcp.cli"]
    assert "hive_mcp.provider.errors" in edges["hive_mcp.provider.litellm"]


def test_the_graph_sees_the_packages_an_import_runs_first():
    edges = graph()
    # task_tools names only tasks' submodules; importing one runs the package's `__init__` (the engine) first.
    assert "hive_mcp.tasks" in edges["hive_mcp.mcp.task_tools"]
    assert "hive_mcp.mcp" not in edges["hive_mcp.mcp.task_tools"]  # its own package is already running


def test_no_import_circle():
    circles = cycles(graph())
    assert not circles, "import circles:\n" + "\n".join(
        " <-> ".join(c) for c in circles
    )


# Each layer, and what it never reaches: directly, or through a package module it imports (inside functions too).
LAYERS = {
    "hive_mcp.calls": {"mcp", "mcp_types", "litellm", "hive_mcp.mcp"},
    "hive_mcp.mcp": {"litellm"},
    "hive_mcp.provider": {"mcp", "mcp_types", "hive_mcp.mcp", "hive_mcp.calls"},
}


def lazy_names(path: Path, name: str) -> dict[str, str]:
    """A package's names its module `__getattr__` imports on first use (`provider.LiteLLMProvider`) -> the module."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    found.update({alias.name: resolve(name, path, inner) for alias in inner.names})
    return found


def inside(tree: ast.AST, test) -> set[int]:
    """The nodes within the top-level functions or `if` blocks `test` picks."""
    return {id(n) for top in ast.walk(tree) if test(top) for n in ast.walk(top)}


def reach_edges() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each package module -> what its code may run: the package modules it imports (anywhere in its body, and
    the packages those run first) and the outside packages (top-level names); and apart, what it imports for
    its annotations only (`if TYPE_CHECKING:`). A package's lazy name (its module `__getattr__`) counts for the
    module that imports that name, not for every importer of the package."""
    mods = modules()
    known = set(mods)
    lazy = {name: lazy_names(path, name) for name, path in mods.items() if path.name == "__init__.py"}
    runs: dict[str, set[str]] = {}
    types: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        getattr_body = inside(tree, lambda n: n in tree.body and getattr(n, "name", "") == "__getattr__")
        typing_only = inside(tree, lambda n: isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        runs[name], types[name] = set(), set()
        for node in ast.walk(tree):
            if id(node) in getattr_body:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = resolve(name, path, node)
                targets = [source] + [
                    lazy.get(source, {}).get(alias.name) or f"{source}.{alias.name}" for alias in node.names
                ]
            else:
                continue
            found = types[name] if id(node) in typing_only else runs[name]
            for target in targets:
                if target.split(".")[0] != "hive_mcp":
                    found.add(target.split(".")[0])
                    continue
                while target not in known:  # a name taken from a module: the module
                    target = target.rpartition(".")[0]
                found |= {target, *(a for a in ancestors(target) - ancestors(name) if a in known)}
        runs[name].discard(name)
        types[name].discard(name)
    return runs, types


def reaching(runs: dict[str, set[str]], types: dict[str, set[str]], start: str, banned: set[str]) -> list[str] | None:
    """The shortest import path from `start` to a banned package (itself or a submodule), or None. `start`'s
    own imports for annotations count (its types name what it knows); another module's do not (they never run)."""
    path_to = {start: [start]}
    queue = [start]
    for node in queue:
        for nxt in sorted(runs.get(node, set()) | (types.get(node, set()) if node == start else set())):
            if nxt in path_to:
                continue
            path_to[nxt] = path_to[node] + [nxt]
            if any(nxt == b or nxt.startswith(b + ".") for b in banned):
                return path_to[nxt]
            queue.append(nxt)
    return None


def layer_breaches() -> list[str]:
    runs, types = reach_edges()
    return [
        " -> ".join(path)
        for layer, banned in LAYERS.items()
        for name in sorted(runs)
        if (name == layer or name.startswith(layer + ".")) and (path := reaching(runs, types, name, banned))
    ]


def test_the_reach_graph_sees_lazy_names_and_imports_inside_functions():
    runs, types = reach_edges()
    assert reaching(runs, types, "hive_mcp.build", {"litellm"}) is not None  # only inside a function, there
    assert lazy_names(PACKAGE / "provider" / "__init__.py", "hive_mcp.provider") == {
        "LiteLLMProvider": "hive_mcp.provider.litellm"
    }
    assert "hive_mcp.provider.litellm" not in runs["hive_mcp.provider"]  # the lazy name alone loads nothing
    assert "hive_mcp.provider.litellm" in types["hive_mcp.provider"]  # its type, for annotations


def test_each_layer_stays_within_its_bounds():
    """The call layer knows neither MCP nor litellm, the MCP layer not litellm, the provider neither MCP nor the
    call: not by an import of its own, nor through a package module it imports, inside a function or not."""
    breaches = layer_breaches()
    assert not breaches, "layers reaching what they must not:\n" + "\n".join(breaches)


def package_of(name: str) -> str:
    """The package directly under `hive_mcp` a module belongs to (a top-level module is its own)."""
    return ".".join(name.split(".")[:2])


def mutual_packages(edges: dict[str, set[str]]) -> list[str]:
    """Pairs of packages under `hive_mcp` each of which imports the other's modules (inside functions too)."""
    uses = {(package_of(a), package_of(b)) for a, outs in edges.items() for b in outs}
    return sorted(f"{a} <-> {b}" for a, b in uses if a < b and (b, a) in uses)


def test_no_two_packages_import_each_other():
    """A package that uses another's modules is not used by it back: what both need lives in a leaf of its own,
    or the package that needs it (two packages importing each other are one concern cut in the wrong place)."""
    assert not mutual_packages(graph())


def test_no_module_past_the_line_limit():
    """The package's modules, and the tests', the benchmarks' and the harness's beside them."""
    beside = [path for part in ("tests", "bench", "harness") for path in sorted((REPO / part).rglob("*.py"))]
    paths = [*modules().values(), *beside]
    long = {
        str(path.relative_to(REPO)): count
        for path in paths
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


# Shared defaults declared outside `hive_mcp/defaults.py` (every name declared there is one too): name -> module.
SHARED_ELSEWHERE = {
    "LOCAL_CALLER": "hive_mcp.tokens", "DEFAULT_FIT": "hive_mcp.files.attach", "EXIT_USAGE": "hive_mcp.serve",
}
UNITS = {"default", "s", "ms", "days", "bytes", "mb"}
"""Words a name carries for its unit or its role, not for what it is: `timeout_s` is named as `queue_timeout`."""


def module_level_names(path: Path, tree: ast.Module | None = None) -> set[str]:
    """The names `path`'s top level assigns (`tree`: the file already parsed)."""
    names: set[str] = set()
    for node in (tree or ast.parse(path.read_text())).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def shared_defaults() -> dict[str, tuple[str, object]]:
    """Each shared default -> (the module declaring it, its value)."""
    import importlib

    where = {name: "hive_mcp.defaults" for name in module_level_names(PACKAGE / "defaults.py") if name.isupper()}
    where |= SHARED_ELSEWHERE
    return {name: (mod, getattr(importlib.import_module(mod), name)) for name, mod in where.items()}


def words(name: str) -> frozenset[str]:
    return frozenset(name.lower().split("_")) - UNITS - {""}


def value_of(node: ast.expr) -> object:
    """The value a literal expression writes (`4 * 1024` folded too), or None when it is not a literal."""
    literal = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop)
    if not all(isinstance(n, literal) for n in ast.walk(node)):
        return None
    value = eval(compile(ast.Expression(node), "<literal>", "eval"))  # noqa: S307 - constants and operators only
    return None if isinstance(value, bool) else value


def written_defaults(tree: ast.AST):
    """(the name a default is given to, its expression) for every place a default is written: a parameter's
    default, a constant or field, `setting(...)`'s first argument, a `default=`, a `... or x` fallback and the
    fallback of `.get(key, x)`."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            yield from ((arg.arg, d) for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults))
            yield from ((arg.arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Name, ast.Attribute)):
                    name = target.id if isinstance(target, ast.Name) else target.attr
                    value = node.value
                    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "setting" and value.args:
                        value = value.args[0]
                    yield name, value
        elif isinstance(node, ast.Call):
            func = node.func
            yield from ((kw.arg, kw.value) for kw in node.keywords if kw.arg == "default")
            if isinstance(func, ast.Attribute) and func.attr == "get" and len(node.args) == 2:
                key = node.args[0]
                yield (key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else ""), node.args[1]
            for kw in node.keywords:
                if kw.arg and isinstance(kw.value, ast.BoolOp) and isinstance(kw.value.op, ast.Or):
                    yield kw.arg, kw.value.values[-1]


def repeated_defaults() -> list[str]:
    """Each place outside a shared default's declaration where its value is written again as a literal, for
    a name it could be the default of: a string anywhere a default is written (its text says what it is), a
    number where the name it is given to says nothing the shared name does not (`timeout_s = 30.0` repeats
    `DEFAULT_QUEUE_TIMEOUT_S`; `notify_timeout_s = 5.0` is a timeout of its own)."""
    shared = shared_defaults()
    found = []
    for mod, path in modules().items():
        for name, node in written_defaults(ast.parse(path.read_text())):
            value = value_of(node)
            if value is None:
                continue
            for constant, (home, default) in shared.items():
                if home == mod or isinstance(value, str) is not isinstance(default, str) or value != default:
                    continue
                if isinstance(value, str) or (words(name) and words(name) <= words(constant)):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name} = {value!r} is {constant}")
    return found


def test_each_shared_default_is_declared_once():
    names = {mod: module_level_names(path) for mod, path in modules().items()}
    declared = {name: sorted(mod for mod, top in names.items() if name in top) for name in shared_defaults()}
    assert all(len(mods) == 1 for mods in declared.values()), {n: m for n, m in declared.items() if len(m) != 1}


def test_no_shared_default_is_written_again_as_a_literal():
    """A shared default is referred to by its name, in the settings as everywhere: a copy of its value drifts
    (the conversation lock's wait stayed 30 s when the queue's could change; the provider's model, a setting's)."""
    repeated = repeated_defaults()
    assert not repeated, "defaults written again:\n" + "\n".join(repeated)


def test_a_listings_first_page_has_one_default():
    """Every listing (MCP's, the dump store's, the dashboard's, the CLI's) shows the same number of entries when
    none is asked for, named once: a `limit` or a count of rows written as that number elsewhere drifts."""
    from hive_mcp.defaults import DEFAULT_PAGE_LIMIT

    found = [
        f"{path.relative_to(REPO)}:{node.lineno}: {name}"
        for mod, path in modules().items() if mod != "hive_mcp.defaults"
        for name, node in written_defaults(ast.parse(path.read_text()))
        if words(name) & {"limit", "rows"} and value_of(node) == DEFAULT_PAGE_LIMIT
    ]
    assert not found, "a page's default written again:\n" + "\n".join(found)


def private_imports() -> list[str]:
    """`from <package module> import _name`: a module reaching into another's private names."""
    mods = modules()
    known = set(mods)
    found = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and resolve(name, path, node) in known:
                found += [
                    f"{name}: {alias.name}" for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    return found


def test_no_module_imports_a_private_name_of_another():
    assert not private_imports()


REPO = PACKAGE.parent


def imports_of_tests(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [f"{path.relative_to(REPO)}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    return found


def imports_of_test_modules(path: Path) -> list[str]:
    """Each test module `path` imports from, anywhere in its body (relative imports resolved), with what it takes."""
    name = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = resolve(name, path, node)
            names = [alias.name for alias in node.names]
            if source == "tests":
                found += [f"tests.{n}" for n in names]
            else:
                found.append(f"{source} ({', '.join(names)})")
    return [f"{path.relative_to(REPO)}: {hit}" for hit in found if hit.startswith("tests.test_")]


def test_no_test_module_imports_from_another_test_module():
    """What more than one test module needs lives in a helper module or a conftest plugin (a fixture, taken by
    parameter): a helper kept in one test module and imported by another ties the two modules' shapes together."""
    hits = [hit for path in sorted((REPO / "tests").glob("test_*.py")) for hit in imports_of_test_modules(path)]
    assert not hits, "test modules importing from test modules:\n" + "\n".join(hits)


def test_bench_and_the_harness_import_nothing_from_tests():
    """The benchmarks and what they share with the tests stand apart from the tests themselves."""
    paths = [*sorted((REPO / "bench").rglob("*.py")), *sorted((REPO / "harness").rglob("*.py"))]
    assert paths
    assert not [hit for path in paths for hit in imports_of_tests(path)]


def test_the_package_carries_no_test_hook():
    """Test-only behaviour lives in the tests (wrapping or subclassing), not behind a switch in the package."""
    hooked = [name for name, path in modules().items() if "HIVE_MCP_TEST" in path.read_text()]
    assert not hooked


def defined_at_top(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    defs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return defs | module_level_names(path, tree)


def test_the_tests_define_each_shared_helper_once():
    """One `text_of`, one `wait_thread_event`, one `MODEL`, one of each fixture every module shares: a helper
    defined twice drifts (one asserted a single text content, another joined whatever came)."""
    paths = [*sorted((REPO / "tests").glob("*.py")), *sorted((REPO / "harness").glob("*.py"))]
    defined = {p: defined_at_top(p) for p in paths}  # each file parsed once, not once per name
    for name in ("text_of", "wait_thread_event", "MODEL", "mode", "valkey_server", "Progress", "USER", "only_dump"):
        where = [str(p.relative_to(REPO)) for p in paths if name in defined[p]]
        assert len(where) == 1, (name, where)
