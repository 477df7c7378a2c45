import pickle

import numpy as np
import pytest

import deepae
from deepae import AutoencoderReducer, compare_with_pca
from deepae.cli.main import main


@pytest.fixture
def lowrank(rng):
    """600 x 16 data near a 3-d subspace."""
    z = rng.normal(size=(600, 3))
    return (z @ rng.normal(size=(3, 16)) + 0.1 * rng.normal(size=(600, 16))).astype(np.float64)


def quick(**kw):
    kw = {"n_components": 3, "hidden_units": (16,), "epochs": 20, "batch_size": 64,
          "random_state": 0, **kw}
    return AutoencoderReducer(**kw)


def test_fit_transform_inverse_score(lowrank):
    red = quick().fit(lowrank)
    codes = red.transform(lowrank)
    assert codes.shape == (600, 3) and codes.dtype == np.float64
    recon = red.inverse_transform(codes)
    assert recon.shape == lowrank.shape
    assert red.score(lowrank) == pytest.approx(-np.mean((lowrank - recon) ** 2), rel=1e-5)
    assert red.score(lowrank) > -np.var(lowrank)  # better than predicting the mean
    assert list(red.get_feature_names_out()) == [f"autoencoderreducer{i}" for i in range(3)]


def test_linear_autoencoder_matches_pca(lowrank):
    """No hidden nonlinearity: the autoencoder finds PCA's subspace, so its error is PCA's.
    Its loss is still falling after 300 epochs (5% above PCA's there, depending on the
    batches' order): 600 epochs reach it within about 1%."""
    from sklearn.decomposition import PCA

    k = 3
    red = AutoencoderReducer(n_components=k, hidden_units=(), activation="linear",
                             preprocessing="none", epochs=600, batch_size=100,
                             learning_rate=1e-2, validation_fraction=0.0, random_state=0)
    red.fit(lowrank)
    ae_mse = -red.score(lowrank)
    pca = PCA(n_components=k).fit(lowrank)
    pca_mse = float(np.mean((lowrank - pca.inverse_transform(pca.transform(lowrank))) ** 2))
    assert ae_mse == pytest.approx(pca_mse, rel=0.05)
    one_less = PCA(n_components=k - 1).fit(lowrank)
    worse = np.mean((lowrank - one_less.inverse_transform(one_less.transform(lowrank))) ** 2)
    assert ae_mse < 0.5 * worse  # the tolerance is far tighter than one component's worth


def test_pipeline_and_grid_search(lowrank, rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = (lowrank[:, 0] > np.median(lowrank[:, 0])).astype(int)
    pipe = make_pipeline(StandardScaler(), quick(epochs=5), LogisticRegression())
    pipe.fit(lowrank, y)
    assert pipe.score(lowrank, y) > 0.7
    search = GridSearchCV(quick(epochs=40, learning_rate=3e-3), {"n_components": [1, 3]}, cv=2)
    search.fit(lowrank)
    assert search.best_params_["n_components"] == 3  # more code, less error
    assert search.best_estimator_.transform(lowrank).shape == (600, 3)


def test_save_load_and_pickle_identical(lowrank, tmp_path):
    red = quick(epochs=3).fit(lowrank)
    red.save(tmp_path / "r.deepae")
    loaded = deepae.load(tmp_path / "r.deepae")
    assert isinstance(loaded, AutoencoderReducer)
    assert loaded.get_params() == red.get_params()
    np.testing.assert_array_equal(loaded.transform(lowrank), red.transform(lowrank))
    again = pickle.loads(pickle.dumps(red))
    np.testing.assert_array_equal(again.inverse_transform(again.transform(lowrank)),
                                  red.inverse_transform(red.transform(lowrank)))


def test_conv_reducer_on_digits():
    (x, _), (xt, _) = deepae.datasets.load_digits()
    red = AutoencoderReducer(n_components=8, kind="conv", image_shape=(8, 8), epochs=3,
                             batch_size=64, random_state=0)
    red.fit(x.reshape(len(x), -1))
    assert red.transform(xt.reshape(len(xt), -1)).shape == (len(xt), 8)
    assert red.autoencoder_.encoder.hidden[0].__class__.__name__ == "Conv2D"


@pytest.mark.parametrize("params,X_shape,exc,match", [
    ({"n_components": 0}, (20, 4), ValueError,
     r"'n_components' parameter of AutoencoderReducer must be an int in the range \[1, inf\)"
     r". Got 0 instead"),
    ({"n_components": -2}, (20, 4), ValueError, "Got -2 instead"),
    ({"n_components": 1.5}, (20, 4), TypeError, "Got 1.5 instead"),
    ({"n_components": 4}, (20, 4), ValueError,
     r"must be smaller than the number of features \(n_features=4\); got 4"),
    ({"n_components": 9}, (20, 4), ValueError, "got 9, which compresses nothing"),
    ({"kind": "conv"}, (20, 4), ValueError, "'image_shape' parameter .* is needed"),
    ({"kind": "conv", "image_shape": (3, 3)}, (20, 4), ValueError, r"n_features=4 values; got \(3, 3\)"),
    ({"epochs": 0}, (20, 4), ValueError, "'epochs'"),
])
def test_bad_parameters(rng, params, X_shape, exc, match):
    with pytest.raises(exc, match=match):
        quick(**{"n_components": 1, **params}).fit(rng.normal(size=X_shape))


def test_bad_data(lowrank):
    red = quick(epochs=1).fit(lowrank)
    with pytest.raises(ValueError, match="X has 15 features, but AutoencoderReducer is "
                                         "expecting 16 features as input"):
        red.transform(lowrank[:, :15])
    bad = lowrank.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        red.transform(bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        quick().fit(bad)
    with pytest.raises(ValueError, match="X has 2 features, but AutoencoderReducer."
                                         "inverse_transform is expecting 3"):
        red.inverse_transform(np.zeros((2, 2)))


def test_compare_with_pca_units(lowrank):
    lo, hi = lowrank.min(), lowrank.max()
    res = compare_with_pca(lowrank[:500], lowrank[500:], 3, hidden_units=(16,), epochs=5,
                           random_state=0)
    rows = {r["model"]: r for r in res["rows"]}
    assert set(rows) == {"autoencoder", "PCA"}
    for r in rows.values():
        assert r["se_per_sample"] == pytest.approx(16 * r["mse_per_feature"])
        assert r["transform_seconds"] >= 0
    pca = res["models"]["PCA"]
    recon = pca.inverse_transform(pca.transform(lowrank[500:]))
    expected = np.mean(((lowrank[500:] - recon) / (hi - lo)) ** 2)  # [0, 1] units
    assert rows["PCA"]["mse_per_feature"] == pytest.approx(expected, rel=1e-6)


def test_cli_reduce_table_model_and_plots(tmp_path, capsys, rng):
    (x, _), (xt, yt) = deepae.datasets.load_digits()
    np.save(tmp_path / "train.npy", x.reshape(len(x), -1))
    np.save(tmp_path / "test.npy", xt.reshape(len(xt), -1))
    np.save(tmp_path / "labels.npy", yt)
    rc = main(["reduce", str(tmp_path / "train.npy"), "--test", str(tmp_path / "test.npy"),
               "--labels", str(tmp_path / "labels.npy"), "-k", "10", "--epochs", "3",
               "--hidden-units", "32,16", "--plots", str(tmp_path / "plots"), "-o",
               str(tmp_path / "red.deepae"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "autoencoder" in out and "PCA" in out and "SE/sample" in out
    assert (tmp_path / "plots" / "error_vs_code_size.png").stat().st_size > 5000
    assert (tmp_path / "plots" / "embedding_2d.png").stat().st_size > 5000
    capsys.readouterr()
    assert isinstance(deepae.load(tmp_path / "red.deepae"), AutoencoderReducer)
    assert main(["info", str(tmp_path / "red.deepae")]) == 0
    text = capsys.readouterr().out
    assert "AutoencoderReducer(" in text and "64 -> 32 -> 16 -> 10 -> 16 -> 32 -> 64" in text
    assert main(["encode", str(tmp_path / "red.deepae"), str(tmp_path / "test.npy"), "-o",
                 str(tmp_path / "codes.npy")]) == 0
    assert np.load(tmp_path / "codes.npy").shape == (len(xt), 10)
