"""Dimensionality reduction with a deep autoencoder, as a scikit-learn transformer.

`AutoencoderReducer` drops in where `sklearn.decomposition.PCA` is used: `fit`,
`transform` (the codes), `inverse_transform` (reconstructions), `score` (negative
reconstruction error), `n_components` as the code size. `compare_with_pca` puts its test
error beside PCA's at the same code size.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from deepae._validation import (
    BOOLEAN,
    CALLABLE,
    OPTIMIZER,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    UNITS,
    Interval,
    Options,
    check_units,
)
from deepae.apps._base import ArtifactEstimatorMixin
from deepae.apps.autoencoder import Autoencoder, autoencoder_state, restore_autoencoder
from deepae.apps.export import ExportMixin, autoencoder_graph
from deepae.data.preprocessing import KINDS as SCALINGS
from deepae.metrics import reconstruction_errors
from deepae.nn.autoencoders import ACTIVATIONS, KINDS
from deepae.persistence import Artifact, register_loader
from deepae.training import LOSSES, OPTIMIZERS, RUN_PARAMS_DOC, SCHEDULES

__all__ = ["AutoencoderReducer", "compare_with_pca", "reduction_plots", "default_hidden_units"]


def default_hidden_units(n_features: int, n_components: int) -> tuple[int, ...]:
    """Encoder layers when the user gives none.

    Images and other wide inputs (>= 256 features) get Hinton & Salakhutdinov's
    1000-500-250; narrower tables get two layers between the input and the code.
    """
    if n_features >= 256:
        return (1000, 500, 250)
    wide = max(2 * n_components, min(4 * n_features, 256), 8)
    return (wide, max(n_components + 1, wide // 2))


class AutoencoderReducer(ExportMixin, ArtifactEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                         BaseEstimator):
    """Nonlinear dimensionality reduction by a deep autoencoder (a PCA replacement).

    Parameters
    ----------
    n_components : int, default=2
        Size of the code; must be smaller than the number of features.
    kind : {"dense", "conv"}, default="dense"
        ``"conv"`` needs `image_shape`.
    hidden_units : tuple of int, optional
        Encoder layers, widest first (filters for conv); the decoder mirrors them. Default:
        1000-500-250 for inputs of 256 features or more (images), two layers for tables.
    image_shape : tuple of int, optional
        ``(h, w)`` or ``(h, w, c)`` of each row, for ``kind="conv"``.
    activation : str, default="relu"
    tied_weights : bool, default=False
        Dense only: the decoder reuses the encoder's kernels, transposed (half the weights;
        on MNIST it overfits less, see the README's reduction benchmark).
    loss : {"mse", "mae", "binary_crossentropy"}, default="mse"
    epochs, batch_size, learning_rate :
        Defaults 50 epochs, batch 256, 1e-3.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    lr_schedule : {"constant", "cosine"}, default="constant"
        "cosine" decays the learning rate to 1% of its start over the epochs.
    validation_fraction : float in [0, 1), default=0.1
        Random share of the rows held out to stop early (no early stopping when 0 or when
        too few rows).
    early_stopping : int, default=5
        Patience in epochs; the best weights are kept.
    preprocessing : str, default="auto"
        See `deepae.Autoencoder`.
{run}    strategy : None, "single", "mirrored", "multi-worker" or tf.distribute.Strategy
        Where training runs (`deepae.distribute`, docs/distributed.md); `batch_size` is the
        global batch. A strategy instance is not saved with the model (its name is).
    random_state : int, optional
    verbose : int, default=0

    Attributes
    ----------
    autoencoder_ : Autoencoder
    n_features_in_ : int
    history_ : dict
        Loss per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from deepae import AutoencoderReducer
    >>> X = np.random.default_rng(0).random((100, 8))
    >>> codes = AutoencoderReducer(n_components=2, epochs=2, random_state=0).fit_transform(X)
    >>> codes.shape
    (100, 2)
    """

    def __init__(self, n_components=2, *, kind="dense", hidden_units=None, image_shape=None,
                 activation="relu", tied_weights=False, loss="mse", epochs=50, batch_size=256,
                 learning_rate=1e-3, optimizer="adam", lr_schedule="constant",
                 validation_fraction=0.1, early_stopping=5, preprocessing="auto",
                 callbacks=None, checkpoint_dir=None, resume=False, strategy=None,
                 random_state=None, verbose=0):
        self.n_components = n_components
        self.kind = kind
        self.hidden_units = hidden_units
        self.image_shape = image_shape
        self.activation = activation
        self.tied_weights = tied_weights
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.preprocessing = preprocessing
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.strategy = strategy
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------------------
    _parameter_constraints = {
        "n_components": [POSITIVE_INT], "kind": [Options(str, KINDS)],
        "hidden_units": [UNITS, None], "image_shape": [UNITS, None],
        "activation": [Options(str, ACTIVATIONS), CALLABLE], "tied_weights": [BOOLEAN],
        "loss": [Options(str, LOSSES)], "epochs": [POSITIVE_INT], "batch_size": [POSITIVE_INT],
        "learning_rate": [POSITIVE_FLOAT], "optimizer": [Options(str, OPTIMIZERS), OPTIMIZER],
        "lr_schedule": [Options(str, SCHEDULES)],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "early_stopping": [POSITIVE_INT, None],
        "preprocessing": [Options(str, {"auto", *SCALINGS})], **RUN_CONSTRAINTS,
    }

    def _shapes(self, n_features):
        """(code size, hidden units, sample shape) for data of `n_features` columns."""
        name = type(self).__name__
        k = int(self.n_components)
        if k >= n_features:
            raise ValueError(
                f"The 'n_components' parameter of {name} must be smaller than the number of "
                f"features (n_features={n_features}); got {k}, which compresses nothing.")
        hidden = (default_hidden_units(n_features, k) if self.hidden_units is None
                  else check_units(self.hidden_units, "hidden_units", owner=name))
        shape = (n_features,)
        if self.kind == "conv":
            if self.image_shape is None:
                raise ValueError(f"The 'image_shape' parameter of {name} is needed for "
                                 "kind='conv': the (height, width[, channels]) of each row.")
            shape = check_units(self.image_shape, "image_shape", owner=name)
            if int(np.prod(shape)) != n_features:
                raise ValueError(f"The 'image_shape' parameter of {name} must hold "
                                 f"n_features={n_features} values; got {shape} "
                                 f"({int(np.prod(shape))}).")
            if self.hidden_units is None:
                hidden = (32, 64)
        return k, hidden, shape

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, y=None, *, keep_checkpoint=False):
        """Train the autoencoder on `X` of shape (n_samples, n_features); returns self. With
        `keep_checkpoint`, a `checkpoint_dir` stays after training (until
        `deepae.training.remove_checkpoint`, once the model is saved)."""
        X = validate_data(self, X, reset=True, dtype="numeric")
        self._validate_params()
        k, hidden, shape = self._shapes(X.shape[1])
        X = X.reshape((len(X), *shape))
        val, train = None, X
        n_val = int(round(len(X) * self.validation_fraction))
        if n_val >= 1 and len(X) - n_val >= 1:
            perm = np.random.default_rng(self.random_state).permutation(len(X))
            train, val = X[perm[n_val:]], X[perm[:n_val]]
        self.autoencoder_ = Autoencoder(
            shape, kind=self.kind, hidden_units=hidden, latent_dim=k,
            activation=self.activation, preprocessing=self.preprocessing,
            tied_weights=bool(self.tied_weights))
        self.autoencoder_.fit(
            train, epochs=self.epochs, batch_size=self.batch_size, loss=self.loss,
            learning_rate=float(self.learning_rate), optimizer=self.optimizer,
            lr_schedule=self.lr_schedule, validation_data=val,
            early_stopping=self.early_stopping if val is not None else None,
            callbacks=self.callbacks, checkpoint_dir=self.checkpoint_dir, resume=self.resume,
            keep_checkpoint=keep_checkpoint, random_state=self.random_state,
            verbose=self.verbose, strategy=self.strategy)
        self.history_ = {k: list(v) for k, v in self.autoencoder_.history_.items()}
        self._n_features_out = k
        return self

    def _out_dtype(self, X):
        return X.dtype if X.dtype in (np.float32, np.float64) else np.float64

    def describe(self) -> dict:
        """What the fitted reducer is, as a JSON-able dict (what `deepae info` prints)."""
        check_is_fitted(self, "autoencoder_")
        return {"estimator": repr(self), **self.autoencoder_.describe()}

    def transform(self, X):
        """Codes of `X`, shape (n_samples, n_components)."""
        check_is_fitted(self, "autoencoder_")
        X = validate_data(self, X, reset=False, dtype="numeric")
        codes = self.autoencoder_.encode(X.reshape((len(X), *self.autoencoder_.data_shape)))
        return codes.astype(self._out_dtype(X))

    def _serving_graph(self):
        return autoencoder_graph(self.autoencoder_, outputs=("codes",),
                                 flat_features=int(self.n_features_in_))

    def inverse_transform(self, X):
        """Reconstructions, shape (n_samples, n_features), from codes (n_samples, k)."""
        check_is_fitted(self, "autoencoder_")
        Z = check_array(X, dtype="numeric", input_name="X")
        k = self.autoencoder_.encoder.latent_dim
        if Z.shape[1] != k:
            raise ValueError(f"X has {Z.shape[1]} features, but {type(self).__name__}."
                             f"inverse_transform is expecting {k} features (the codes).")
        out = self.autoencoder_.decode(Z).reshape(len(Z), -1)
        return out.astype(self._out_dtype(Z))

    def score(self, X, y=None):
        """Negative mean squared reconstruction error per feature, in the data's units."""
        check_is_fitted(self, "autoencoder_")
        X = validate_data(self, X, reset=False, dtype="numeric")
        R = self.inverse_transform(self.transform(X)).astype(np.float64)
        return -float(np.mean((X.astype(np.float64) - R) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- persistence: one artifact format, also behind pickle ------------------------------
    def _artifact_parts(self):
        meta, arrays = autoencoder_state(self.autoencoder_)
        return ({"n_features_in": int(self.n_features_in_), "autoencoder": meta},
                {"model": self.autoencoder_}, arrays)

    def _restore(self, art: Artifact) -> None:
        self.autoencoder_ = restore_autoencoder(art.models["model"],
                                                art.metadata["autoencoder"], art.arrays)
        self.n_features_in_ = art.metadata["n_features_in"]
        self.history_ = {k: list(v) for k, v in self.autoencoder_.history_.items()}
        self._n_features_out = self.autoencoder_.encoder.latent_dim


register_loader("AutoencoderReducer", model_class="deepae>Autoencoder")(AutoencoderReducer._from_artifact)


def _unit_range(X_train):
    """Offset and scale that map the training data to [0, 1] (the paper's unit)."""
    lo, hi = float(np.min(X_train)), float(np.max(X_train))
    if X_train.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    return lo, (hi - lo) if hi > lo else 1.0


def compare_with_pca(X_train, X_test, n_components=30, *, reducer=None, **reducer_params):
    """Test reconstruction error of an `AutoencoderReducer` beside PCA at the same code size.

    Parameters
    ----------
    X_train, X_test : array of shape (n_samples, n_features)
    n_components : int
    reducer : AutoencoderReducer, optional
        A fitted one to evaluate; otherwise one is fitted with `reducer_params`.

    Returns
    -------
    dict with ``rows``: for the autoencoder and for PCA, ``mse_per_feature`` and
    ``se_per_sample`` with the data mapped to [0, 1] by the training range (the paper's
    unit), fit and transform seconds; and ``models``.
    """
    from sklearn.decomposition import PCA

    X_train = check_array(X_train, dtype="numeric", input_name="X_train")
    X_test = check_array(X_test, dtype="numeric", input_name="X_test")
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test has {X_test.shape[1]} features, but X_train has "
                         f"{X_train.shape[1]}.")
    lo, scale = _unit_range(X_train)
    unit = (X_test.astype(np.float64) - lo) / scale
    rows, models = [], {}
    if reducer is None:
        reducer = AutoencoderReducer(n_components=n_components, **reducer_params)
        t = time.perf_counter()
        reducer.fit(X_train)
        fit_s = time.perf_counter() - t
    else:
        check_is_fitted(reducer, "autoencoder_")
        fit_s = float(reducer.autoencoder_.training_summary_.get("seconds", float("nan")))
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=0)
    t = time.perf_counter()
    pca.fit(X_train.astype(np.float32) if X_train.dtype == np.uint8 else X_train)
    pca_fit_s = time.perf_counter() - t
    for name, model, fs in (("autoencoder", reducer, fit_s), ("PCA", pca, pca_fit_s)):
        xt = X_test.astype(np.float32) if X_test.dtype == np.uint8 else X_test
        model.transform(xt[:10])  # warm-up: graph tracing is not transform time
        t = time.perf_counter()
        codes = model.transform(xt)
        tr_s = time.perf_counter() - t
        recon = (model.inverse_transform(codes).astype(np.float64) - lo) / scale
        rows.append({"model": name, "code_size": int(n_components),
                     **reconstruction_errors(unit, recon), "fit_seconds": round(fs, 2),
                     "transform_seconds": round(tr_s, 4)})
        models[name] = model
    return {"rows": rows, "models": models}


def reduction_plots(X_train, X_test, folder, *, labels_test=None, sizes=(2, 10, 30),
                    fitted=None, overwrite: bool = True, **reducer_params) -> list:
    """Write the reduction plots to `folder`; return their paths.

    ``error_vs_code_size.png``: test squared error per sample (the [0, 1] unit) of the
    autoencoder and of PCA at each code size in `sizes` (sizes not smaller than the feature
    count are skipped). ``embedding_2d.png`` (when `labels_test` is given): the test set's
    2-d codes of both, coloured by label. `fitted` maps a code size to a reducer already
    fitted on `X_train`, reused instead of training again.
    """
    from pathlib import Path

    from deepae.plots import embedding_scatter, error_vs_code_size

    folder = Path(folder)
    fitted = dict(fitted or {})
    n_features = np.asarray(X_train).reshape(len(X_train), -1).shape[1]
    sizes = [k for k in sizes if k < n_features]
    errors = {"autoencoder": [], "PCA": []}
    results = {}
    for k in sizes:
        res = compare_with_pca(X_train, X_test, k, reducer=fitted.get(k), **reducer_params)
        results[k] = res
        for row in res["rows"]:
            errors[row["model"]].append(row["se_per_sample"])
    paths = [error_vs_code_size(sizes, errors, folder / "error_vs_code_size.png",
                                title="test reconstruction error", overwrite=overwrite)]
    if labels_test is not None and 2 in results:
        res = results[2]
        xt = np.asarray(X_test)
        xt = xt.astype(np.float32) if xt.dtype == np.uint8 else xt
        codes = {f"{name} (2-d)": m.transform(xt) for name, m in res["models"].items()}
        paths.append(embedding_scatter(codes, labels_test, folder / "embedding_2d.png",
                                       title="test set, 2-d codes", overwrite=overwrite))
    return paths

AutoencoderReducer.__doc__ = AutoencoderReducer.__doc__.replace("{run}", RUN_PARAMS_DOC)
