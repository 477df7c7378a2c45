"""What every application estimator shares: one artifact format for save, load and pickle."""

from __future__ import annotations

from sklearn.utils.validation import check_is_fitted

from deepae._validation import validate_params
from deepae.exceptions import InvalidParameterError
from deepae.persistence import (
    Artifact,
    artifact_bytes,
    artifact_kind,
    read_artifact,
    restore,
    save_artifact,
)

__all__ = ["ArtifactEstimatorMixin", "params_from_json", "MAX_TILE"]

# The largest tile side of the image estimators: memory grows with the tile's area (about
# 1 GB at 2048 x 2048 for the default networks), never with the image's
MAX_TILE = 2048


def params_from_json(params: dict) -> dict:
    """JSON has no tuples: tuple-valued parameters come back as lists."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


class ArtifactEstimatorMixin:
    """Save, load and pickle a fitted estimator through the deepae artifact (no pickle inside).

    Subclasses define ``_fitted_attr`` (the attribute that marks a fitted estimator),
    ``_artifact_parts()`` returning ``(metadata, models, arrays)`` and ``_restore(artifact)``
    setting the fitted state back. Parameters are saved from `get_params` (callbacks are not).
    """

    _fitted_attr = "autoencoder_"
    # what each parameter may be (see deepae._validation.validate_params); every parameter
    # of __init__ has an entry
    _parameter_constraints: dict = {}

    def _validate_params(self):
        """Check every parameter against the class's `_parameter_constraints`, then the
        checks that tie parameters together (`_check_params`)."""
        validate_params(type(self).__name__, self._parameter_constraints,
                        self.get_params(deep=False))
        if getattr(self, "resume", False) and getattr(self, "checkpoint_dir", None) is None:
            raise InvalidParameterError(
                f"resume=True in {type(self).__name__} needs the `checkpoint_dir` of the "
                "interrupted run; received checkpoint_dir=None.")
        self._check_params()

    def _check_params(self):
        """Checks across parameters, after each has passed its constraints."""

    def _artifact_parts(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self, art: Artifact) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_description(self, data_fingerprint: str, **extra) -> dict:
        """What a training checkpoint records of this run (and a resumed one must repeat):
        the estimator, its parameters and a fingerprint of the training data."""
        params = {k: v for k, v in self._saved_params().items()
                  if k not in ("verbose", "strategy", "callbacks", "checkpoint_dir", "resume")}
        return {"estimator": type(self).__name__, "params": params,
                "data_fingerprint": data_fingerprint, **extra}

    def _saved_params(self) -> dict:
        params = self.get_params()
        # what belongs to one training run is not saved with the model: Keras callbacks, the
        # checkpoint folder and whether to resume from it
        for key, value in (("callbacks", None), ("checkpoint_dir", None), ("resume", False)):
            if key in params:
                params[key] = value
        if not isinstance(params.get("strategy"), str | None):
            params["strategy"] = None  # a tf.distribute.Strategy instance: not saved
        return params

    def save(self, path, overwrite=True):
        """Write the fitted estimator to one deepae artifact, atomically; returns the path."""
        check_is_fitted(self, self._fitted_attr)
        meta, models, arrays = self._artifact_parts()
        return save_artifact(path, artifact_kind(type(self)), {"params": self._saved_params(), **meta},
                             models=models, arrays=arrays, overwrite=overwrite)

    @classmethod
    def _pretrained(cls, filename):
        """Load a model that ships in ``deepae/pretrained`` (trained by the scripts in
        ``scripts/``)."""
        from importlib.resources import files

        path = files("deepae") / "pretrained" / filename
        if not path.is_file():
            raise FileNotFoundError(f"The pretrained model {filename!r} is missing from this "
                                    f"installation of deepae (looked in {path}); reinstall "
                                    "deepae, or train it with the script under `scripts/` that "
                                    "names it.")
        return cls.load(str(path))

    @classmethod
    def load(cls, path):
        """Load a saved estimator of this class (`save` wrote it).

        Raises
        ------
        ArtifactError
            If the file is not a deepae artifact, is corrupted, or holds another estimator.
        """
        return restore(read_artifact(path, kind=artifact_kind(cls)), cls._from_artifact,
                       repr(str(path)))

    @classmethod
    def _from_artifact(cls, art: Artifact):
        est = cls(**params_from_json(art.metadata["params"]))
        est._validate_params()  # a file's parameters are checked as a user's are
        est._restore(art)
        est.describe()  # what `deepae info` shows must hold together (errors: ArtifactError)
        return est

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._fitted_attr in state:
            meta, models, arrays = self._artifact_parts()
            blob = artifact_bytes(artifact_kind(type(self)), {"params": self._saved_params(), **meta},
                                  models=models, arrays=arrays)
            # only the parameters and the artifact travel; fitted state is rebuilt from it
            state = {k: v for k, v in state.items()
                     if not k.endswith("_") and not k.startswith("_")}
            state["_artifact_bytes"] = blob
        return state

    def __setstate__(self, state):
        blob = state.pop("_artifact_bytes", None)
        self.__dict__.update(state)
        if blob is not None:
            restore(read_artifact(blob, kind=artifact_kind(type(self))), self._restore)
