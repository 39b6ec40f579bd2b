"""The package's import graph, read from the source with ``ast`` (nothing is imported).

``graph()`` maps each module of ``ouroboros`` to the internal modules it imports, at module level and inside
functions, so that ``cycles()`` finds a circle however it is hidden, and ``deferred()`` lists the imports made
inside functions (kept for heavy libraries: torch, mlflow, transformers, diffusers, ...).  Run as a script it
prints both.
"""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "ouroboros"
# Libraries worth deferring: importing one costs from a tenth of a second (scipy, pandas) to seconds (torch,
# sklearn, mlflow, transformers), or pulls one that does; jsonschema (30 ms, some forty modules) only where a
# config or a setting is validated, which most jobs never do.
HEAVY = ("torch", "torchvision", "mlflow", "transformers", "diffusers", "peft", "safetensors", "gguf",
         "accelerate", "sklearn", "scipy", "matplotlib", "pandas", "snakemake", "datasketch", "skops", "jsonschema",
         "nltk", "vendi_score")
# Imported only where a setting asks for them: the hub client (a model named on the hub) and an optional extra
# (``datasets``, pip install .[hf]) that a study without it must not need.
ON_DEMAND = ("huggingface_hub", "datasets")


def modules(package=PACKAGE):
    """{module name: path} for every module of the package."""
    out = {}
    for path in sorted(Path(package).rglob("*.py")):
        parts = list(path.relative_to(Path(package).parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(tree, name, is_package, known):
    """(module imported, line, inside a function?) for each import statement of a module's tree (those under
    ``if TYPE_CHECKING:`` are for annotations only and never run)."""
    inside, typing_only = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        deferred = id(node) in inside
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, deferred
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield (sub if sub in known else module), node.lineno, deferred


def graph(package=PACKAGE):
    """{module: {imported internal module: [(line, deferred), ...]}}."""
    known = modules(package)
    out = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        edges = out.setdefault(name, {})
        for module, line, deferred in _imports(tree, name, path.name == "__init__.py", known):
            if module in known:
                edges.setdefault(module, []).append((line, deferred))
    return out


def external_imports(package=PACKAGE):
    """{module: [(library, line, deferred), ...]} for the imports from outside the package."""
    known = modules(package)
    root = Path(package).name
    out = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        out[name] = [(m.split(".")[0], line, d) for m, line, d in
                     _imports(tree, name, path.name == "__init__.py", known)
                     if m.split(".")[0] != root]
    return out


def cycles(package=PACKAGE):
    """Every strongly connected component of more than one module (or a module importing itself), counting the
    imports made inside functions: a circle hidden by a deferred import is still a circle."""
    edges = graph(package)
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def heavy_modules(package=PACKAGE):
    """The internal modules whose import pulls a heavy library at module level (directly or through another)."""
    edges = graph(package)
    direct = {name for name, imports in external_imports(package).items()
              if any(lib in HEAVY and not deferred for lib, _, deferred in imports)}
    heavy, changed = set(direct), True
    while changed:
        changed = False
        for name, imports in edges.items():
            if name not in heavy and any(m in heavy and any(not d for _, d in uses)
                                         for m, uses in imports.items()):
                heavy.add(name)
                changed = True
    return heavy


def deferred_light(package=PACKAGE):
    """The imports made inside a function that need not be: of an internal module that imports no heavy
    library at module level, or of an outside library that is neither heavy nor on demand."""
    edges = graph(package)
    heavy = heavy_modules(package)
    out = set()
    for name, imports in edges.items():
        for module, uses in imports.items():
            out |= {f"{name}:{line} imports {module}" for line, d in uses if d and module not in heavy}
    for name, imports in external_imports(package).items():
        out |= {f"{name}:{line} imports {lib}" for lib, line, d in imports
                if d and lib not in HEAVY and lib not in ON_DEMAND}
    return sorted(out)


def upward(package=PACKAGE):
    """Imports of a package's ``__init__`` from a module inside that package (the package imports its modules,
    so this is a circle in waiting); the root package is exempt (every module's name starts with it)."""
    root = Path(package).name
    return sorted({f"{name} imports {module}" for name, imports in graph(package).items() for module in imports
                   if name.startswith(module + ".") and module != root})


if __name__ == "__main__":
    for c in cycles():
        print("cycle:", " ".join(c))
    for u in upward():
        print("upward:", u)
    for d in deferred_light():
        print("deferred:", d)
