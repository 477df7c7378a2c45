"""deepae: deep autoencoders on Keras 3.

Public names: the core model (`Encoder`, `Decoder`, `Autoencoder`), dimensionality reduction
(`AutoencoderReducer`, `compare_with_pca`), anomaly detection (`AnomalyDetector`,
`deepae.thresholds`, `deepae.metrics`), image restoration (`Denoiser`, `SuperResolver`),
learned compression (`ImageCodec`), semantic
hashing (`SemanticHasher`, `HammingIndex`, `SemanticIndex`), persistence (`load`),
data sets (`deepae.datasets`), errors (`deepae.exceptions`).
"""

import os as _os

# Quiet TensorFlow's C++ start-up logs unless the user chose a level (before keras loads it).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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

__all__ = ["__version__", "Autoencoder", "Encoder", "Decoder", "AutoencoderReducer",
           "compare_with_pca", "AnomalyDetector", "Denoiser", "SuperResolver", "ImageCodec",
           "SemanticHasher", "HammingIndex", "SemanticIndex",
           "load", "datasets", "exceptions", "metrics", "thresholds", "ArtifactError",
           "BitstreamError", "DataNotFoundError", "TrainingError"]
