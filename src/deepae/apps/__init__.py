"""Applications: one module per use, each a scikit-learn estimator."""
