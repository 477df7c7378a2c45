"""Write one small saved artifact of each kind, with the inputs and outputs they must give.

    python scripts/make_legacy_artifacts.py [--out tests/data/legacy]

Run once on a given deepae, the files are committed; `tests/test_legacy_artifacts.py` then
checks that every later deepae still loads them and gives the same outputs (to float32
rounding). Re-running it replaces the files: do that only on purpose, when the format
version changes (and keep the old ones beside the new under another folder).

The models are tiny (a few epochs on a few hundred rows or one small image) and seeded:
they are not meant to be good, only to exercise each kind's saved parts (scaling, the
detector's table preprocessing and threshold, the hasher's codes, the codec's tables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import deepae  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _image(rng, h=40, w=48):
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.05 * rng.normal(size=(h, w))
    return np.clip(img, 0, 1).astype(np.float32)


def build(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(256, 8)) @ rng.normal(size=(8, 8)) * 2 + 3).astype(np.float32)
    xq = x[:16]
    outputs, made = {}, {}

    ae = deepae.Autoencoder(input_shape=(8,), hidden_units=(6,), latent_dim=3)
    ae.fit(x, epochs=2, batch_size=64, random_state=0, verbose=0)
    made["Autoencoder"] = ae
    outputs["Autoencoder.encode"] = ae.encode(xq)
    outputs["Autoencoder.reconstruct"] = ae.reconstruct(xq)

    red = deepae.AutoencoderReducer(n_components=2, hidden_units=(6,), epochs=2,
                                    random_state=0).fit(x)
    made["AutoencoderReducer"] = red
    outputs["AutoencoderReducer.transform"] = red.transform(xq)

    table = pd.DataFrame({"amount": x[:, 0], "age": x[:, 1],
                          "kind": rng.choice(["a", "b", "c"], size=len(x))})
    table.loc[::17, "age"] = np.nan
    det = deepae.AnomalyDetector(hidden_units=(6,), n_components=2, epochs=2, n_estimators=1,
                                 categorical_columns=["kind"], random_state=0).fit(table)
    made["AnomalyDetector"] = det
    outputs["AnomalyDetector.decision_function"] = det.decision_function(table[:16])
    outputs["AnomalyDetector.predict"] = det.predict(table[:16])

    hasher = deepae.SemanticHasher(n_bits=8, hidden_units=(16,), n_neighbors=5, epochs=2,
                                   batch_size=64, random_state=0).fit(x)
    made["SemanticHasher"] = hasher
    outputs["SemanticHasher.transform"] = hasher.transform(xq)
    index = deepae.HammingIndex(8)
    index.add(hasher.transform(x))
    made["HammingIndex"] = index
    outputs["HammingIndex.rank.ids"] = index.rank(hasher.transform(xq[:4]), k=5)[0][0]
    made["SemanticIndex"] = deepae.SemanticIndex(hasher, index)

    img = _image(rng)
    den = deepae.Denoiser(sigma=(0.0, 0.2), mode="blind", filters=(4, 8), convs_per_level=1,
                          patch_size=16, patches_per_epoch=64, epochs=1, batch_size=16,
                          random_state=0).fit([img])
    made["Denoiser"] = den
    outputs["Denoiser.transform"] = den.transform(img)
    sr = deepae.SuperResolver(scale=2, filters=(4, 8), convs_per_level=1, patch_size=16,
                              patches_per_epoch=64, epochs=1, batch_size=16,
                              random_state=0).fit([img])
    made["SuperResolver"] = sr
    outputs["SuperResolver.transform"] = sr.transform(img[:20, :24])

    codec = deepae.ImageCodec(filters=8, latent_channels=8, levels=2, patch_size=16,
                              patches_per_epoch=64, epochs=1, batch_size=16,
                              random_state=0).fit([img])
    made["ImageCodec"] = codec
    data = codec.compress(img)
    (out / "ImageCodec.dae").write_bytes(data)
    outputs["ImageCodec.decompress"] = codec.decompress(data)

    for kind, est in made.items():
        est.save(out / f"{kind}.deepae", overwrite=True)
    np.savez(out / "expected.npz", x=x, image=img, **outputs)
    table.to_csv(out / "table.csv", index=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    info = {"written_by": f"deepae {deepae.__version__} at commit {commit}",
            "command": "python scripts/make_legacy_artifacts.py",
            "files": {p.name: p.stat().st_size for p in sorted(out.iterdir())}}
    (out / "README.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "legacy")
    args = ap.parse_args(argv)
    info = build(args.out)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
