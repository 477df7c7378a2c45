"""Distributed training that really is: a two-worker run (issue 8), two processes on
127.0.0.1 with TF_CONFIG training one autoencoder together under
MultiWorkerMirroredStrategy, whose result matches one process with the same global batch;
and ImageCodec's hand loop on two replicas in one process (tests/conftest.py splits the CPU
into two logical devices). The other estimators' two-replica tests: tests/test_streaming.py."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import deepae

SCRIPT = """
import json, sys, time, numpy as np, deepae
x = np.load(sys.argv[1])
strategy = sys.argv[3] if sys.argv[3] != "none" else None
ae = deepae.Autoencoder(hidden_units=(32,), latent_dim=4)
t = time.perf_counter()
ae.fit(x, epochs=3, batch_size=64, shuffle=False, random_state=0, verbose=0,
       strategy=strategy)
seconds = time.perf_counter() - t
# the other training loops: a hand loop over image patches, and a functional Keras model
images = (np.random.default_rng(0).random((4, 32, 32, 1)) * 255).astype(np.uint8)
sr = deepae.SuperResolver(filters=(8, 8), patch_size=16, patches_per_epoch=64, epochs=2,
                          batch_size=16, random_state=0, strategy=strategy).fit(images)
hasher = deepae.SemanticHasher(8, hidden_units=(16,), epochs=2, batch_size=64,
                               random_state=0, strategy=strategy).fit(x)
from deepae.distribute import is_chief
if strategy is None or is_chief():
    ae.save(sys.argv[2])
    sr.save(sys.argv[2] + ".sr")
print(json.dumps({"loss": ae.history_["loss"], "seconds": seconds,
                  "replicas": ae.training_summary_["replicas"],
                  "sr_loss": sr.history_["loss"], "hasher_loss": hasher.history_["loss"]}))
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.multiworker
def test_two_workers_match_one_process(tmp_path):
    x = np.random.default_rng(0).normal(size=(640, 12)).astype(np.float32)
    data = tmp_path / "x.npy"
    np.save(data, x)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    base_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    base_env["TF_CPP_MIN_LOG_LEVEL"] = "2"

    single = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "one.deepae"),
                             "none"], env=base_env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        env = {**base_env, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(data), str(tmp_path / "two.deepae"),
             "multi-worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [o["replicas"] for o in outs] == [2, 2]
    one, two = deepae.load(tmp_path / "one.deepae"), deepae.load(tmp_path / "two.deepae")
    # the same global batches, each split in two halves whose gradients are all-reduced:
    # the same steps up to float summation order
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    ref = json.loads(single.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(outs[0]["loss"], ref["loss"], rtol=1e-3)
    # the super-resolver's hand loop: each worker takes its half of the same global batch of
    # patches (no random draw in its step), so the same steps again
    np.testing.assert_allclose(outs[0]["sr_loss"], ref["sr_loss"], rtol=1e-3)
    one_sr, two_sr = deepae.load(tmp_path / "one.deepae.sr"), deepae.load(tmp_path / "two.deepae.sr")
    for a, b in zip(one_sr.model_.get_weights(), two_sr.model_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    # the hasher trains on under the collective strategy (its code noise and batch
    # penalties are drawn per worker, so the numbers differ a little)
    assert outs[0]["hasher_loss"] == outs[1]["hasher_loss"]
    np.testing.assert_allclose(outs[0]["hasher_loss"], ref["hasher_loss"], rtol=0.05)


@pytest.fixture(scope="module")
def codecs():
    """ImageCodec trained on one device and on two CPU replicas (tests/conftest.py), with
    zero quantisation noise: a draw per replica could not match one device's draw."""
    import tensorflow as tf

    from deepae.distribute import resolve_strategy

    assert resolve_strategy("mirrored").num_replicas_in_sync == 2, \
        "tests/conftest.py could not split the CPU into two logical devices"
    images = (np.random.default_rng(0).random((4, 32, 32)) * 255).astype(np.uint8)

    def make(strategy):
        return deepae.ImageCodec(filters=4, latent_channels=4, levels=2, patch_size=16,
                                 patches_per_epoch=32, epochs=2, batch_size=8, random_state=0,
                                 strategy=strategy)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf.random, "uniform", lambda shape, *a, **k: tf.zeros(shape))
        return images, make(None).fit(images), make("mirrored").fit(images)


# The codec clips its gradient at norm 1. Keras's `global_clipnorm` would clip each
# replica's share before the all-reduce (the runs then part by about 3e-4 in two epochs);
# deepae.distribute.clip_global_norm clips the global batch's gradient, as one device does.
def test_image_codec_on_two_replicas_trains_as_one_device(codecs):
    """ImageCodec's hand loop under MirroredStrategy on two CPU replicas: each replica codes
    half of the global batch of patches, its loss weighted by its share, the gradients are
    summed; so the same training as one device, up to float order."""
    _, plain, mirrored = codecs
    for key, values in plain.history_.items():
        if key != "seconds":
            np.testing.assert_allclose(mirrored.history_[key], values, rtol=1e-5, err_msg=key)
    for part in ("analysis_", "synthesis_", "prior_"):
        for a, b in zip(getattr(plain, part).get_weights(), getattr(mirrored, part).get_weights(),
                        strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, err_msg=part)


def test_image_codec_made_on_two_replicas_codes_and_stays_there(codecs, tmp_path):
    """A codec trained on two replicas compresses and decompresses (its frozen tables and
    weights read from the replicated variables), saves its strategy's name, and refuses to
    continue its weights under another strategy than the one they were made under."""
    images, plain, mirrored = codecs
    assert mirrored.history_["loss"][-1] < mirrored.history_["loss"][0]
    restored = mirrored.decompress(mirrored.compress(images[0]))
    assert restored.shape == images[0].shape and restored.dtype == np.uint8
    again = deepae.load(mirrored.save(tmp_path / "m.deepae"))
    assert again.strategy == "mirrored" and again.fingerprint_ == mirrored.fingerprint_
    with pytest.raises(ValueError, match="expected the `strategy` of the first fit"):
        plain.set_params(warm_start=True, strategy="mirrored").fit(images)
