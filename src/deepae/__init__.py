"""deepae: deep autoencoders on Keras 3.

Public names: the core model (`Encoder`, `Decoder`, `Autoencoder`), dimensionality reduction
(`AutoencoderReducer`, `compare_with_pca`), anomaly detection (`AnomalyDetector`,
`deepae.thresholds`, `deepae.metrics`), image restoration (`Denoiser`, `SuperResolver`),
learned compression (`ImageCodec`), semantic
hashing (`SemanticHasher`, `HammingIndex`, `SemanticIndex`), persistence (`load`),
data sets (`deepae.datasets`), errors (`deepae.exceptions`).
"""

# ruff: noqa: E402  (the imports below come after TensorFlow is imported quietly)
import os as _os
import sys as _sys

# Quiet TensorFlow's C++ start-up logs unless the user chose a level (before keras loads it).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> str:
    """Import TensorFlow and Keras, and list the GPUs, with the process's standard error (file
    descriptor 2) held in a buffer, and return what went there. TensorFlow's C++ start-up
    lines ("oneDNN custom operations are on", absl's warning, cuInit's failure on a machine
    with CUDA's libraries and no GPU) are written there whatever
    TF_CPP_MIN_LOG_LEVEL says; nothing should print on `import deepae`. `deepae --debug`
    shows them (`deepae.STARTUP_LOG`), as does the environment variable DEEPAE_DEBUG=1.
    An import that fails gives its output back before the error."""
    if "tensorflow" in _sys.modules or _os.environ.get("DEEPAE_DEBUG"):
        return ""
    import tempfile

    with tempfile.TemporaryFile() as buf:
        _sys.stderr.flush()
        saved = _os.dup(2)
        _os.dup2(buf.fileno(), 2)
        failed = True
        try:
            import keras  # noqa: F401
            import tensorflow

            # the device scan too: where CUDA's libraries are present but no GPU answers,
            # TensorFlow logs "failed call to cuInit" at error level when it first looks
            # (listing devices leaves them configurable: memory growth, visible devices)
            tensorflow.config.list_physical_devices("GPU")
            failed = False
        finally:
            _os.dup2(saved, 2)
            _os.close(saved)
            buf.seek(0)
            text = buf.read().decode(errors="replace")
            if failed:  # the import's own words belong with its error
                _sys.stderr.write(text)
    return text


STARTUP_LOG = _import_tensorflow_quietly()

from deepae import datasets, exceptions, metrics, thresholds
from deepae._version import __version__
from deepae.apps.autoencoder import Autoencoder
from deepae.apps.compress import ImageCodec
from deepae.apps.detect import AnomalyDetector
from deepae.apps.hashing import HammingIndex, SemanticHasher, SemanticIndex
from deepae.apps.reduce import AutoencoderReducer, compare_with_pca
from deepae.apps.restore import Denoiser, SuperResolver
from deepae.exceptions import ArtifactError, BitstreamError, DataNotFoundError, TrainingError
from deepae.nn.autoencoders import Decoder, Encoder
from deepae.persistence import load

__all__ = ["__version__", "STARTUP_LOG", "Autoencoder", "Encoder", "Decoder", "AutoencoderReducer",
           "compare_with_pca", "AnomalyDetector", "Denoiser", "SuperResolver", "ImageCodec",
           "SemanticHasher", "HammingIndex", "SemanticIndex",
           "load", "datasets", "exceptions", "metrics", "thresholds", "ArtifactError",
           "BitstreamError", "DataNotFoundError", "TrainingError"]
