"""
No module of ``csvc/`` is over 800 lines (issue 19): a module that grows
past it holds more than one subject, and is split by what it is about.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "csvc")

#: The most lines a module of csvc/ may have.
MOST_LINES = 800


def line_counts(top):
    """
    ``{path relative to ROOT: lines}`` of every Python module under ``top``.
    """
    counts = {}
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    counts[os.path.relpath(path, ROOT)] = sum(1 for _line in f)
    return counts


def too_long(counts):
    return {path: lines for path, lines in counts.items() if lines > MOST_LINES}


def test_no_module_of_csvc_is_over_800_lines():
    assert too_long(line_counts(PACKAGE)) == {}


def test_a_module_over_800_lines_is_found(tmp_path):
    package = tmp_path / "csvc"
    (package / "compute").mkdir(parents=True)
    (package / "compute" / "long.py").write_text("x = 1\n" * (MOST_LINES + 1))
    (package / "compute" / "short.py").write_text("x = 1\n" * MOST_LINES)
    (package / "notes.txt").write_text("x\n" * (MOST_LINES + 1))
    found = {os.path.basename(path): lines for path, lines in too_long(line_counts(str(package))).items()}
    assert found == {"long.py": MOST_LINES + 1}
