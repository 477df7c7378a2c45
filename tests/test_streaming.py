"""Streaming input (issue 8): sharded .npy files, CSV and Parquet tables and image folders
read in blocks, one-pass statistics, strategies."""

import numpy as np
import pytest

from conftest import N_TEST_REPLICAS
from deepae.data.streaming import NpyShards, scaler_for, stream_dataset


def write_shards(folder, sizes, width=5, dtype=np.float32, seed=0):
    """Shards whose first column is the row's global position (to check coverage)."""
    rng = np.random.default_rng(seed)
    start, parts = 0, []
    for i, n in enumerate(sizes):
        a = (rng.normal(size=(n, width)) * 3 + 2).astype(dtype)
        a[:, 0] = np.arange(start, start + n)
        np.save(folder / f"part-{i:03d}.npy", a)
        parts.append(a)
        start += n
    return np.concatenate(parts)


def rows_seen(ds):
    return np.concatenate([np.asarray(x)[:, 0] for x, _ in ds])


def test_shards_describe_and_read(tmp_path):
    full = write_shards(tmp_path, [100, 1, 57])
    sh = NpyShards(tmp_path)
    assert sh.shape == (158, 5) and len(sh.paths) == 3 and sh.dtype == np.float32
    assert np.array_equal(np.concatenate(list(sh.iter_blocks(10))), full)
    assert np.array_equal(sh.read(2, 5, 9), full[106:110])
    assert NpyShards(str(tmp_path / "part-00[02].npy")).n_rows == 157
    assert NpyShards([tmp_path / "part-001.npy"]).n_rows == 1


def test_one_pass_stats_and_scaler_match_numpy(tmp_path):
    from deepae.data.preprocessing import Scaler

    full = write_shards(tmp_path, [300, 77, 1000])
    sh = NpyShards(tmp_path)
    st = sh.stats(block_rows=64)  # many merges
    assert st.count == len(full)
    f64 = full.astype(np.float64)
    np.testing.assert_allclose(st.mean, f64.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st.std, f64.std(axis=0), rtol=1e-9, atol=1e-9)
    s, ref = scaler_for(sh), Scaler("standard").fit(full)
    assert s.kind == "standard"
    np.testing.assert_allclose(s.transform(full), ref.transform(full), rtol=1e-5, atol=1e-5)
    assert s.data_min_ == pytest.approx(ref.data_min_, rel=1e-5)
    assert s.data_max_ == pytest.approx(ref.data_max_, rel=1e-5)
    np.testing.assert_array_equal(st.feature_min, f64.min(axis=0))
    np.testing.assert_array_equal(st.feature_max, f64.max(axis=0))
    images = tmp_path / "img"
    images.mkdir()
    np.save(images / "a.npy", np.arange(2 * 9, dtype=np.uint8).reshape(2, 3, 3))
    assert scaler_for(NpyShards(images)).kind == "unit"


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_row_once_per_epoch(tmp_path, shuffle):
    write_shards(tmp_path, [300, 45, 200])
    ds = stream_dataset(NpyShards(tmp_path), 32, shuffle=shuffle, block_rows=50,
                        shuffle_buffer=100, seed=0)
    a, b = rows_seen(ds), rows_seen(ds)
    assert np.array_equal(np.sort(a), np.arange(545)) and np.array_equal(np.sort(b), np.arange(545))
    sizes = [len(x) for x, _ in ds]
    assert max(sizes) == 32 and sum(sizes) == 545  # the last partial batch is kept
    if shuffle:
        assert not np.array_equal(a, b) and not np.array_equal(a, np.arange(545))
        # groups of two 50-row blocks (shuffle_buffer=100) are permuted together: a batch
        # holds rows of more than one block (contiguous runs of 50 rows at most)
        assert len(set((a[:32] // 50).astype(int))) >= 2
    else:
        assert np.array_equal(a, np.arange(545))


def test_workers_split_the_rows(tmp_path):
    write_shards(tmp_path, [400, 123])
    sh = NpyShards(tmp_path)
    seen = [rows_seen(stream_dataset(sh, 64, block_rows=40, num_workers=2, worker_index=w,
                                     seed=1)) for w in range(2)]
    assert not set(seen[0]) & set(seen[1])
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(523))


def test_scaling_in_the_pipeline(tmp_path):
    full = write_shards(tmp_path, [90])
    sh = NpyShards(tmp_path)
    s = scaler_for(sh, "minmax")
    x = np.concatenate([np.asarray(b) for b, _ in stream_dataset(sh, 30, scaler=s,
                                                                   shuffle=False)])
    np.testing.assert_allclose(x, s.transform(full), rtol=1e-6, atol=1e-6)
    assert x.min() == pytest.approx(0) and x.max() == pytest.approx(1)


def test_bad_shards(tmp_path):
    with pytest.raises(FileNotFoundError, match="found none in the folder"):
        NpyShards(tmp_path)
    with pytest.raises(FileNotFoundError, match="No data at"):
        NpyShards(tmp_path / "nope.npy")
    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"one shape and dtype; received shapes \[\(4,\), \(5,\)\]"):
        NpyShards(tmp_path)
    (tmp_path / "c.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="could not read"):
        NpyShards([tmp_path / "c.npy"])
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "e.npy", np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="are empty"):
        NpyShards(empty)


def test_autoencoder_trains_on_shards(tmp_path):
    from deepae import Autoencoder

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 12))
    for i in range(3):
        np.save(tmp_path / f"p{i}.npy", (rng.normal(size=(200, 3)) @ basis).astype(np.float32))
    sh = NpyShards(tmp_path)
    full = np.concatenate(list(sh.iter_blocks()))
    ae = Autoencoder(latent_dim=3, hidden_units=(16,))
    hist = ae.fit(sh, epochs=20, batch_size=32, random_state=0, verbose=0)
    assert ae.training_summary_["n_samples"] == 600 and ae.scaler_.kind == "standard"
    # as well as the same training on the array in memory (other batches, same steps)
    mem = Autoencoder(latent_dim=3, hidden_units=(16,)).fit(full, epochs=20, batch_size=32,
                                                           random_state=0, verbose=0)
    final, ref = hist.history["loss"][-1], mem.history["loss"][-1]
    assert final < 0.3 * hist.history["loss"][0] and final < 1.3 * ref
    assert ae.reconstruct(full[:5]).shape == (5, 12)
    with pytest.raises(ValueError, match="expected y=None and validation_split=0"):
        Autoencoder(latent_dim=3).fit(sh, validation_split=0.1)


def two_replicas(strategy="mirrored"):
    """The strategy that `strategy` names, checked to run two replicas (tests/conftest.py
    splits the CPU in two): with one, a strategy takes the very path of no strategy."""
    from deepae.distribute import resolve_strategy

    dist = resolve_strategy(strategy)
    assert dist.num_replicas_in_sync == N_TEST_REPLICAS == 2, (
        "MirroredStrategy runs one replica: tests/conftest.py could not split the CPU into "
        "two logical devices (TensorFlow had started before it)")
    return dist


def test_mirrored_strategy_trains_like_a_single_device():
    """MirroredStrategy on two CPU replicas: each takes half of every global batch and the
    gradients are all-reduced, so the same steps as no strategy, up to float summation
    order; a model built under the strategy trains on under it."""
    from deepae import Autoencoder

    two_replicas()
    x = np.random.default_rng(0).random((256, 10)).astype(np.float32)
    runs = []
    for strategy in (None, "mirrored"):
        ae = Autoencoder(latent_dim=3, hidden_units=(8,))
        ae.fit(x, epochs=3, batch_size=64, random_state=0, verbose=0, strategy=strategy,
               shuffle=False)
        runs.append(ae)
    assert runs[1].training_summary_["strategy"] == "MirroredStrategy"
    assert runs[1].training_summary_["replicas"] == 2
    np.testing.assert_allclose(runs[1].history_["loss"], runs[0].history_["loss"], rtol=1e-5)
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    runs[1].fit(x, epochs=1, strategy="mirrored", verbose=0)  # built under it: trains on
    assert runs[1].training_summary_["replicas"] == 2


def test_strategy_errors():
    from deepae import Autoencoder

    x = np.random.default_rng(0).random((64, 10)).astype(np.float32)
    plain = Autoencoder(latent_dim=3, hidden_units=(8,))
    plain.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="expected an unbuilt model"):
        plain.fit(x, epochs=1, strategy="mirrored")
    with pytest.raises(ValueError, match="`strategy` in"):
        Autoencoder(latent_dim=3).fit(x, epochs=1, strategy="tpu")


def test_cli_train_streams_shards(tmp_path, capsys):
    from deepae import load
    from deepae.cli.main import main

    full = write_shards(tmp_path, [200, 150], width=6)
    out = tmp_path / "m.deepae"
    assert main(["train", str(tmp_path / "part-*.npy"), "--stream", "-o", str(out),
                 "--epochs", "2", "--latent-dim", "2", "--hidden-units", "8", "--quiet"]) == 0
    m = load(out)
    assert m.training_summary_["n_samples"] == 350 and m.training_summary_["strategy"] is None
    # the scaling came from the shards' one pass: the statistics of all 350 rows
    from deepae.data.preprocessing import Scaler

    ref = Scaler(m.scaler_.kind).fit(full)
    np.testing.assert_allclose(m.scaler_.transform(full), ref.transform(full), rtol=1e-5,
                               atol=1e-5)


def test_cli_train_streams_shards_on_two_replicas(tmp_path):
    from deepae import load
    from deepae.cli.main import main

    two_replicas()
    write_shards(tmp_path, [200, 150], width=6)
    out = tmp_path / "m.deepae"
    assert main(["train", str(tmp_path / "part-*.npy"), "--stream", "-o", str(out),
                 "--epochs", "2", "--latent-dim", "2", "--hidden-units", "8", "--quiet",
                 "--strategy", "mirrored"]) == 0
    m = load(out)
    assert m.training_summary_["n_samples"] == 350 and m.training_summary_["replicas"] == 2


def test_estimators_take_a_strategy(tmp_path):
    """The estimators pass their strategy to training (two replicas, the same training as
    without one up to float order) and save its name."""
    from deepae import AnomalyDetector, AutoencoderReducer, load

    two_replicas()
    X = np.random.default_rng(1).random((200, 8)).astype(np.float32)
    kw = dict(hidden_units=(8,), epochs=2, random_state=0)
    red = AutoencoderReducer(2, strategy="mirrored", **kw).fit(X)
    assert red.autoencoder_.training_summary_["replicas"] == 2
    np.testing.assert_allclose(red.transform(X), AutoencoderReducer(2, **kw).fit(X).transform(X),
                               rtol=1e-4, atol=1e-5)
    assert load(red.save(tmp_path / "r.deepae")).strategy == "mirrored"
    det = AnomalyDetector(epochs=2, strategy="mirrored", random_state=0).fit(X)
    assert all(ae.training_summary_["replicas"] == 2 for ae in det.autoencoders_)
    with pytest.raises(ValueError, match="`strategy` in"):
        AutoencoderReducer(2, epochs=1, strategy="gpu-cluster").fit(X)


@pytest.mark.parametrize("kind", ["Denoiser", "SuperResolver", "SemanticHasher"])
def test_hand_loop_and_functional_estimators_take_a_strategy(kind, tmp_path):
    """The image estimators' hand loop (`deepae.distribute.replica_step`) and the hasher's
    functional model under MirroredStrategy on two CPU replicas: each replica takes half of
    the global batch, its loss weighted by its share, the gradients are summed; so the very
    same training as without a strategy, up to float order. Nothing random in the step here
    (no noise for the denoiser, no code noise or batch penalties for the hasher): a draw per
    replica could not match one device's draw. ImageCodec: tests/test_distributed.py."""
    import deepae

    two_replicas()
    rng = np.random.default_rng(0)
    images = (rng.random((4, 32, 32)) * 255).astype(np.uint8)
    X = rng.random((120, 10)).astype(np.float32)
    small = dict(patch_size=16, patches_per_epoch=32, epochs=2, batch_size=8, random_state=0)
    make = {
        "Denoiser": lambda s: deepae.Denoiser(filters=(4, 4), sigma=0.0, strategy=s, **small),
        "SuperResolver": lambda s: deepae.SuperResolver(filters=(4, 4), strategy=s, **small),
        "SemanticHasher": lambda s: deepae.SemanticHasher(
            6, hidden_units=(8,), epochs=2, noise_stddev=0.0, balance=0.0, decorrelation=0.0,
            random_state=0, strategy=s),
    }[kind]
    data = X if kind == "SemanticHasher" else images
    plain, mirrored = make(None).fit(data), make("mirrored").fit(data)
    for key, values in plain.history_.items():
        if key == "objective":  # the restorers' loss per epoch ("mse" or "psnr")
            assert mirrored.history_[key] == values
        elif key != "seconds":
            np.testing.assert_allclose(mirrored.history_[key], values, rtol=1e-5)
    for a, b in zip(plain.model_.get_weights(), mirrored.model_.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    assert deepae.load(mirrored.save(tmp_path / "m.deepae")).strategy == "mirrored"


def test_tf_config_parsing(monkeypatch):
    from deepae.distribute import is_chief, worker_info

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_info() == (0, 1) and is_chief()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, '
                                    '"task": {"type": "worker", "index": 1}}')
    assert worker_info() == (1, 2) and not is_chief()
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ValueError, match="TF_CONFIG as JSON .* received 'not json'"):
        worker_info()


# -- tables and image folders ------------------------------------------------------------------
def write_table(folder, n=2600, parts=2, fmt="csv", row_group_size=700):
    """A numeric table (first column = global row) in `parts` files, plus a text column."""
    import pandas as pd

    rng = np.random.default_rng(3)
    full = rng.normal(size=(n, 4)).astype(np.float32)
    full[:, 0] = np.arange(n)
    frame = pd.DataFrame(full, columns=["row", "a", "b", "c"])
    frame["merchant"] = "shop"
    for i, part in enumerate(np.array_split(np.arange(n), parts)):
        chunk = frame.iloc[part]
        if fmt == "csv":
            chunk.to_csv(folder / f"t-{i}.csv", index=False)
        else:
            chunk.to_parquet(folder / f"t-{i}.parquet", row_group_size=row_group_size)
    return full


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_stream_every_row_exactly(tmp_path, fmt):
    from deepae.data.shards import TableShards, open_shards

    full = write_table(tmp_path, fmt=fmt)
    cols = ["row", "a", "b", "c"]
    sh = open_shards(tmp_path, columns=cols)
    assert isinstance(sh, TableShards) and sh.shape == (2600, 4) and sh.columns == cols
    for block_rows in (999, 4096):  # blocks across the CSV line index (every 1024th line)
        assert np.array_equal(np.concatenate(list(sh.iter_blocks(block_rows))), full)
    if fmt == "csv":
        assert np.array_equal(sh.read(1, 1020, 1100), full[2320:2400])
    else:  # a Parquet block is a row group, whatever size is asked
        assert sh.blocks(10)[:3].tolist() == [[0, 0, 700], [0, 700, 1300], [1, 0, 700]]
    st = sh.stats(block_rows=500)
    np.testing.assert_allclose(st.mean, full.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(st.std, full.std(0), rtol=1e-5)
    seen = np.concatenate([np.asarray(x)[:, 0] for x, _ in
                           stream_dataset(sh, 256, shuffle=True, seed=0, block_rows=512)])
    assert sorted(seen.astype(int).tolist()) == list(range(2600))
    with pytest.raises(ValueError, match=r"column\(s\) \['merchant'\].*Leave them out"):
        open_shards(tmp_path)
    with pytest.raises(ValueError, match=r"Unknown column\(s\) \['amount'\]"):
        TableShards(tmp_path, columns=["amount"])


def test_csv_edge_cases_and_errors(tmp_path):
    from deepae.data.shards import TableShards, open_shards

    (tmp_path / "no_newline.csv").write_text("x,y\n1,2\n3,4")  # last line without \n
    assert np.array_equal(TableShards(tmp_path / "no_newline.csv").read(0, 0, 2),
                          [[1, 2], [3, 4]])
    (tmp_path / "header_only.csv").write_text("x,y\n")
    with pytest.raises(ValueError, match="Expected rows to train on"):
        TableShards(tmp_path / "header_only.csv")
    (tmp_path / "missing.csv").write_text("x,y\n1,2\n3,\n")
    with pytest.raises(ValueError, match=r"'missing.csv' row 1 has nan in column 'y'"):
        TableShards(tmp_path / "missing.csv").stats()
    (tmp_path / "late_text.csv").write_text("x,y\n" + "1,2\n" * 1500 + "1,oops\n")
    with pytest.raises(ValueError, match=r"numbers in column 'y'; 'late_text.csv' row 1500 "
                                         r"has 'oops'"):
        TableShards(tmp_path / "late_text.csv").stats()
    (tmp_path / "big.csv.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="Cannot stream the compressed file"):
        open_shards(tmp_path / "big.csv.gz")
    with pytest.raises(ValueError, match="one format"):
        TableShards([tmp_path / "no_newline.csv", *write_parquet_file(tmp_path)])


def write_parquet_file(folder):
    import pandas as pd

    path = folder / "one.parquet"
    pd.DataFrame({"x": [1.0], "y": [2.0]}).to_parquet(path)
    return [path]


def test_image_folder_streams_and_trains(tmp_path):
    from PIL import Image

    from deepae import Autoencoder
    from deepae.data.shards import ImageFolder, open_shards

    rng = np.random.default_rng(0)
    images = (rng.random((12, 8, 6)) * 255).astype(np.uint8)
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i:02d}.png")
    src = open_shards(tmp_path)
    assert isinstance(src, ImageFolder) and src.shape == (12, 8, 6) and src.dtype == np.uint8
    assert np.array_equal(np.concatenate(list(src.iter_blocks(5))), images)
    assert scaler_for(src).kind == "unit"  # uint8: no statistics pass needed
    ae = Autoencoder(hidden_units=(16,), latent_dim=2)
    hist = ae.fit(src, epochs=2, batch_size=4, verbose=0, random_state=0)
    assert ae.training_summary_["n_samples"] == 12 and len(hist.history["loss"]) == 2
    assert ae.reconstruct(images[:2]).shape == (2, 8, 6)
    Image.fromarray(np.zeros((10, 6), np.uint8)).save(tmp_path / "99-odd.png")
    with pytest.raises(ValueError, match=r"99-odd.png gives \(10, 6\).*size=\(h, w\)"):
        open_shards(tmp_path).read(0, 0, 13)
    resized = ImageFolder(tmp_path, size=(4, 3), mode="RGB")
    assert resized.read(0, 10, 13).shape == (3, 4, 3, 3)
    with pytest.raises(ValueError, match=r"`size` as \(height, width\)"):
        ImageFolder(tmp_path, size=4)


def test_autoencoder_and_cli_train_from_a_streamed_csv(tmp_path):
    from deepae import load
    from deepae.cli.main import main
    from deepae.data.shards import TableShards

    full = write_table(tmp_path, n=1500, parts=1)
    sh = TableShards(tmp_path / "t-0.csv", columns=["a", "b", "c"])
    out = tmp_path / "m.deepae"
    (tmp_path / "num.csv").write_text(
        "a,b,c\n" + "\n".join(",".join(f"{v:.6g}" for v in r) for r in full[:, 1:]) + "\n")
    assert main(["train", str(tmp_path / "num.csv"), "--stream", "-o", str(out), "--epochs",
                 "2", "--latent-dim", "2", "--hidden-units", "8", "--quiet"]) == 0
    m = load(out)
    assert m.training_summary_["n_samples"] == 1500 and m.scaler_.kind == "standard"
    np.testing.assert_allclose(m.scaler_.offset_, full[:, 1:].mean(0), atol=1e-4)
    assert sh.fingerprint() != TableShards(tmp_path / "num.csv").fingerprint()
