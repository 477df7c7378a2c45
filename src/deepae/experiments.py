"""The reference experiment: a deep autoencoder on MNIST beside PCA at the same code size.

Encoder: two layers (a hidden layer and the code layer); decoder: one hidden layer and the
output layer; ReLU; MSE; Adam; 5 epochs. The test error is reported per pixel and as the
squared error summed over an image's 784 pixels in [0, 1] (Hinton & Salakhutdinov's unit).
"""

from __future__ import annotations

import time

import numpy as np

from deepae.apps.autoencoder import Autoencoder
from deepae.data.datasets import load_mnist
from deepae.metrics import reconstruction_errors

__all__ = ["reference_experiment", "format_table"]


def reference_experiment(*, epochs: int = 5, latent_dim: int = 32, hidden_units: int = 256,
                         batch_size: int = 256, random_state: int = 0,
                         picture="reconstructions.png", n_show: int = 10, data_path=None,
                         verbose="auto") -> dict:
    """Train the reference autoencoder on MNIST; return the error table (and write a picture).

    Returns
    -------
    dict with ``rows`` (model, code size, per-pixel MSE, squared error per image, seconds),
    ``picture`` (path or None) and ``model`` (the trained `Autoencoder`).
    """
    from sklearn.decomposition import PCA

    (x_train, _), (x_test, _) = load_mnist(data_path)
    ae = Autoencoder(hidden_units=(hidden_units,), latent_dim=latent_dim, activation="relu",
                     latent_activation="relu")
    start = time.perf_counter()
    ae.fit(x_train, epochs=epochs, batch_size=batch_size, random_state=random_state,
           verbose=verbose)
    ae_seconds = time.perf_counter() - start
    recon = ae.reconstruct(x_test)  # uint8 units
    unit = np.float32(255.0)
    ae_err = reconstruction_errors(x_test / unit, recon / unit)

    start = time.perf_counter()
    flat_train = x_train.reshape(len(x_train), -1) / unit
    flat_test = x_test.reshape(len(x_test), -1) / unit
    pca = PCA(n_components=latent_dim, svd_solver="covariance_eigh").fit(flat_train)
    pca_recon = pca.inverse_transform(pca.transform(flat_test))
    pca_seconds = time.perf_counter() - start
    pca_err = reconstruction_errors(flat_test, pca_recon)

    rows = [
        {"model": f"deep autoencoder 784-{hidden_units}-{latent_dim}-{hidden_units}-784",
         "code_size": latent_dim, **ae_err, "seconds": round(ae_seconds, 1)},
        {"model": "PCA", "code_size": latent_dim, **pca_err, "seconds": round(pca_seconds, 1)},
    ]
    out = None
    if picture:
        from deepae.plots import reconstruction_grid

        out = str(reconstruction_grid(x_test[:n_show], recon[:n_show], picture, n=n_show,
                                      title=f"MNIST test: originals (top), deep autoencoder "
                                            f"reconstructions (bottom), code size {latent_dim}"))
    return {"rows": rows, "picture": out, "model": ae, "epochs": epochs}


def format_table(rows) -> str:
    """The error table as aligned text."""
    head = f"{'model':<40} {'code':>5} {'MSE/pixel':>10} {'SE/image':>9} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<40} {r['code_size']:>5} {r['mse_per_feature']:>10.5f} "
                     f"{r['se_per_sample']:>9.2f} {r['seconds']:>8.1f}")
    return "\n".join(lines)
