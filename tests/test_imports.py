"""The package's imports, read from the source (tests/importgraph.py): no circle, even one hidden inside a
function; no module imports its own package's ``__init__``; and imports inside functions only where they defer a
heavy library (torch, mlflow, transformers, diffusers, scikit-learn, ...), so a GMM job never pays for torch."""
import re
import subprocess
import sys
import textwrap

import importgraph

# The one light import kept inside a function: ``ouroboros.load_generation`` (the public shortcut of
# ouroboros/__init__.py) loads ouroboros.results when called, so that importing any submodule (every job, the
# Snakefile) does not import the whole package through its root.
ALLOWED = {"ouroboros imports ouroboros.results"}


def test_no_import_circle():
    assert importgraph.cycles() == []


def test_no_module_imports_its_own_package():
    assert importgraph.upward() == []


def test_imports_inside_functions_only_defer_heavy_libraries():
    deferred = [re.sub(r":\d+ ", " ", d) for d in importgraph.deferred_light()]
    assert set(deferred) <= ALLOWED, ("move these imports to the top of their module (they defer nothing heavy): "
                                      f"{sorted(set(deferred) - ALLOWED)}")
    assert ALLOWED <= set(deferred), f"ALLOWED names an import that is gone or moved: {sorted(ALLOWED - set(deferred))}"


def test_the_checks_find_what_they_look_for(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(textwrap.dedent("""
        import json


        def f():
            from pkg.a import x
            import os
            import torch
            from pkg import heavy
            return x, os, torch, heavy, json
    """))
    (pkg / "heavy.py").write_text("import mlflow\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.m import y\n")
    (pkg / "sub" / "m.py").write_text("from pkg.sub import z\ny = 1\n")
    assert importgraph.cycles(pkg) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.m"]]
    assert importgraph.upward(pkg) == ["pkg.sub.m imports pkg.sub"]
    # pkg.a and os are light; torch and pkg.heavy (it imports mlflow) are worth deferring
    assert importgraph.deferred_light(pkg) == ["pkg.b:6 imports pkg.a", "pkg.b:7 imports os"]


def test_a_light_job_imports_no_heavy_library():
    """What a Gaussian or GMM job and the Snakefile import: no torch, mlflow or transformers."""
    code = ("import sys\nimport ouroboros.plan, ouroboros.jobs, ouroboros.targets.gmm, ouroboros.targets.gaussian\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'transformers', 'diffusers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
