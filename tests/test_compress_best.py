"""effort="best": the overfitted codec, its integer entropy coding and the .dae version 2."""

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepae import BitstreamError, ImageCodec
from deepae.apps.compress import _overfit_kernels as kernels
from deepae.apps.compress import laplace, overfit

ROOT = Path(__file__).resolve().parents[1]
FORMAT_DOC = ROOT / "docs" / "format.md"


def smooth(h, w, seed=0, channels=0):
    """A smooth uint8 image (a few sinusoids): something a tiny overfitted codec can learn."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:h, 0:w] / max(h, w)
    planes = []
    for _ in range(max(1, channels)):
        a, b, p = rng.uniform(1, 4, 3)
        planes.append(0.5 + 0.35 * np.sin(a * 3 * r + b * 2 * c + p))
    img = np.stack(planes, -1) if channels else planes[0]
    return np.round(img * 255).astype(np.uint8)


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.fixture(scope="module")
def codec():
    """Any fitted codec decodes version 2: a tiny one, its lambda that of quality 6."""
    rng = np.random.default_rng(0)
    return ImageCodec(lmbda=0.05, filters=4, latent_channels=2, levels=2, patch_size=8,
                      patches_per_epoch=16, epochs=1, batch_size=8, random_state=0).fit(
        rng.random((2, 16, 16, 1)).astype(np.float32))


@pytest.fixture(scope="module")
def gray():
    return smooth(40, 29)


@pytest.fixture(scope="module")
def best(codec, gray):
    return codec.compress(gray, effort="best", iterations=200, return_stats=True)


def test_round_trip_quality_and_size(codec, gray, best):
    """200 steps on a smooth 40x29 image: far better than the 8-bit noise floor of a bad
    decoder, the stats' bytes the file's, the file a version-2 file, decoded to the shape
    and dtype of the original, the same pixels every time."""
    data, stats = best
    assert data[:4] == b"DAE\x02" and stats["bytes"] == len(data)
    assert stats["bpp"] == pytest.approx(8 * len(data) / gray.size)
    out = codec.decompress(data)
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert psnr(gray, out) > 33.0
    assert np.array_equal(codec.decompress(data), out)
    plane = stats["planes"][0]
    assert plane["weight_bytes"] + plane["latent_bytes"] + 6 + 21 == len(data)
    # the encoder's own estimate of the decoded plane (before 8-bit rounding) agrees
    assert 10 * np.log10(1 / plane["mse"]) == pytest.approx(psnr(gray, out), abs=0.3)


def test_more_effort_is_better(codec, gray, best):
    """The optimisation does work: 200 steps beat 10 by a wide margin in rate-distortion
    cost (bits + lambda * 255**2 * SSE), and a larger lambda gives a larger, better file
    (on so small an image the networks' bytes dominate: the gain in dB is small)."""
    def cost(data, lmbda):
        out = codec.decompress(data).astype(np.float64) / 255
        return 8 * len(data) + lmbda * 255 ** 2 * np.sum((out - gray / 255) ** 2)

    short = codec.compress(gray, effort="best", iterations=10)
    assert cost(best[0], codec.lmbda) < 0.7 * cost(short, codec.lmbda)
    codec.set_params(lmbda=0.5)
    try:
        fine = codec.compress(gray, effort="best", iterations=200)
    finally:
        codec.set_params(lmbda=0.05)
    assert len(fine) > len(best[0])
    assert psnr(gray, codec.decompress(fine)) > psnr(gray, codec.decompress(best[0]))


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (17, 64), (9, 11, 3), (8, 8, 1)])
def test_any_size_and_colour(codec, shape):
    """Odd sizes, single pixels, colour (three planes) and (h, w, 1) images round-trip to
    the original's shape."""
    img = smooth(shape[0], shape[1], seed=3, channels=shape[2] if len(shape) == 3 else 0)
    data = codec.compress(img, effort="best", iterations=5)
    out = codec.decompress(data)
    assert out.shape == (img.shape if img.ndim == 2 or img.shape[-1] == 3 else img.shape[:2])
    assert data[12] == (3 if len(shape) == 3 and shape[2] == 3 else 1)


def test_colour_is_three_planes(codec):
    img = smooth(12, 10, seed=1, channels=3)
    data, stats = codec.compress(img, effort="best", iterations=120, return_stats=True)
    assert len(stats["planes"]) == 3
    out = codec.decompress(data)
    assert out.shape == (12, 10, 3) and psnr(img, out) > 25


def test_efforts_and_their_arguments(codec, gray):
    """fast and refine still write version 1; refine_steps alone means refine; bad values
    are refused with the argument's name."""
    assert codec.compress(gray)[3] == 1
    assert codec.compress(gray, effort="refine", refine_steps=2)[3] == 1
    assert codec.compress(gray, refine_steps=2) == codec.compress(gray, effort="refine",
                                                                  refine_steps=2)
    with pytest.raises(ValueError, match=r"`effort` as one of \('fast', 'refine', 'best'\); "
                                         r"received 'max'"):
        codec.compress(gray, effort="max")
    with pytest.raises(ValueError, match=r"`iterations` as an int >= 1; received 0"):
        codec.compress(gray, effort="best", iterations=0)
    with pytest.raises(TypeError, match=r"`iterations` as an int >= 1; received 1.5"):
        codec.compress(gray, effort="best", iterations=1.5)
    with pytest.raises(ValueError, match=r"float pixels in \[0, 1\] in `image`"):
        codec.compress(np.full((4, 4), 2.0, np.float32), effort="best", iterations=1)


def test_tiled_synthesis_is_the_whole_planes(monkeypatch):
    """Tiles of any shape, with their 2 pixels of context, give the whole plane's values;
    the decoder's tiles stay within their memory budget on a very wide plane."""
    rng = np.random.default_rng(0)
    arch = overfit.DEFAULT_ARCHITECTURE
    h, w = 37, 23
    grids = [rng.integers(-5, 6, (a, b)) for a, b in arch.grid_shapes(h, w)]
    params = {n: rng.normal(0, 0.5, s).astype(np.float32) for n, s in arch.shapes()["synthesis"]}
    whole = overfit.synthesise(grids, params, h, w)
    for th, tw in ((1, 1), (2, 3), (3, 7), (7, 5), (36, 22), (37, 1)):
        tiled = np.empty((h, w), np.float32)
        for r0 in range(0, h, th):
            for c0 in range(0, w, tw):
                r1, c1 = min(h, r0 + th), min(w, c0 + tw)
                tiled[r0:r1, c0:c1] = overfit.synthesise_tile(grids, params, h, w, r0, r1, c0,
                                                              c1)
        np.testing.assert_allclose(tiled, whole, atol=1e-5)
    monkeypatch.setattr(overfit, "_BAND_BYTES", 1 << 16)
    assert np.allclose(overfit.synthesise(grids, params, h, w, arch), whole, atol=1e-5)
    monkeypatch.undo()
    wide = list(overfit.tiles(64, 65535, arch))
    per_pixel = 4 * (3 * arch.levels + 3 * arch.width + 24)
    assert len(wide) > 1 and all((r1 - r0 + 4) * (c1 - c0 + 4) * per_pixel
                                 <= 1.1 * overfit._BAND_BYTES for r0, r1, c0, c1 in wide)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (2, 5), (3, 2), (21, 34)])
def test_the_decoder_synthesis_is_the_one_optimised(monkeypatch, h, w):
    """The decoder's NumPy synthesis (in small tiles) and the TensorFlow one that the encoder
    optimises compute the same plane from the same grids and parameters, edges included."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    arch = overfit.DEFAULT_ARCHITECTURE
    monkeypatch.setattr(overfit, "_BAND", 2)
    monkeypatch.setattr(overfit, "_BAND_BYTES", 1)  # tiles of 2 rows x 16 columns
    shapes = arch.grid_shapes(h, w)
    grids = [rng.integers(-6, 7, (a, b)) for a, b in shapes]
    params = {n: rng.normal(0, 0.4, s).astype(np.float32) for n, s in arch.shapes()["synthesis"]}
    ours = overfit.synthesise(grids, params, h, w, arch)
    theirs = overfit._tf_synthesis([tf.constant(g, tf.float32) for g in grids],
                                   {k: tf.constant(v) for k, v in params.items()},
                                   overfit._tf_taps(h, w, shapes), h, w).numpy()[0, ..., 0]
    assert h * w < 100 or np.abs(theirs).max() > 1  # not a trivially small plane
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_the_stats_mse_is_the_decoded_planes(codec):
    """`stats["planes"][i]["mse"]` is the decoded plane's error before 8-bit rounding."""
    img = smooth(24, 24, seed=5)
    data, stats = codec.compress(img, effort="best", iterations=50, return_stats=True)
    out = codec.decompress(data).astype(np.float64) / 255
    mse = np.mean((out - img / 255) ** 2)
    assert mse == pytest.approx(stats["planes"][0]["mse"], rel=0.05, abs=2e-6)


def test_arguments_that_do_not_apply_are_refused(codec, gray):
    with pytest.raises(ValueError, match="`refine_steps` applies to effort='refine'"):
        codec.compress(gray, effort="best", refine_steps=5)
    with pytest.raises(ValueError, match="`iterations` applies to effort='best'; received "
                                         "iterations=50 with effort='fast'"):
        codec.compress(gray, iterations=50)
    with pytest.raises(ValueError, match="`iterations` applies to effort='best'"):
        codec.compress(gray, effort="refine", iterations=50)
    with pytest.raises(ValueError, match=r"`refine_steps` >= 1 with effort='refine'"):
        codec.compress(gray, effort="refine", refine_steps=0)
    with pytest.raises(ValueError, match=r"`effort` as one of"):
        codec.compress(gray, effort=np.array(["best"]))


@pytest.mark.parametrize("name, value", [("arm_w0", 300.0), ("syn_w1", 7e4),
                                         ("arm_bo", 3e18)])
def test_networks_beyond_the_format_are_refused_at_encode_time(codec, monkeypatch, name,
                                                               value):
    """Parameters the format cannot carry (past the context model's fixed point, the
    synthesis's bound, or int64) give a clear error instead of a file."""
    fit = overfit._fit_plane

    def fit_out_of_range(*args, **kwargs):
        grids, params = fit(*args, **kwargs)
        params[name] = np.full_like(params[name], value)
        return grids, params

    monkeypatch.setattr(overfit, "_fit_plane", fit_out_of_range)
    with pytest.raises(ValueError, match="out of the format's range"):
        codec.compress(smooth(8, 8), effort="best", iterations=2)


def test_a_diverging_lambda_is_refused(codec, gray):
    """A lambda that makes the optimisation diverge gives a clear error, never a file the
    decoder would refuse."""
    codec.set_params(lmbda=1e38)
    try:
        with pytest.raises(ValueError, match="diverged"):
            codec.compress(gray, effort="best", iterations=30)
    finally:
        codec.set_params(lmbda=0.05)


# -- the integer coder -------------------------------------------------------------------------
def _random_arm(rng, c, hidden, scale):
    return (rng.integers(-scale, scale + 1, (max(hidden, 1), c, c)),
            rng.integers(-scale * 256, scale * 256 + 1, (max(hidden, 1), c)),
            rng.integers(-scale, scale + 1, (c, 2)),
            np.array([rng.integers(-2000, 2000), rng.integers(-600, 1200)]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2 ** 31 - 1), st.sampled_from([8, 16]), st.integers(0, 3),
       st.integers(1, 40), st.integers(1, 40), st.sampled_from([0.3, 3.0, 300.0]))
def test_rans_round_trip_is_exact(seed, c, hidden, h, w, spread):
    """Random latents (escapes included) under random integer context models: decoded
    exactly, the stream's size the exact code length (to its 4-byte final state), and any
    truncation refused."""
    rng = np.random.default_rng(seed)
    arch = overfit.Architecture(levels=3, context=c, arm_layers=hidden, width=4)
    shapes = arch.grid_shapes(h, w)
    n = arch.n_latents(h, w)
    y = np.round(rng.laplace(0, spread, n)).astype(np.int64)
    y[rng.integers(n)] = rng.choice([kernels.MAX_LATENT, -kernels.MAX_LATENT, 70000])
    wh, bh, wo, bo = (a.astype(np.int64) for a in _random_arm(rng, c, hidden, 60))
    offsets = np.asarray(overfit.CONTEXTS[c], np.int64)
    t = laplace.tables()
    bins = kernels.arm_tables(y, shapes, offsets, wh, bh, wo, bo, hidden)
    data = kernels.encode(y, bins, t["freqs"], t["cums"], t["lengths"])
    bits = kernels.code_length(y, bins, t["freqs"], t["lengths"])
    assert 8 * data.size <= bits + 32 + 16 and 8 * data.size >= bits - 24
    out, status = kernels.decode(data, shapes, offsets, wh, bh, wo, bo, hidden, t["freqs"],
                                 t["cums"], t["lengths"])
    assert status == kernels.OK and np.array_equal(out, y)
    cut = int(rng.integers(0, data.size))
    _, status = kernels.decode(data[:cut], shapes, offsets, wh, bh, wo, bo, hidden,
                               t["freqs"], t["cums"], t["lengths"])
    assert status != kernels.OK


def test_integer_context_model_follows_the_float_one():
    """The fixed-point ARM is the float one to within its rounding: the table bins it picks
    are those of the float model's mean and scale for nearly every latent."""
    rng = np.random.default_rng(1)
    c, hidden = 8, 1
    wf = rng.normal(0, 0.3, (c, c))
    bf, wo, bo = rng.normal(0, 0.3, c), rng.normal(0, 0.3, (c, 2)), np.array([0.2, -1.0])
    shapes = np.array([[30, 30]])
    y = rng.integers(-4, 5, 900).astype(np.int64)
    ints = {"arm_w0": np.round(wf * 256).astype(np.int64), "arm_b0": np.round(bf * 65536)
            .astype(np.int64), "arm_wo": np.round(wo * 256).astype(np.int64),
            "arm_bo": np.round(bo * 65536).astype(np.int64)}
    arch = overfit.Architecture(levels=1, context=c, arm_layers=hidden, width=4)
    bins = overfit._latent_bins(y, shapes, arch, overfit._int_arm(ints, arch, 8, 16))
    g = np.pad(y.reshape(30, 30), 3).astype(np.float64)
    ctx = np.stack([g[3 + dr:33 + dr, 3 + dc:33 + dc].ravel()
                    for dr, dc in overfit.CONTEXTS[c]], 1)
    x = np.maximum(ctx @ (ints["arm_w0"] / 256) + ints["arm_b0"] / 65536 + ctx, 0)
    out = x @ (ints["arm_wo"] / 256) + ints["arm_bo"] / 65536
    j = np.clip(np.round(10 * out[:, 1] + 46), 0, 86)
    r = np.floor(out[:, 0] + 0.5)
    assert np.mean(bins[:, 0] == j) > 0.97 and np.mean(bins[:, 2] == r) > 0.97


def test_shipped_tables_are_what_the_script_computes():
    """The shipped integers are the script's (a sample of tables recomputed with `decimal`),
    each sums to 2**16 with every entry in [1, MAX_FREQ], and the SHA-256 is checked."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_laplace_tables as script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from decimal import getcontext

    getcontext().prec = 40
    t = laplace.tables()
    for j, m in [(0, 0), (0, 8), (30, 3), (46, 16), (86, 8)]:
        ref = script.table(j, m)
        assert np.array_equal(t["freqs"][j, m, :ref.size], ref)
        assert t["lengths"][j] == ref.size
    for j in range(laplace.N_SCALES):
        row = t["freqs"][:, :, :t["lengths"][j]][j]
        assert (row.sum(axis=1) == 2 ** 16).all() and row.min() >= 1
        assert row.max() <= laplace.MAX_FREQ


def test_corrupted_tables_are_refused(monkeypatch):
    from deepae.exceptions import ArtifactError

    laplace.tables.cache_clear()
    monkeypatch.setattr(laplace, "TABLES_SHA256", "0" * 64)
    try:
        with pytest.raises(ArtifactError, match="Laplace tables .* are corrupted"):
            laplace.tables()
    finally:
        monkeypatch.undo()
        laplace.tables.cache_clear()
    assert laplace.tables()["freqs"].shape == (87, 17, 1024)


# -- the format ---------------------------------------------------------------------------------
def _v2_spec():
    text = FORMAT_DOC.read_text().split("## Version 2")[1]
    return [(m.group(1), m.group(2), m.group(3)) for m in
            re.finditer(r"^\| (\d+|end - 4) \| (\d+|\.\.\.) \| (\w+) \|", text, re.M)]


def test_file_parses_by_the_documented_layout(best, gray):
    """Every field read with the offsets of docs/format.md's version-2 table."""
    data, stats = best
    rows = _v2_spec()
    assert [r[2] for r in rows] == ["magic", "version", "fingerprint", "height", "width",
                                    "channels", "levels", "context", "arm_layers",
                                    "synthesis_width", "planes", "crc32"]
    f = {}
    for off, size, name in rows:
        if size == "...":
            continue
        o = len(data) - 4 if off == "end - 4" else int(off)
        f[name] = data[o:o + int(size)]
    assert f["magic"] == b"DAE" and f["version"] == b"\x02"
    assert f["fingerprint"].hex() == laplace.TABLES_SHA256[:8]
    assert f["fingerprint"].hex() in FORMAT_DOC.read_text()
    assert int.from_bytes(f["height"], "big") == gray.shape[0]
    assert int.from_bytes(f["width"], "big") == gray.shape[1]
    arch = overfit.DEFAULT_ARCHITECTURE
    assert [f[k][0] for k in ("channels", "levels", "context", "arm_layers",
                              "synthesis_width")] == [1, arch.levels, arch.context,
                                                      arch.arm_layers, arch.width]
    assert int.from_bytes(f["crc32"], "big") == zlib.crc32(data[:-4])
    lw = struct.unpack_from(">H", data, 17)[0]
    ly = struct.unpack_from(">I", data, 19 + lw)[0]
    assert 17 + 2 + lw + 4 + ly + 4 == len(data)
    assert (lw, ly) == (stats["planes"][0]["weight_bytes"], stats["planes"][0]["latent_bytes"])


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_every_truncation_and_bad_field_is_a_bitstream_error(codec, best):
    data = best[0]
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            codec.decompress(data[:n])
    body = bytearray(data[:-4])
    cases = {13: 0, 14: 9, 15: 4, 16: 0, 12: 2}  # levels, context, layers, width, channels
    for offset, value in cases.items():
        forged = bytearray(body)
        forged[offset] = value
        with pytest.raises(BitstreamError, match="Corrupted .dae file"):
            codec.decompress(_with_crc(bytes(forged)))
    forged = bytearray(body)
    forged[4] ^= 0xFF
    with pytest.raises(BitstreamError, match="Laplace tables"):
        codec.decompress(_with_crc(bytes(forged)))
    with pytest.raises(BitstreamError, match="bytes after the last plane"):
        codec.decompress(_with_crc(bytes(body) + b"\0"))
    with pytest.raises(BitstreamError, match="versions 1 and 2"):
        codec.decompress(b"DAE\x03" + data[4:])


def _rebuild(data, weights=None, latents=None):
    """The file `data` with its (single) plane's sections replaced, lengths and CRC valid."""
    head = overfit.read_header(data, 10 ** 9)
    w0, l0 = head.planes[0]
    w1, l1 = (w0 if weights is None else weights), (l0 if latents is None else latents)
    body = data[:17] + struct.pack(">H", len(w1)) + w1 + struct.pack(">I", len(l1)) + l1
    return _with_crc(body)


def test_corrupted_sections_with_a_valid_checksum(codec, best):
    """Past the checksum: each section's own checks, with their messages."""
    data = best[0]
    head = overfit.read_header(data, 10 ** 9)
    weights, latents = head.planes[0]
    cases = [(dict(weights=weights + b"\x00"), "bits left after the networks"),
             (dict(weights=weights[:-3]), "end before the values"),
             (dict(weights=bytes([0, 0, 0, 0]) + weights[4:]), "Corrupted .dae file"),
             (dict(latents=latents + b"\x00"), "Corrupted .dae file: plane 0: "),
             (dict(latents=latents[:-1]), "Corrupted .dae file: plane 0: "),
             (dict(latents=bytes(len(latents))), "Corrupted .dae file: plane 0: ")]
    seen = set()
    for kw, message in cases:
        with pytest.raises(BitstreamError, match=message) as e:
            codec.decompress(_rebuild(data, **kw))
        seen.add(str(e.value).split(":")[-1].strip())
    assert len(seen) >= 4  # distinct failures, not one check catching everything


def test_out_of_range_networks_are_refused(codec, best):
    """Legal-looking exp-Golomb integers that would overflow the context model's 64-bit sums
    or the synthesis's float32: refused before any arithmetic."""
    data = best[0]
    arch = overfit.DEFAULT_ARCHITECTURE
    for module in ("arm", "synthesis"):
        out = overfit._BitWriter()
        for m in ("arm", "synthesis"):
            weights, biases = overfit._groups(arch, m)
            sizes = dict(arch.shapes()[m])
            nw = sum(int(np.prod(sizes[n])) for n in weights)
            nb = sum(int(np.prod(sizes[n])) for n in biases)
            for v in (0, 0, 15, 15):
                out.uint(v, 8)
            big = (1 << 31) - 1 if m == module else 1
            out.eg(np.full(nw, big), 15)
            out.eg(np.full(nb, 1), 15)
        with pytest.raises(BitstreamError, match="network parameter is out of range"):
            codec.decompress(_rebuild(data, weights=out.to_bytes()))


def test_forged_sizes_are_refused_before_allocation(codec, best):
    """A header announcing a huge image with a small latents' section is refused by the
    payload check; one over max_pixels by the pixel budget; both before decoding."""
    import tracemalloc

    data = best[0]
    body = bytearray(data[:-4])
    struct.pack_into(">HH", body, 8, 60000, 60000)
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=r"latents, which take at least [\d,]+ bytes"):
            codec.decompress(_with_crc(bytes(body)), max_pixels=10 ** 10)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20  # nothing near 3.6e9 pixels
    finally:
        tracemalloc.stop()
    with pytest.raises(BitstreamError, match="more than max_pixels=100"):
        codec.decompress(data, max_pixels=100)


@pytest.mark.parametrize("s_bias", [-2000 * 256])
def test_the_payload_bound_holds_for_the_cheapest_latents(s_bias):
    """A million latents the context model predicts with its most certain table (every
    symbol at the capped largest frequency): the stream is still at least as long as the
    bound the decoder checks, and the bound is not vacuous there."""
    arch = overfit.Architecture(levels=1, context=8, arm_layers=0, width=4)
    h, w = 1024, 1024
    shapes = arch.grid_shapes(h, w)
    n = arch.n_latents(h, w)
    y = np.zeros(n, np.int64)
    wh, bh = np.zeros((1, 8, 8), np.int64), np.zeros((1, 8), np.int64)
    wo, bo = np.zeros((8, 2), np.int64), np.array([0, s_bias], np.int64)
    t = laplace.tables()
    offsets = np.asarray(overfit.CONTEXTS[8], np.int64)
    bins = kernels.arm_tables(y, shapes, offsets, wh, bh, wo, bo, 0)
    data = kernels.encode(y, bins, t["freqs"], t["cums"], t["lengths"])
    least = max(0, int(n * laplace.PAYLOAD_BITS_PER_SYMBOL / 8) - 8)
    assert least > 100 and data.size >= least
    if s_bias < 0:  # the cheapest table: the bound within 2% of the real size
        assert data.size <= 1.02 * least + 16


def test_old_version_1_files_still_decode(codec, gray):
    data = codec.compress(gray)
    assert data[3] == 1 and codec.decompress(data).shape == gray.shape


def test_pretrained_for_a_version_2_file():
    pytest.importorskip("constriction")
    if not (ROOT / "src" / "deepae" / "pretrained" / "codec_q4.deepae").exists():
        pytest.skip("pretrained codecs not trained")
    codec = ImageCodec.pretrained(quality=2)
    img = smooth(16, 16)
    data = codec.compress(img, effort="best", iterations=5)
    found = ImageCodec.pretrained_for(data)
    assert np.array_equal(found.decompress(data), codec.decompress(data))


def test_bitstream_fuzz_version_2(tmp_path):
    """scripts/fuzz_bitstream.py --format 2: mutated and forged version-2 files decode or
    raise BitstreamError, in bounded memory; forged files among them decode."""
    out = tmp_path / "fuzz.json"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_bitstream.py"), "--n",
                          "300", "--format", "2", "--json", str(out)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    import json

    s = json.loads(out.read_text())
    assert s["format"] == 2 and s["other_exceptions"] == 0
    assert s["decoded"] > 0 and s["bitstream_errors"] > 0 and s["forged_decoded"] > 0
    assert any(k.startswith("Corrupted .dae file: a NxN plane has N latents")
               for k in s["error_kinds"])
    if Path("/proc/self/clear_refs").exists():
        assert s["memory_ok"] and s["peak_extra_mb"] < 300
