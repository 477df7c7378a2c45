"""scikit-learn's estimator checks over every deepae estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepae import AutoencoderReducer

# Small and quick: the checks fit dozens of times on tiny data.
ESTIMATORS = [AutoencoderReducer(n_components=1, hidden_units=(4,), epochs=2, batch_size=32,
                                 random_state=0)]

EXPECTED_FAILURES = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_compatible(estimator, check):
    check(estimator)
