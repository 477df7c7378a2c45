"""scikit-learn's estimator checks over every deepae estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepae import AnomalyDetector, AutoencoderReducer, SemanticHasher


class LabelFreeAnomalyDetector(AnomalyDetector):
    """AnomalyDetector on its unsupervised path.

    sklearn's generic checks pass multiclass ``y`` (0, 1, 2, ...) to every estimator's fit;
    AnomalyDetector reads ``y`` as 0/1 anomaly labels and rejects anything else by design
    (tests/test_detect.py checks that error). Here ``y`` is dropped, as PyOD's unsupervised
    detectors and sklearn's IsolationForest ignore it, so every other check runs unchanged.
    """

    def fit(self, X, y=None):
        return super().fit(X)


# Small and quick: the checks fit dozens of times on tiny data (one autoencoder in the
# detector: its ensemble is tested in tests/test_detect.py).
ESTIMATORS = [AutoencoderReducer(n_components=1, hidden_units=(4,), epochs=2, batch_size=32,
                                 random_state=0),
              LabelFreeAnomalyDetector(hidden_units=(4,), n_components=1, epochs=2,
                                       n_estimators=1, random_state=0),
              SemanticHasher(n_bits=4, hidden_units=(4,), epochs=2, batch_size=32,
                             random_state=0)]

EXPECTED_FAILURES = {
    LabelFreeAnomalyDetector: {
        "check_methods_subset_invariance": (
            "float32 matrix products differ in their last bits with the batch's size (oneDNN "
            "blocking); the default score's Mahalanobis term on the codes magnifies that to "
            "~2e-7 relative, above the check's 1e-7 tolerance"),
    },
}


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est), {}))
def test_sklearn_compatible(estimator, check):
    check(estimator)
