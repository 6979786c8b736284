"""
No code of csvc's outside the fast path (``csvc/fastpath/``) touches a
private attribute of Twisted, autobahn or txaio (issue 19): not by
importing a private name or module, not by reading or writing one on one of
their objects (``transport._tempDataBuffer``), not through ``getattr`` with
its name, and not, in a class that inherits from theirs, by using or
overriding one of its bases' private attributes (``self._locked``,
``def _dataReceived``).  Names that are undocumented though not underscored
(autobahn's ``send_state``...) are listed below.

Private names are what those libraries define with a leading underscore
(methods, class attributes, ``self._x =``), read from their installed
sources.
"""

import ast
import importlib
import inspect
import os
import re
import sys
import textwrap
from functools import lru_cache

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "csvc")
SEAM = os.path.join(PACKAGE, "fastpath")
LIBRARIES = ("twisted", "autobahn", "txaio")

#: Their state that is not underscored, yet not an API either.
UNDOCUMENTED = {
    "send_state", "send_queue", "SEND_STATE_GROUND", "current_frame", "inside_message",  # autobahn
    "dataBuffer", "_tempDataBuffer",  # twisted.internet.abstract.FileDescriptor
}

#: Underscored names that are another library's public API.
ELSEWHERE_PUBLIC = {
    "_mapping",  # SQLAlchemy's Row._mapping
    "_exit",  # os._exit
}

_DEFINED = re.compile(r"(?:def\s+|self\.|^\s*)(_[A-Za-z]\w*)\s*(?:\(|=[^=])", re.M)


@lru_cache(maxsize=None)
def _library_privates():
    names = set()
    for top in LIBRARIES:
        base = os.path.dirname(importlib.import_module(top).__file__)
        for root, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if d not in ("test", "tests")]
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                        names.update(_DEFINED.findall(f.read()))
    return names - ELSEWHERE_PUBLIC


def _privates_of(cls):
    """
    The private names the library classes in ``cls``'s MRO define.
    """
    names = set()
    for base in cls.__mro__:
        if base.__module__.split(".")[0] in LIBRARIES:
            names.update(n for n in vars(base) if n.startswith("_") and not n.startswith("__"))
            try:
                names.update(_DEFINED.findall(inspect.getsource(base)))
            except (OSError, TypeError):
                pass
    return names | (UNDOCUMENTED if names else set())


def _is_self(node):
    return (isinstance(node, ast.Name) and node.id in ("self", "cls")) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def _modules():
    for root, _dirs, files in os.walk(PACKAGE):
        if root == SEAM or root.startswith(SEAM + os.sep) or "migrations" in root.split(os.sep):
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield path, module[: -len(".__init__")] if module.endswith(".__init__") else module


def _attribute_names(tree):
    """
    ``(node, name, on_self)`` of every attribute read or written, and of
    every name given to ``getattr``/``setattr``/``hasattr``/``delattr``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            yield node, node.attr, _is_self(node.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            yield node, node.args[1].value, _is_self(node.args[0])


def uses_outside_the_seam():
    library = _library_privates() | UNDOCUMENTED
    found = []
    checked_classes = set()
    for path, module_name in _modules():
        where = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
                if "._" in "." + node.module or any(a.name.startswith("_") for a in node.names):
                    found.append(f"{where}:{node.lineno}: from {node.module} import "
                                 + ", ".join(a.name for a in node.names))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in LIBRARIES and "._" in "." + alias.name:
                        found.append(f"{where}:{node.lineno}: import {alias.name}")
        for node, name, on_self in _attribute_names(tree):
            if not on_self and name in library:
                found.append(f"{where}:{node.lineno}: .{name}")
        module = importlib.import_module(module_name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            cls = getattr(module, node.name, None)
            if not isinstance(cls, type):
                continue
            theirs = _privates_of(cls)
            if not theirs:
                continue
            # This class's code and that of csvc's classes mixed into it.
            for base in cls.__mro__:
                if not base.__module__.startswith("csvc.") or (cls, base) in checked_classes:
                    continue
                checked_classes.add((cls, base))
                base_file = inspect.getsourcefile(base)
                if base_file.startswith(SEAM + os.sep):
                    continue
                body = ast.parse(textwrap.dedent(inspect.getsource(base)))
                label = f"{os.path.relpath(base_file, ROOT)}: {base.__name__}"
                for sub, name, on_self in _attribute_names(body):
                    if on_self and name in theirs:
                        found.append(f"{label}: self.{name} (of {cls.__name__}'s library bases)")
                for sub in ast.walk(body):
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name in theirs:
                        found.append(f"{label}: def {sub.name} (overrides a private of its library bases)")
    return sorted(set(found))


def test_no_private_internals_outside_the_fast_path():
    assert uses_outside_the_seam() == []


@pytest.mark.parametrize("source, expected", [
    ("from twisted.web.client import _HTTP11ClientFactory\n", "import"),
    ("import twisted.internet._sslverify\n", "import"),
    ("def f(t):\n    return t._tempDataBuffer\n", "._tempDataBuffer"),
    ("def f(c):\n    return getattr(c, '_dataBuffer', b'')\n", "._dataBuffer"),
    ("def f(p):\n    return p.send_state\n", ".send_state"),
    ("from twisted.protocols import amp\nclass L(amp.AMP):\n    def f(self):\n        return self._locked\n",
     "self._locked"),
    ("from twisted.protocols import amp\nclass M:\n    def f(self):\n        return self._nextTag\n"
     "class L(M, amp.AMP):\n    pass\n", "M: self._nextTag"),
    ("from twisted.protocols import amp\nclass L(amp.AMP):\n    def _commandReceived(self, box):\n        pass\n",
     "def _commandReceived"),
])
def test_the_check_finds_what_it_looks_for(tmp_path, monkeypatch, source, expected):
    # The same check, on a module made for it.
    package = tmp_path / "csvc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(source)
    globals_ = uses_outside_the_seam.__globals__
    monkeypatch.setitem(globals_, "PACKAGE", str(package))
    monkeypatch.setitem(globals_, "ROOT", str(tmp_path))
    monkeypatch.setitem(globals_, "SEAM", str(package / "fastpath"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in list(sys.modules) if m == "csvc" or m.startswith("csvc.")]:
        monkeypatch.delitem(sys.modules, name)
    (found,) = uses_outside_the_seam()
    assert expected in found and "probe.py" in found
