"""One declarative table of constraints per estimator, checked by one validator in
scikit-learn's words, at fit and when a file is loaded."""

import numpy as np
import pytest

import deepae
from deepae.exceptions import InvalidParameterError

ESTIMATORS = [deepae.AutoencoderReducer, deepae.AnomalyDetector, deepae.SemanticHasher,
              deepae.Denoiser, deepae.SuperResolver, deepae.ImageCodec]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_parameter_has_its_constraints(cls):
    assert set(cls._parameter_constraints) == set(cls().get_params())


@pytest.mark.parametrize("cls, name, value, says", [
    (deepae.AutoencoderReducer, "kind", "cnn", "a str among {'conv', 'dense'}"),
    (deepae.AutoencoderReducer, "lr_schedule", "linear", "a str among {'constant', 'cosine'}"),
    (deepae.AnomalyDetector, "dropout", 1.5, "a float in the range [0, 1) or a str among "
                                             "{'auto'}"),
    (deepae.AnomalyDetector, "threshold", "best", "or a float in the range (-inf, inf)"),
    (deepae.AnomalyDetector, "epochs", 0, "an int in the range [1, inf)"),
    (deepae.SemanticHasher, "n_bits", 257, "an int in the range [1, 256]"),
    (deepae.SemanticHasher, "preprocessing", "zscore", "a str among {'auto', 'minmax',"),
    (deepae.Denoiser, "tile", 10 ** 7, "an int in the range [1, 2048]"),
    (deepae.Denoiser, "per_channel", "yes", "a bool"),
    (deepae.Denoiser, "resume", None, "a bool"),
    (deepae.SuperResolver, "scale", 3, "an int among {2, 4}"),
    (deepae.ImageCodec, "levels", 7, "an int in the range [1, 6]"),
    (deepae.ImageCodec, "learning_rate", float("nan"), "a float in the range (0, inf)"),
])
def test_a_bad_parameter_is_named_in_scikit_learns_words(cls, name, value, says):
    est = cls(**{name: value})
    with pytest.raises(InvalidParameterError) as err:
        est._validate_params()
    message = str(err.value)
    assert message.startswith(f"The '{name}' parameter of {cls.__name__} must be ")
    assert says in message and f"Got {value!r} instead." in message
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)


def test_fit_checks_before_any_work():
    x = np.random.default_rng(0).normal(size=(50, 6)).astype("float32")
    with pytest.raises(InvalidParameterError, match="'n_neighbors' parameter of SemanticHasher"):
        deepae.SemanticHasher(8, n_neighbors=-1).fit(x)
    with pytest.raises(InvalidParameterError, match="'callbacks' parameter of AnomalyDetector"):
        deepae.AnomalyDetector(callbacks="tensorboard").fit(x)


@pytest.mark.parametrize("cls, params, says", [
    (deepae.Denoiser, {"epochs": 10 ** 30}, None),            # a huge int: checked, no crash
    (deepae.SemanticHasher, {"random_state": 2 ** 32}, "'random_state' parameter"),
    (deepae.AnomalyDetector, {"callbacks": ["x"]}, "'callbacks' parameter"),
    (deepae.Denoiser, {"resume": True}, "needs the `checkpoint_dir`"),
    (deepae.SemanticHasher, {"resume": True}, "needs the `checkpoint_dir`"),
    (deepae.Denoiser, {"sigma": "01"}, "'sigma' parameter"),
])
def test_values_that_failed_later_are_refused_up_front(cls, params, says):
    est = cls(**params)
    if says is None:
        est._validate_params()  # accepted: an int in [1, inf)
        return
    with pytest.raises(InvalidParameterError, match=says):
        est._validate_params()
