"""
The packages of ``csvc/`` import one another only along the arrows that
``docs/architecture.md`` allows, and no package imports one that imports it
back.
"""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "csvc")


def allowed():
    """
    ``{package: {packages it may import}}`` from the ``imports`` block of
    docs/architecture.md.
    """
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"```imports\n(.*?)```", text, re.S).group(1)
    arrows = {}
    for line in block.strip().splitlines():
        source, _, targets = line.partition("->")
        arrows[source.strip()] = {t.strip() for t in targets.split(",") if t.strip()}
    return arrows


def component(module):
    """
    The component of a module path under csvc/: its package, or the
    top-level module's name.
    """
    return module.split(".")[1]


def imports():
    """
    ``{(source, target): [file, ...]}`` of the imports between components.
    """
    found = {}
    for root, _dirs, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                targets = []
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "csvc":
                    targets = [node.module] if node.module != "csvc" else [f"csvc.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names if a.name.split(".")[0] == "csvc"]
                for target in targets:
                    if target.count(".") and component(target) != component(module):
                        found.setdefault((component(module), component(target)), []).append(os.path.relpath(path, ROOT))
    return found


def test_every_import_between_packages_is_an_allowed_arrow():
    arrows = allowed()
    outside = {f"{a} -> {b}": files for (a, b), files in imports().items() if b not in arrows.get(a, set())}
    assert outside == {}


def test_every_package_is_in_the_table():
    components = {name[:-3] if name.endswith(".py") else name for name in os.listdir(PACKAGE)
                  if not name.startswith("_") and (name.endswith(".py") or os.path.isdir(os.path.join(PACKAGE, name)))}
    components.discard("__pycache__")
    assert components <= set(allowed())


def test_the_allowed_arrows_have_no_cycle():
    arrows = allowed()
    state = {}

    def visit(node, path):
        if state.get(node) == "open":
            raise AssertionError(f"a cycle: {' -> '.join(path + [node])}")
        if state.get(node) == "done":
            return
        state[node] = "open"
        for target in sorted(arrows.get(node, ())):
            visit(target, path + [node])
        state[node] = "done"

    for node in sorted(arrows):
        visit(node, [])


def test_the_contract_imports_nothing_of_csvc_but_itself():
    assert allowed()["wire"] == set()
    assert not [pair for pair in imports() if pair[0] == "wire"]
