"""HammingIndex: exact radius search against brute force, ranking, remove, persistence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepae.apps.hashing import HammingIndex, flip_masks, pack_keys


def random_codes(n, n_bits, seed=0):
    bits = np.random.default_rng(seed).integers(0, 2, (n, n_bits), dtype=np.uint8)
    return np.packbits(bits, axis=1), bits


def brute(bits_db, bits_q, radius):
    d = (bits_db != bits_q).sum(axis=1)
    found = np.flatnonzero(d <= radius)
    return found[np.argsort(d[found], kind="stable")], np.sort(d[found], kind="stable")


def test_pack_keys_follows_packbits_order():
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]], np.uint8)  # 11 bits
    key = pack_keys(np.packbits(bits, axis=1), 11)[0]
    assert int(key) == int("10000000011", 2)


def test_flip_masks_count_and_weights():
    masks, weights = flip_masks(10, 2)
    assert masks.size == 1 + 10 + 45 and np.unique(masks).size == masks.size
    assert np.array_equal(np.bitwise_count(masks), weights)


@settings(max_examples=60, deadline=None)
@given(n_bits=st.sampled_from([5, 8, 16, 20, 32, 64]), n=st.integers(1, 300),
       radius=st.integers(0, 3), seed=st.integers(0, 10_000))
def test_radius_search_is_brute_force(n_bits, n, radius, seed):
    """Exactly the items within the radius, nearest first, equal distances in insertion
    order, whether the table is probed or scanned."""
    codes, bits = random_codes(n, n_bits, seed)
    # duplicates and near neighbours, so that radius hits are common
    codes = np.concatenate([codes, codes[: n // 3]])
    bits = np.concatenate([bits, bits[: n // 3]])
    ids = np.arange(len(codes)) * 7 + 3
    index = HammingIndex(n_bits).add(codes, ids)
    qbits = bits[: 5].copy()
    qbits[:, 0] ^= 1
    for method in HammingIndex.METHODS:  # every method gives the same, exact answer
        results = index.search(np.packbits(qbits, axis=1), radius=radius, method=method)
        for (found, dist), q in zip(results, qbits, strict=True):
            rows, d = brute(bits, q, radius)
            assert np.array_equal(found, ids[rows]) and np.array_equal(dist, d), method


def test_multi_index_hashing_for_long_codes():
    """64-bit codes, radius 5: 8 million flips; multi-index hashing probes 4 tables of
    16-bit substrings at radius 1 and finds exactly the brute-force answer."""
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, (20_000, 64), dtype=np.uint8)
    near = bits[:200].copy()
    for row in near:  # neighbours 1 to 6 bits away
        row[rng.choice(64, rng.integers(1, 7), replace=False)] ^= 1
    bits = np.concatenate([bits, near])
    index = HammingIndex(64).add(np.packbits(bits, axis=1))
    assert index._plan(5, "auto") == "multi-index" and index._plan(2, "auto") == "flip"
    q = bits[:30]
    for (found, dist), qb in zip(index.search(np.packbits(q, axis=1), radius=5), q,
                                 strict=True):
        rows, d = brute(bits, qb, 5)
        assert np.array_equal(found, rows) and np.array_equal(dist, d)
    with pytest.raises(ValueError, match="`method` in"):
        index.search(np.packbits(q, axis=1), method="lsh")


def test_an_item_is_found_by_its_own_code():
    codes, _ = random_codes(1000, 32, 1)
    index = HammingIndex(32).add(codes)
    for i, (found, dist) in enumerate(index.search(codes[:50], radius=0)):
        assert i in found and (dist == 0).all()


def test_rank_matches_brute_force_and_k():
    codes, bits = random_codes(2000, 16, 2)
    index = HammingIndex(16).add(codes)
    (found, dist), = index.rank(codes[:1], k=100)
    d = (bits != bits[0]).sum(axis=1)
    expected = np.argsort(d, kind="stable")[:100]
    assert np.array_equal(found, expected) and np.array_equal(dist, d[expected])
    (found, _), = index.search(codes[:1], radius=16, k=10)
    assert np.array_equal(found, expected[:10])


def test_remove_really_removes_and_save_load(tmp_path):
    codes, _ = random_codes(500, 24, 3)
    index = HammingIndex(24).add(codes, np.arange(500) + 1000)
    assert index.remove([1000, 1001, 99]) == 2 and len(index) == 498
    (found, _), = index.search(codes[:1], radius=24)
    assert 1000 not in found
    path = index.save(tmp_path / "idx.deepae")
    back = HammingIndex.load(path)
    assert len(back) == 498 and back.n_bits == 24
    for a, b in zip(index.search(codes[:20], radius=3), back.search(codes[:20], radius=3),
                    strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_input():
    codes, _ = random_codes(10, 32)
    index = HammingIndex(32)
    with pytest.raises(ValueError, match="The index is empty"):
        index.search(codes)
    with pytest.raises(ValueError, match=r"shape \(n, 4\) for 32-bit codes; received \(10, 2\)"):
        index.add(codes[:, :2])
    with pytest.raises(ValueError, match="one id per code: 10 ids"):
        index.add(codes, np.arange(9))
    index.add(codes)
    with pytest.raises(ValueError, match=r"already in the index \(remove them first\): \[0, 1, 2"):
        index.add(codes, np.arange(10))
    with pytest.raises(ValueError, match=r"repeated .*: \[20\]"):
        HammingIndex(32).add(codes[:2], [20, 20])
    with pytest.raises(ValueError, match="`radius` as an int from 0 to the code length 32; "
                                         "received 33"):
        index.search(codes, radius=33)
    with pytest.raises(TypeError, match="packed bits, a uint8 array"):
        index.search(codes.astype(np.int64))
    with pytest.raises(ValueError, match="`n_bits` as an int from 1 to 256"):
        HammingIndex(257)
    with pytest.raises(ValueError, match="at most 64 bits; this index holds 128-bit codes"):
        HammingIndex(128).add(np.zeros((2, 16), np.uint8)).search(
            np.zeros((1, 16), np.uint8), method="scan")


# -- SemanticHasher ----------------------------------------------------------------------------
def clusters(n=600, d=40, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.random((k, d))
    y = rng.integers(0, k, n)
    return np.clip(centres[y] + 0.05 * rng.normal(size=(n, d)), 0, 1).astype(np.float32), y


@pytest.mark.parametrize("n_neighbors", [0, 10])
def test_hasher_codes_are_packed_binary_and_keep_neighbours(tmp_path, n_neighbors):
    from deepae import SemanticHasher

    X, y = clusters()
    h = SemanticHasher(n_bits=12, hidden_units=(32,), epochs=40, batch_size=64,
                       n_neighbors=n_neighbors, random_state=0).fit(X)
    assert ("logits_loss" in h.history_) == bool(n_neighbors)
    codes = h.transform(X)
    assert codes.shape == (600, 2) and codes.dtype == np.uint8
    p = h.code_probabilities(X)
    assert np.mean(np.minimum(p, 1 - p)) < 0.2  # the noise pushed the sigmoid to 0 or 1
    # the nearest codes of an item mostly share its cluster
    index = HammingIndex(12).add(codes)
    hits = [np.mean(y[ids[1:11]] == y[i]) for i, (ids, _) in enumerate(index.rank(codes[:50],
                                                                                k=11))]
    assert np.mean(hits) > 0.8
    back = SemanticHasher.load(h.save(tmp_path / "h.deepae"))
    assert np.array_equal(back.transform(X), codes)


def test_knn_graph_is_exact():
    from sklearn.neighbors import NearestNeighbors

    from deepae.apps.hashing import knn_graph

    X = np.random.default_rng(0).normal(size=(300, 7)).astype(np.float32)
    g = knn_graph(X, 5, block_bytes=4 * 300 * 16)  # 16 rows per block
    ref = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    assert g.shape == (300, 5) and np.array_equal(np.sort(g, axis=1), np.sort(ref, axis=1))
    assert knn_graph(X[:1], 5).shape == (1, 0) and knn_graph(X[:3], 5).shape == (3, 2)


def test_neighbourhood_targets_follow_the_clusters():
    from deepae.apps.hashing import neighbourhood_targets

    X, y = clusters(400, d=40, k=4)
    t = neighbourhood_targets(X, 8, n_neighbors=5, smoothing_steps=5, random_state=0)
    assert t.shape == (400, 8) and set(np.unique(t)) <= {0.0, 1.0}
    # one code per cluster: items of a cluster share (nearly) all their bits
    for c in range(4):
        assert np.abs(t[y == c] - t[y == c].mean(axis=0)).mean() < 0.05
    assert len({tuple(t[y == c].mean(axis=0).round()) for c in range(4)}) == 4
    # fewer dimensions than bits: random hyperplanes instead of ITQ, same shape
    assert neighbourhood_targets(X[:, :3], 16, random_state=0).shape == (400, 16)


def test_hasher_bad_input():
    from deepae import SemanticHasher

    X, _ = clusters(50)
    with pytest.raises(ValueError, match="'n_bits' parameter of SemanticHasher must be an int "
                                         "in the range \\[1, 256\\]"):
        SemanticHasher(n_bits=257).fit(X)
    with pytest.raises(ValueError, match="'n_neighbors' parameter of SemanticHasher must be an "
                                         "int in the range \\[0, inf\\). Got -1"):
        SemanticHasher(n_neighbors=-1).fit(X)
    h = SemanticHasher(n_bits=8, hidden_units=(8,), epochs=1).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but SemanticHasher is expecting 40"):
        h.transform(X[:, :3])


def test_nearest_is_rank_whatever_the_radius_finds():
    codes, _ = random_codes(400, 16, 4)
    codes = np.concatenate([codes, codes[:100], codes[:50]])  # duplicates: ties to order
    index = HammingIndex(16).add(codes)
    for radius in (0, 1, 3):
        for k in (1, 5, 40):
            for a, b in zip(index.nearest(codes[:30], k=k, radius=radius),
                            index.rank(codes[:30], k=k), strict=True):
                assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# -- SemanticIndex -----------------------------------------------------------------------------
def test_semantic_index_build_query_save_load(tmp_path):
    from deepae import SemanticHasher, SemanticIndex, load
    from deepae.exceptions import ArtifactError

    X, y = clusters(300)
    idx = SemanticIndex.build(X, np.arange(300) + 10, y, n_bits=10, hidden_units=(16,),
                              epochs=20, batch_size=64, random_state=0)
    assert len(idx) == 300 and idx.n_bits == 10
    found = idx.nearest(X[:20], k=10)
    assert np.mean([np.mean(idx.label_of(ids) == y[i]) for i, (ids, _) in
                    enumerate(found)]) > 0.8
    assert idx.remove([10, 11]) == 2 and idx.labels.shape == (298,)
    assert np.array_equal(idx.label_of([12, 13]), y[2:4])
    path = idx.save(tmp_path / "i.deepae")
    back = load(path)
    assert isinstance(back, SemanticIndex) and np.array_equal(back.labels, idx.labels)
    for a, b in zip(idx.nearest(X[:10], k=5), back.nearest(X[:10], k=5), strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ArtifactError, match="not a SemanticIndex"):
        SemanticIndex.load(idx.hasher.save(tmp_path / "h.deepae"))
    with pytest.raises(ValueError, match=r"one label per row of `X`, shape \(5,\); received "
                                         r"`labels` of shape \(4,\)"):
        idx.add(X[:5], np.arange(5) + 1000, y[:4])
    assert len(idx) == 298  # the failed add left nothing behind
    idx.add(X[:5], np.arange(5) + 1000)  # unlabelled items: the index drops its labels
    assert idx.labels is None
    with pytest.raises(ValueError, match="holds no labels"):
        idx.label_of([1000])
    with pytest.raises(TypeError, match="either `hasher` or hasher parameters"):
        SemanticIndex.build(X, hasher=SemanticHasher(), n_bits=8)


def test_index_cli_build_query_evaluate_info(tmp_path, capsys):
    from deepae.cli.main import main

    X, y = clusters(300)
    data = tmp_path / "data.npz"
    np.savez(data, x=X, y=y, ids=np.arange(300) * 3)
    out = tmp_path / "idx.deepae"
    assert main(["index", "build", str(data), "-o", str(out), "--bits", "10", "--epochs", "15",
                 "--hidden-units", "16", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "indexed 300 items (40 features) with 10-bit codes" in err and "labels kept" in err
    assert main(["index", "query", str(out), str(data), "-k", "3", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "query,rank,id,distance" and len(lines) == 1 + 2 * 3
    q, r, i, d = lines[1].split(",")
    assert (q, r, i, d) == ("0", "1", "0", "0")  # the first item finds itself first
    assert main(["index", "evaluate", str(out), str(data), "-n", "50", "--top", "100",
                 "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    assert res["queries"] == 50 and res["mAP@100"] > 0.8
    assert main(["info", str(out)]) == 0
    assert "SemanticIndex(n_bits=10) with 300 items" in capsys.readouterr().out
    assert main(["index", "build", str(data), "-o", str(out)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    np.save(tmp_path / "plain.npy", X)
    plain = tmp_path / "plain.deepae"
    assert main(["index", "build", str(tmp_path / "plain.npy"), "-o", str(plain), "--bits",
                 "8", "--epochs", "1", "--hidden-units", "8", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["index", "evaluate", str(plain), str(data)]) == 1
    assert "holds no labels" in capsys.readouterr().err


# -- text ---------------------------------------------------------------------------------------
def test_vectorize_documents_and_queries():
    from deepae.datasets import vectorize_documents

    docs = ["the market fell as shares dropped", "the team won the cup final",
            "shares rose on the stock market", "the final match was won late"]
    X, vec = vectorize_documents(docs, max_features=50)
    assert X.dtype == np.float32 and X.shape[0] == 4 and 0 <= X.min() and X.max() <= 1
    Q, _ = vectorize_documents(["stock market shares"], vectorizer=vec)
    assert Q.shape == (1, X.shape[1])
    assert np.argmax(X @ Q[0]) in (0, 2)  # a finance query is nearest a finance document
    with pytest.raises(TypeError, match="sequence of strings"):
        vectorize_documents("one string")
    with pytest.raises(ValueError, match="`kind` in"):
        vectorize_documents(docs, kind="bm25")


def test_load_bbc_news_from_a_folder(tmp_path):
    from deepae.datasets import load_bbc_news
    from deepae.exceptions import DataNotFoundError

    for topic, texts in {"sports": ["goal", "match"], "tech": ["chip"]}.items():
        (tmp_path / topic).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / topic / f"{i:03d}.txt").write_text(t)
    docs, labels, topics = load_bbc_news(tmp_path)
    assert docs == ["goal", "match", "chip"] and labels.tolist() == [0, 0, 1]
    assert topics == ("sports", "tech")
    with pytest.raises(DataNotFoundError, match="No topic folders"):
        load_bbc_news(tmp_path / "sports")


def test_index_cli_on_a_named_data_set(tmp_path, capsys):
    """`deepae index build digits` indexes the training split with its labels; evaluate
    queries the test split."""
    from deepae.cli.main import main

    out = tmp_path / "digits.deepae"
    assert main(["index", "build", "digits", "-o", str(out), "--bits", "16", "--epochs", "5",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["index", "evaluate", str(out), "digits", "-n", "100", "--top", "50",
                 "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    assert res["items"] == 1347 and res["mAP@50"] > 0.5  # 10 classes: chance is 0.1


def test_retrieval_precision_and_public_codes():
    from deepae.metrics import retrieval_precision_at

    db = np.array([0, 0, 1, 1])
    assert retrieval_precision_at([[0, 2, 1], [2, 3]], db, [0, 1], k=2) == pytest.approx(0.75)
    assert retrieval_precision_at([[]], db, [0], k=5) == 0.0
    with pytest.raises(ValueError, match="`k` as an int >= 1; received 0"):
        retrieval_precision_at([[0]], db, [0], k=0)
    codes, _ = random_codes(30, 12, 6)
    assert np.array_equal(HammingIndex(12).add(codes).codes, codes)


def test_label_of_refuses_unknown_ids():
    from deepae import SemanticHasher, SemanticIndex

    X, y = clusters(60)
    h = SemanticHasher(n_bits=8, hidden_units=(8,), epochs=1, n_neighbors=0).fit(X)
    idx = SemanticIndex(h).add(X, np.arange(60) + 100, y)
    assert np.array_equal(idx.label_of([105, 100]), y[[5, 0]])
    with pytest.raises(ValueError, match=r"unknown ids \[7\]"):
        idx.label_of([100, 7])


# -- the batch API (range_search, knn): exact answers against a brute force written here ----------
def _brute(codes, queries, n_bits):
    """(distances (nq, n), order (nq, n)): every item's distance, and the items by
    (distance, insertion order), from the bits themselves."""
    bits = np.unpackbits(codes, axis=1)[:, :n_bits].astype(np.int64)
    qbits = np.unpackbits(queries, axis=1)[:, :n_bits].astype(np.int64)
    d = (qbits[:, None, :] != bits[None, :, :]).sum(axis=2)
    order = np.stack([np.lexsort((np.arange(len(codes)), row)) for row in d])
    return d, order


@pytest.mark.parametrize("n_bits", [32, 64, 128, "other"])
@settings(max_examples=20, deadline=None)
@given(other=st.sampled_from([8, 16, 24, 40, 72, 200, 256]), n=st.integers(1, 300),
       seed=st.integers(0, 2 ** 32 - 1), radius=st.integers(0, 8), k=st.integers(1, 320),
       dup=st.booleans())
def test_batch_api_is_exact(n_bits, other, n, seed, radius, k, dup):
    """At 32, 64 and 128 bits (and, drawn, other lengths up to 256)."""
    n_bits = other if n_bits == "other" else n_bits
    rng = np.random.default_rng(seed)
    width = n_bits // 8
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    if dup and n > 2:  # equal codes: ties broken by insertion order
        codes[n // 2:] = codes[: n - n // 2]
    ids = rng.permutation(10 * n)[:n] + 7
    index = HammingIndex(n_bits).add(codes, ids)
    near = codes[rng.integers(0, n, 6)].copy()
    near[:, 0] ^= np.uint8(1 << int(rng.integers(0, 8)))  # one bit away from an item
    queries = np.concatenate([near, rng.integers(0, 256, (4, width), dtype=np.uint8)])
    d, order = _brute(codes, queries, n_bits)
    lims, dist, found = index.range_search(queries, radius)
    assert lims.shape == (len(queries) + 1,) and lims[0] == 0
    for i in range(len(queries)):
        want = order[i][d[i][order[i]] <= radius]
        np.testing.assert_array_equal(found[lims[i]:lims[i + 1]], ids[want])
        np.testing.assert_array_equal(dist[lims[i]:lims[i + 1]], d[i][want])
    knn_d, knn_ids = index.knn(queries, k)
    assert knn_d.shape == knn_ids.shape == (len(queries), k)
    kk = min(k, n)
    np.testing.assert_array_equal(knn_ids[:, :kk], ids[order[:, :kk]])
    np.testing.assert_array_equal(knn_d[:, :kk], np.take_along_axis(d, order[:, :kk], axis=1))
    assert (knn_ids[:, kk:] == -1).all() and (knn_d[:, kk:] == n_bits + 1).all()


def test_batch_api_at_scale_uses_the_tables_and_the_scan():
    """Both radius paths (multi-index tables, and the scan for radii that reach most items)
    on 20,000 codes, against the brute force."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (20_000, 8), dtype=np.uint8)
    index = HammingIndex(64).add(codes)
    queries = codes[:5].copy()
    queries[:, 3] ^= np.uint8(0b101)
    d, order = _brute(codes, queries, 64)
    for radius in (2, 5, 40):  # tables (sub-radius 0 and 1), then the scan
        lims, dist, found = index.range_search(queries, radius)
        for i in range(5):
            want = order[i][d[i][order[i]] <= radius]
            np.testing.assert_array_equal(found[lims[i]:lims[i + 1]], want)
            np.testing.assert_array_equal(dist[lims[i]:lims[i + 1]], d[i][want])
    assert lims[-1] > 5 * 10_000  # radius 40 reaches most items: the scan answered


def test_batch_api_checks_its_arguments():
    index = HammingIndex(32).add(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="radius"):
        index.range_search(np.zeros((1, 4), np.uint8), 33)
    with pytest.raises(ValueError, match="`k`"):
        index.knn(np.zeros((1, 4), np.uint8), 0)
    with pytest.raises(ValueError, match="shape"):
        index.knn(np.zeros((1, 3), np.uint8), 2)
    with pytest.raises(ValueError, match="empty"):
        HammingIndex(32).knn(np.zeros((1, 4), np.uint8), 2)


@pytest.mark.parametrize("n_bits", [72, 128, 256])
def test_long_codes_round_trip_and_search(tmp_path, n_bits):
    """Codes longer than one 64-bit word: packed bits back unchanged (padding dropped), saved
    and loaded, and the index's answers at 32-bit-style radii."""
    rng = np.random.default_rng(n_bits)
    width = n_bits // 8
    codes = rng.integers(0, 256, (500, width), dtype=np.uint8)
    index = HammingIndex(n_bits).add(codes)
    np.testing.assert_array_equal(index.codes, codes)
    back = HammingIndex.load(index.save(tmp_path / "index.deepae"))
    np.testing.assert_array_equal(back.codes, codes)
    q = codes[:3].copy()
    q[:, -1] ^= np.uint8(1)  # one bit away, in the last word
    (ids, d), = back.search(q[:1], radius=1)
    assert ids[0] == 0 and d[0] == 1
    knn_d, knn_ids = back.knn(q, 1)
    np.testing.assert_array_equal(knn_ids[:, 0], [0, 1, 2])
    assert back.bytes_per_item == 2 * (8 * -(-n_bits // 64) + 8)


def test_semantic_index_with_128_bit_codes():
    from deepae import SemanticIndex

    X, y = clusters(200)
    index = SemanticIndex.build(X, labels=y, n_bits=128, hidden_units=(32,), epochs=2,
                                random_state=0)
    (ids, d), = index.nearest(X[:1], k=5)
    assert len(ids) == 5 and d[0] == 0 and np.all(np.diff(d) >= 0)


# -- the approximate neighbour graph ---------------------------------------------------------------
def test_approximate_graph_finds_the_exact_neighbours():
    from deepae.apps.hashing import knn_graph

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    X[100:110] = X[:10]  # duplicates: a row's own position is not always first
    exact = knn_graph(X, 10, method="exact")
    approx = knn_graph(X, 10, method="approximate", random_state=0)
    assert approx.shape == exact.shape == (3000, 10)
    assert not (approx == np.arange(3000)[:, None]).any()  # never its own neighbour
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact, strict=True)])
    assert recall >= 0.9
    with pytest.raises(ValueError, match="`method`"):
        knn_graph(X, 10, method="hnsw")


def test_auto_graph_is_approximate_above_the_threshold(monkeypatch):
    from deepae.apps import hashing

    calls = []
    real = hashing._approximate_graph
    monkeypatch.setattr(hashing, "_approximate_graph",
                        lambda X, k, seed, verbose=0: calls.append(len(X)) or real(X, k, seed))
    monkeypatch.setattr(hashing, "APPROXIMATE_GRAPH_ITEMS", 500)
    X = np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32)
    hashing.knn_graph(X, 5, method="auto")
    assert calls == []
    hashing.knn_graph(np.concatenate([X, X + 1]), 5, method="auto")
    assert calls == [800]
    X2, _ = clusters(600)
    h = hashing.SemanticHasher(n_bits=8, hidden_units=(16,), epochs=1, graph="approximate",
                               random_state=0).fit(X2)
    assert calls[-1] == 600 and h.transform(X2).shape == (600, 1)


def test_targets_in_blocks_equal_the_whole_and_report_progress(monkeypatch, capsys):
    """At a million items the smoothing's neighbour means (n, k, dims) would take 5 GB:
    blocks of rows give the same; with verbose each step says its progress and time."""
    from deepae.apps import hashing

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(50, 6)).astype(np.float32)
    nb = rng.integers(0, 50, (50, 4))
    whole = Z.copy()
    for _ in range(3):
        whole = 0.5 * whole + 0.5 * whole[nb].mean(axis=1)
    monkeypatch.setattr(hashing, "BLOCK_ROWS", 7)
    np.testing.assert_allclose(hashing._smoothed(Z, nb, 3, verbose=1), whole, rtol=1e-6)
    monkeypatch.setattr(hashing, "PCA_FIT_ROWS", 60)
    X, _ = clusters(120, d=200)
    bits = hashing.neighbourhood_targets(X, 8, 5, 2, random_state=0, verbose=1)
    assert bits.shape == (120, 8) and set(np.unique(bits)) <= {0.0, 1.0}
    said = capsys.readouterr().err
    for step in ("smoothing over the graph: done in", "principal components: 120/120",
                 "ETA", "neighbour graph (auto, 120 items): done in", "binarising",
                 "exact neighbour graph: 120/120"):
        assert step in said


def test_uint8_rows_train_as_their_scaled_floats():
    """uint8 pixels are held as given and scaled block by block and batch by batch (a
    million digits: 0.8 GB instead of 3 GB): the same hasher as on the floats x / 255."""
    from deepae import SemanticHasher

    X, _ = clusters(300)
    pixels = np.round(X * 255).astype(np.uint8)
    kw = dict(n_bits=16, hidden_units=(32,), epochs=2, random_state=0)
    a = SemanticHasher(**kw).fit(pixels)
    b = SemanticHasher(**kw).fit(pixels.astype(np.float32) / 255)
    assert a.scaler_.kind == "unit"
    agree = np.mean(np.unpackbits(a.transform(pixels)) == np.unpackbits(b.transform(
        pixels.astype(np.float32) / 255)))
    assert agree > 0.99


def test_rank_with_a_huge_k_returns_what_there_is():
    """rank() caps k at the collection's size (it did before the batch kernels); knn()'s
    FAISS-shaped (n_queries, k) arrays would have been allocated at the k asked for."""
    index = HammingIndex(16).add(np.arange(6, dtype=np.uint8).reshape(3, 2))
    (ids, d), = index.rank(np.zeros((1, 2), np.uint8), k=10 ** 12)
    assert ids.tolist() == [0, 1, 2] and d.tolist() == [1, 3, 3]
    found = index.nearest(np.zeros((1, 2), np.uint8), k=10 ** 12)
    assert found[0][0].tolist() == [0, 1, 2]
