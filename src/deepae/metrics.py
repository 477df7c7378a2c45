"""Reconstruction metrics in the units the literature uses."""

from __future__ import annotations

import numpy as np

__all__ = ["reconstruction_errors"]


def reconstruction_errors(x, x_hat) -> dict:
    """Errors between `x` and its reconstruction `x_hat`, both scaled to the same units.

    Returns
    -------
    dict
        ``mse_per_feature``: mean squared error per pixel / feature;
        ``se_per_sample``: squared error summed over a sample's features, averaged over
        samples (Hinton & Salakhutdinov 2006's "average squared error per image" when the
        data is in [0, 1]).
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    x_hat = np.asarray(x_hat, np.float64).reshape(len(x_hat), -1)
    if x.shape != x_hat.shape:
        raise ValueError(f"Expected `x_hat` with the shape of `x` {x.shape}; "
                         f"received {x_hat.shape}.")
    se = ((x - x_hat) ** 2).sum(axis=1)
    return {"mse_per_feature": float(se.mean() / x.shape[1]), "se_per_sample": float(se.mean())}
