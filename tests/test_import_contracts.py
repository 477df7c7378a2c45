"""The import contracts of pyproject.toml can break: run on a small package that breaks each
one, lint-imports fails and names the import (and passes on the same package without it)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[tool.importlinter]
root_package = "toypkg"
contract_types = ["private_names: devtools.import_contracts.PrivateNamesContract"]

[[tool.importlinter.contracts]]
name = "layers"
type = "layers"
containers = ["toypkg"]
layers = ["cli", "apps", "nn | data", "core"]

[[tool.importlinter.contracts]]
name = "private"
type = "private_names"
containers = ["toypkg"]

[[tool.importlinter.contracts]]
name = "acyclic"
type = "acyclic_siblings"
ancestors = ["toypkg.apps"]
"""

CLEAN = {
    "__init__.py": "",
    "core.py": "def _helper():\n    return 1\n\ndef helper():\n    return _helper()\n",
    "nn/__init__.py": "",
    "nn/_impl.py": "X = 1\n",
    "nn/layers.py": "from toypkg.nn._impl import X\nfrom toypkg.core import helper\n",
    "data/__init__.py": "",
    "data/io.py": "from toypkg import core\nY = core.helper()\n",
    "apps/__init__.py": "",
    "apps/est.py": "from toypkg.nn.layers import X\nfrom toypkg.data.io import Y\n"
                   # a class's private attribute used within its own package: allowed
                   "from toypkg.apps.other import K\nZ = K._p\n",
    "apps/other.py": "class K:\n    _p = 1\n",
    "cli/__init__.py": "",
    "cli/main.py": "from toypkg.apps.est import X\n",
}


def _lint(tmp_path, extra):
    pkg = tmp_path / "toypkg"
    for name, text in {**CLEAN, **extra}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    (tmp_path / "devtools").symlink_to(ROOT / "devtools", target_is_directory=True)
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_clean_package_keeps_the_contracts(tmp_path):
    rc, out = _lint(tmp_path, {})
    assert rc == 0, out
    assert "3 kept, 0 broken" in out


@pytest.mark.parametrize("extra, named", [
    # a private name of another package, by `from ... import`, in a parenthesised import
    ({"data/io.py": "from toypkg.nn._impl import X\n"}, "toypkg.nn._impl"),
    ({"apps/est.py": "from toypkg.core import (\n    helper,\n    _helper,\n)\n"},
     "toypkg.core._helper"),
    # ... through a module bound by an import, and by a relative import
    ({"cli/main.py": "from toypkg import core\nZ = core._helper()\n"}, "toypkg.core._helper"),
    ({"apps/est.py": "from ..nn import _impl\n"}, "toypkg.nn._impl"),
    # ... and through a chain of attributes from an imported package
    ({"cli/main.py": "import toypkg.core\nZ = toypkg.core._helper()\n"},
     "toypkg.core._helper"),
    ({"cli/main.py": "import toypkg.nn as n\nZ = n._impl.X\n"}, "toypkg.nn._impl"),
])
def test_private_name_of_another_package_breaks_the_contract(tmp_path, extra, named):
    rc, out = _lint(tmp_path, extra)
    assert rc == 1, out
    assert "private BROKEN" in out and named in out


def test_import_up_the_layers_breaks_the_contract(tmp_path):
    rc, out = _lint(tmp_path, {"nn/layers.py": "from toypkg.data.io import Y\n"})
    assert rc == 1 and "layers BROKEN" in out
    assert "toypkg.nn.layers -> toypkg.data.io" in out


def test_a_cycle_between_modules_of_a_package_breaks_the_contract(tmp_path):
    rc, out = _lint(tmp_path, {"apps/other.py": "from toypkg.apps import est\nclass K:\n"
                                                "    _p = 1\n"})
    assert rc == 1 and "acyclic BROKEN" in out

