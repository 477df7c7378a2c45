"""The artifact fuzzer (scripts/fuzz_artifact.py) on a few hundred cases: forged model files
load or raise ArtifactError, write nothing outside their folder, take bounded memory.
The closing note quotes a 10,000-case run: python scripts/fuzz_artifact.py --n 10000."""

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_artifact.py"


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_artifact", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_artifact_fuzzer_few_hundred_cases():
    fuzz = _fuzzer()
    cwd, tmp = os.getcwd(), tempfile.tempdir
    try:
        res = fuzz.run(300, seed=0, max_extra_mb=300, verbose=False)
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tmp
    assert res["failures"] == [], res["failures"][:5]
    # the mutations reach the parsers, not only the zip checksum: some forged files still
    # load, most are refused, and every kind of mutation was tried
    assert res["outcomes"].get("ArtifactError", 0) > 150
    assert res["outcomes"].get("loaded", 0) > 0
    assert set(res["mutations"]) >= {"bytes", "rename", "bomb", "lie", "header", "keras",
                                     "widen", "h5", "npz", "method", "encrypt"}


def test_fuzzer_catches_an_escaping_error(monkeypatch):
    """The fuzzer can fail: a loader that lets a KeyError escape is reported."""
    import deepae

    fuzz = _fuzzer()
    real = deepae.load

    def leaky(path, **kw):
        if Path(path).parent.name == "case":  # the forged files, not the warm-up's seeds
            raise KeyError("params")
        return real(path, **kw)

    monkeypatch.setattr(deepae, "load", leaky)
    cwd, tmp = os.getcwd(), tempfile.tempdir
    try:
        res = fuzz.run(3, seed=0, verbose=False)
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tmp
    assert len(res["failures"]) == 3 and "KeyError" in res["failures"][0]["error"]
    assert np.isfinite(res["peak_extra_mb"])
