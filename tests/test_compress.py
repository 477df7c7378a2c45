"""ImageCodec: round trips, the .dae format as documented, robustness of the decoder."""

import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepae
from deepae import BitstreamError, ImageCodec
from deepae.apps._base import MAX_TILE
from deepae.apps.compress import _tiles, bitstream
from deepae.apps.compress.codec import _YCC2RGB
from deepae.apps.compress.entropy import RangeCoder, freeze_tables, table_bits
from deepae.data.images import pad_to_multiple
from deepae.exceptions import ArtifactError
from deepae.nn.compression import analysis_transform, receptive_halo, synthesis_transform

ROOT = Path(__file__).resolve().parents[1]
FORMAT_DOC = ROOT / "docs" / "format.md"


def blurred_noise(n, size, channels=1, seed=0):
    """Blurred noise in [0, 1]: something with structure for a tiny codec to learn."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size + 4, size + 4, channels)).astype(np.float32)
    k = np.ones(5, np.float32) / 5
    x = np.apply_along_axis(lambda r: np.convolve(r, k, "valid"), 1, x)
    x = np.apply_along_axis(lambda r: np.convolve(r, k, "valid"), 2, x)
    return (x - x.min()) / (x.max() - x.min())


def tiny(**kw):
    params = dict(lmbda=0.05, filters=8, latent_channels=4, levels=2, patch_size=16,
                  patches_per_epoch=512, epochs=4, batch_size=8, learning_rate=5e-3,
                  random_state=0)
    params.update(kw)
    return ImageCodec(**params)


@pytest.fixture(scope="module")
def codec():
    return tiny().fit(blurred_noise(8, 32))


@pytest.fixture(scope="module")
def gray():
    return (blurred_noise(1, 45, seed=1)[0, ..., 0] * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def dae(codec, gray):
    return codec.compress(gray)


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (16, 16), (45, 33), (45, 33, 1), (20, 9, 3)])
def test_round_trip_any_size_and_channels(codec, shape):
    img = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    out = codec.decompress(codec.compress(img))
    assert out.dtype == np.uint8
    assert out.shape == (shape[:2] if len(shape) == 2 or shape[-1] == 1 else shape)


def test_float_input_and_deterministic_bytes(codec, gray, dae):
    assert codec.compress(gray) == dae  # same input, same bytes
    assert codec.compress(gray.astype(np.float32) / 255) == dae
    assert np.array_equal(codec.decompress(dae), codec.decompress(dae))


def test_reconstruction_beats_a_flat_image(codec, gray, dae):
    """The tiny codec (4 latent channels, 4 seconds of training) learned something: closer to
    the image than its mean grey (an untrained one is 10 times further)."""
    out = codec.decompress(dae).astype(float)
    flat = np.full_like(out, gray.mean())
    assert np.mean((out - gray) ** 2) < 0.8 * np.mean((flat - gray) ** 2)


def test_bpp_counts_the_real_file(codec, gray):
    data, stats = codec.compress(gray, return_stats=True)
    assert stats["bytes"] == len(data)
    assert stats["bpp"] == pytest.approx(8 * len(data) / gray.size)
    assert stats["header_bytes"] == bitstream.OVERHEAD_BYTES == 27
    # the file holds the estimate plus the header, the checksum and the coder's last word
    assert 0 < stats["bpp_estimate"] < stats["bpp"]
    assert 8 * len(data) - stats["bpp_estimate"] * gray.size < 8 * (27 + 8)


def test_colour_through_grayscale_codec_is_three_planes(codec):
    """A colour image through the grayscale codec is its Y, Cb and Cr planes, each coded as
    the codec codes a grayscale image: the colour result is the planes' grayscale round
    trips converted back (to 8-bit rounding), and it keeps the colours (chroma dropped, a
    flat grey or each channel's mean would fail the last check)."""
    rgb = (blurred_noise(1, 32, channels=3, seed=4)[0] * 255).astype(np.uint8)
    data = codec.compress(rgb)
    head, _ = bitstream.unpack(data)
    assert (head.channels, head.latent_shape) == (3, (8, 8, 4))
    out = codec.decompress(data)
    assert out.shape == rgb.shape
    planes = codec._planes(rgb.astype(np.float32) / 255)[..., 0]  # (3, h, w): Y, Cb, Cr
    grey = np.stack([codec.decompress(codec.compress(p)) for p in planes], -1) / 255.0
    expected = np.clip((grey - [0.0, 0.5, 0.5]) @ _YCC2RGB.T, 0, 1) * 255
    assert np.abs(out - expected).max() <= 2.0  # the planes' 8-bit rounding, converted
    mae = lambda x: np.mean(np.abs(x.astype(float) - rgb))  # noqa: E731
    bound = 0.85 * mae(np.broadcast_to(rgb.mean(axis=(0, 1)), rgb.shape))  # channel means
    assert mae(out) < bound  # 22.5 (PSNR 19 dB: the tiny codec)
    luma = np.repeat(planes[0][..., None], 3, -1) * 255  # exact luma, chroma dropped: 25.0
    assert mae(np.full(rgb.shape, 128.0)) > bound and mae(luma) > bound


def test_colour_codec_round_trip():
    c = tiny(epochs=1, patches_per_epoch=64).fit(blurred_noise(4, 32, channels=3))
    img = (blurred_noise(1, 20, channels=3, seed=3)[0] * 255).astype(np.uint8)
    assert c.decompress(c.compress(img)).shape == (20, 20, 3)
    g = img[..., 0]
    assert c.decompress(c.compress(g)).shape == (20, 20)


# -- tiles ----------------------------------------------------------------------------------------
def _counting(monkeypatch, obj, attr):
    """Count the calls of one of a codec's (or its refiner's) compiled functions."""
    calls, fn = [], getattr(obj, attr)
    monkeypatch.setattr(obj, attr, lambda x, *a: calls.append(x.shape) or fn(x, *a))
    return calls


@pytest.mark.parametrize("shape", [(45, 45), (37, 29, 3), (3, 7), (64, 50), (17, 33, 1)])
def test_tiles_give_the_untiled_bytes_and_pixels(codec, monkeypatch, shape):
    """Tiles of one latent position (4 pixels) and of three, against the whole image in one
    window: the same bytes, the decoded pixels equal up to float rounding (the convolutions
    sum in another order on another shape: a value at a rounding boundary may move by one
    level, docs/format.md), and tiling did happen."""
    channels = shape[2] if len(shape) == 3 else 1
    img = blurred_noise(1, max(shape[:2]), channels=channels, seed=2)[0][:shape[0], :shape[1]]
    img = (img[..., 0] if len(shape) == 2 else img) * 255
    img = img.round().astype(np.uint8)
    monkeypatch.setattr(codec, "tile", MAX_TILE)
    whole = codec.compress(img)
    decoded = codec.decompress(whole)
    for tile in (4, 12):
        monkeypatch.setattr(codec, "tile", tile)
        enc = _counting(monkeypatch, codec, "_encode_fn")
        dec = _counting(monkeypatch, codec, "_decode_fn")
        assert codec.compress(img) == whole
        diff = np.abs(codec.decompress(whole).astype(np.int16) - decoded)
        assert diff.max() <= 1 and np.count_nonzero(diff) <= max(1, diff.size // 1000)
        lh, lw = -(-shape[0] // 4), -(-shape[1] // 4)
        n_tiles = -(-lh // (tile // 4)) * -(-lw // (tile // 4))
        planes = 3 if channels == 3 else 1
        assert len(enc) == len(dec) == n_tiles * planes
        monkeypatch.undo()
        monkeypatch.setattr(codec, "tile", MAX_TILE)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_the_halo_is_the_receptive_field(levels):
    """Random transforms of 1 to 3 stages: tiles of one latent position with
    `receptive_halo` positions of context give the whole image's latent and pixels (to
    float rounding); one position less does not."""
    import keras

    keras.utils.set_random_seed(levels)
    s, halo = 2 ** levels, receptive_halo(levels)
    assert halo == (1 if levels == 1 else 2)
    ga = analysis_transform(1, filters=6, latent_channels=3, levels=levels)
    gs = synthesis_transform(1, filters=6, latent_channels=3, levels=levels)
    img = np.random.default_rng(levels).random((1, 11 * s, 9 * s, 1)).astype(np.float32)
    region = lambda r0, r1, c0, c1: img[:, r0:r1, c0:c1]  # noqa: E731
    y = np.asarray(ga(img))[0]

    def decode(tile, h):
        out = np.zeros((11 * s, 9 * s, 1), np.float32)
        for (r0, r1, c0, c1), p in _tiles.synthesise(gs, [y], 11 * s, 9 * s, s, tile, h):
            out[r0:r1, c0:c1] = p[0]
        return out

    whole = np.asarray(gs(y[None]))[0]
    assert np.abs(_tiles.analyse(ga, region, 11, 9, s, 1, halo)[0] - y).max() < 1e-5
    assert np.abs(decode(1, halo) - whole).max() < 1e-5
    assert np.abs(_tiles.analyse(ga, region, 11, 9, s, 1, halo - 1)[0] - y).max() > 1e-3
    assert np.abs(decode(1, halo - 1) - whole).max() > 1e-3


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (20, 9, 3), (45, 33), (2, 31, 1)])
def test_tile_regions_are_the_padded_planes(codec, shape):
    """Any region of the planes, read tile by tile from the image, is that region of the
    whole planes padded with `pad_to_multiple` (mirrored), pads longer than the side too."""
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    full = img.astype(np.float32)[..., None] / 255 if img.ndim == 2 else img / np.float32(255)
    planes = np.stack([pad_to_multiple(p, 4) for p in codec._planes(full.astype(np.float32))])
    region = codec._region(img, "image")
    H, W = planes.shape[1:3]
    for r0, r1, c0, c1 in [(0, H, 0, W), (0, 4, 0, 4), (H - 4, H, W - 4, W), (0, H, W - 4, W)]:
        assert np.allclose(region(r0, r1, c0, c1), planes[:, r0:r1, c0:c1], atol=1e-6)


def test_tile_is_checked(codec, gray, monkeypatch):
    monkeypatch.setattr(codec, "tile", 0)
    with pytest.raises(ValueError, match="'tile' parameter of ImageCodec"):
        codec.compress(gray)
    with pytest.raises(ValueError, match="'tile' parameter of ImageCodec"):
        tiny(tile=0).fit(blurred_noise(2, 32))


def test_refinement_in_tiles(codec, monkeypatch):
    """A latent of several refinement tiles: the search runs tile by tile, the file decodes,
    and it costs no more than the one-pass file."""
    img = (blurred_noise(1, 40, seed=8)[0, ..., 0] * 255).round().astype(np.uint8)
    plain, s0 = codec.compress(img, return_stats=True)
    codec.compress(img[:4, :4], refine_steps=1)  # the refiner, built
    steps = _counting(monkeypatch, codec._refiner, "_step")
    monkeypatch.setattr(codec, "tile", 16)  # tiles of 4 x 4 latent positions: 3 x 3 of them
    data, s1 = codec.compress(img, refine_steps=10, return_stats=True)
    assert len(steps) == 9 * 10
    assert data != plain
    assert codec.decompress(data).shape == img.shape
    assert _real_cost(codec, img, data, s1) <= _real_cost(codec, img, plain, s0) + 1e-9


def test_save_load_same_bytes_and_images(codec, gray, dae, tmp_path):
    path = codec.save(tmp_path / "c.deepae")
    back = ImageCodec.load(path)
    assert back.fingerprint_ == codec.fingerprint_
    assert back.compress(gray) == dae
    assert np.array_equal(back.decompress(dae), codec.decompress(dae))
    assert isinstance(deepae.load(path), ImageCodec)


def test_load_refuses_another_estimator(tmp_path):
    det = deepae.AnomalyDetector(hidden_units=(4,), n_components=1, epochs=1, random_state=0)
    path = det.fit(np.random.default_rng(0).random((30, 3))).save(tmp_path / "d.deepae")
    with pytest.raises(ArtifactError, match="holds a AnomalyDetector, not a ImageCodec"):
        ImageCodec.load(path)


def test_bit_exact_across_processes(codec, gray, dae, tmp_path):
    """Another process, loading the saved codec, writes the same bytes and decodes the same
    pixels."""
    model = codec.save(tmp_path / "c.deepae")
    np.save(tmp_path / "img.npy", gray)
    (tmp_path / "a.dae").write_bytes(dae)
    script = f"""
import numpy as np, deepae
c = deepae.ImageCodec.load({str(model)!r})
img = np.load({str(tmp_path / 'img.npy')!r})
open({str(tmp_path / 'b.dae')!r}, 'wb').write(c.compress(img))
np.save({str(tmp_path / 'out.npy')!r}, c.decompress(open({str(tmp_path / 'a.dae')!r}, 'rb').read()))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert (tmp_path / "b.dae").read_bytes() == dae
    assert np.array_equal(np.load(tmp_path / "out.npy"), codec.decompress(dae))


def _real_cost(codec, image, data, stats):
    """What refinement lowers: the tables' bits per pixel + lambda * MSE in 8-bit units."""
    err = np.mean((codec.decompress(data).astype(float) - image) ** 2)
    return stats["bpp_estimate"] + codec.lmbda * err


def test_refinement_lowers_the_real_cost_for_the_same_decoder(codec, gray):
    plain, s0 = codec.compress(gray, return_stats=True)
    refined, s1 = codec.compress(gray, refine_steps=40, return_stats=True)
    assert refined != plain  # it found another latent ...
    assert _real_cost(codec, gray, refined, s1) < 0.99 * _real_cost(codec, gray, plain, s0)
    head0, _ = bitstream.unpack(plain)
    head1, _ = bitstream.unpack(refined)
    assert head1 == head0  # ... for the same decoder and header
    assert codec.compress(gray, refine_steps=40) == refined  # same input, same bytes


def test_refinement_never_makes_a_plane_worse(codec):
    """A colour image (three planes) of odd size, refined with one step and with 25: it
    round-trips and costs no more than unrefined (the fallback itself is tested below)."""
    rgb = (blurred_noise(1, 37, channels=3, seed=6)[0, :, :29] * 255).astype(np.uint8)
    for steps in (1, 25):
        data, stats = codec.compress(rgb, refine_steps=steps, return_stats=True)
        plain, s0 = codec.compress(rgb, return_stats=True)
        assert codec.decompress(data).shape == rgb.shape
        assert _real_cost(codec, rgb, data, stats) <= _real_cost(codec, rgb, plain, s0) + 1e-9


def test_a_failed_search_keeps_the_one_pass_latent(codec, gray):
    """A search thrown far off (learning rate 1000) finds only costlier latents: every plane
    keeps the analysis transform's rounded latent, so the file is the unrefined one."""
    from deepae.apps.compress.refine import LatentRefiner

    planes = np.stack([gray[:44, :32, None]]).astype(np.float32) / 255  # a multiple of 4
    y0 = np.asarray(codec.analysis_(planes))
    wild = LatentRefiner(codec.synthesis_, codec.prior_, codec.tables_, learning_rate=1e3)
    out = wild(planes, y0, 5, 44, 32, codec.lmbda)
    assert out.dtype == np.int32
    assert np.array_equal(out, np.round(y0).astype(np.int32))
    good = LatentRefiner(codec.synthesis_, codec.prior_, codec.tables_)
    assert not np.array_equal(good(planes, y0, 40, 44, 32, codec.lmbda), out)


@pytest.mark.parametrize("steps, error", [(-1, ValueError), (2.5, TypeError),
                                          (True, TypeError), ("10", TypeError)])
def test_refine_steps_is_checked(codec, gray, steps, error):
    with pytest.raises(error, match=r"`refine_steps` as an int >= 0; received"):
        codec.compress(gray, refine_steps=steps)


def test_warm_start_continues_training(codec):
    c = tiny(epochs=1, patches_per_epoch=64).fit(blurred_noise(4, 32))
    before = c.synthesis_.get_weights()[0].copy()
    c.set_params(warm_start=True, lmbda=0.1)
    c.fit(blurred_noise(4, 32, seed=5))
    assert len(c.history_["loss"]) == 2  # the first epoch's history is kept
    assert not np.array_equal(before, c.synthesis_.get_weights()[0])
    with pytest.raises(ValueError, match="warm_start=True continues a codec of 1 channel"):
        c.fit(blurred_noise(4, 32, channels=3))


# -- the entropy model ------------------------------------------------------------------------
def test_frozen_tables_are_exact_integers(codec):
    t = codec.tables_
    for c, n in enumerate(t["lengths"]):
        row = t["freqs"][c]
        assert row[:n].sum() == 2 ** 16 and (row[:n] >= 1).all() and (row[n:] == 0).all()
    again = freeze_tables(codec.prior_.get_layer("factorized_prior"))
    for k in t:
        assert np.array_equal(t[k], again[k])


def test_escapes_round_trip():
    """Values far outside the tables are coded by the escape and come back exactly."""
    tables = {"offsets": np.array([-2, 0], np.int32), "lengths": np.array([5, 3], np.int32),
              "freqs": np.array([[10000, 20000, 20000, 10000, 5536, 0],
                                 [30000, 35535, 1, 0, 0, 0]], np.int32)}
    coder = RangeCoder(tables)
    rng = np.random.default_rng(0)
    y = rng.integers(-3, 4, (5, 7, 2)).astype(np.int32)
    y[0, 0, 0], y[1, 1, 1], y[2, 2, 0] = 2 ** 20, -(2 ** 20), -123456
    back = coder.decode(coder.encode([y]), [y.shape])
    assert np.array_equal(back[0], y)
    assert table_bits([y], tables) > 3 * 32


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31), channels=st.integers(1, 5), shape=st.tuples(
    st.integers(1, 9), st.integers(1, 9)), planes=st.integers(1, 3), spread=st.integers(1, 40))
def test_range_coder_round_trips_any_tables_and_latents(seed, channels, shape, planes, spread):
    """Random integer tables (escape included), random latents, some far outside the
    tables: decode(encode(y)) == y exactly."""
    from deepae.apps.compress.entropy import _quantise

    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 12, channels)
    freqs = np.zeros((channels, lengths.max()), np.int32)
    for c, n in enumerate(lengths):
        freqs[c, :n] = _quantise(rng.dirichlet(np.ones(n)))
    tables = {"offsets": rng.integers(-6, 3, channels).astype(np.int32),
              "lengths": lengths.astype(np.int32), "freqs": freqs}
    coder = RangeCoder(tables)
    ys = [rng.integers(-spread, spread + 1, (*shape, channels)).astype(np.int32)
          for _ in range(planes)]
    back = coder.decode(coder.encode(ys), [y.shape for y in ys])
    assert all(np.array_equal(a, b) for a, b in zip(ys, back, strict=True))


# -- the format, as docs/format.md specifies it -------------------------------------------------
def _spec_table():
    """Rows (offset, size, field) of version 1's layout table in docs/format.md."""
    rows = []
    for line in FORMAT_DOC.read_text().split("## Version 2")[0].splitlines():
        m = re.match(r"^\| (\d+(?: \+ L)?) \| (\d+|L) \| (\w+) \|", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3)))
    return rows


def test_file_parses_by_the_documented_layout(codec, gray, dae):
    """Read every field with the offsets and sizes of docs/format.md, not with our parser."""
    rows = _spec_table()
    assert [r[2] for r in rows] == ["magic", "version", "fingerprint", "height", "width",
                                    "channels", "latent_height", "latent_width",
                                    "latent_channels", "payload_length", "payload", "crc32"]
    fields, L = {}, None
    for off, size, name in rows:
        o = int(off.split()[0]) + (L if "L" in off else 0)
        n = L if size == "L" else int(size)
        raw = dae[o:o + n]
        fields[name] = raw if name in ("magic", "fingerprint", "payload") else \
            int.from_bytes(raw, "big")
        if name == "payload_length":
            L = fields[name]
    assert fields["magic"] == b"DAE" and fields["version"] == 1
    assert fields["fingerprint"] == bytes.fromhex(codec.fingerprint_[:8])
    assert (fields["height"], fields["width"], fields["channels"]) == (45, 45, 1)
    assert (fields["latent_height"], fields["latent_width"], fields["latent_channels"]) == \
        (12, 12, 4)  # ceil(45 / 2**2), the codec's 4 latent channels
    assert len(dae) == 23 + L + 4
    assert fields["crc32"] == zlib.crc32(dae[:23 + L])
    # the payload: big-endian 32-bit words decode to the latent the codec computed
    y, _ = codec._latents(gray)
    assert np.array_equal(codec._coder.decode(fields["payload"], [(12, 12, 4)])[0], y[0])


# -- the robust decoder -----------------------------------------------------------------------
def test_pack_names_the_bad_field():
    head = bitstream.Header(b"\0" * 4, 8, 8, 1, (2, 2, 4))
    with pytest.raises(ValueError, match="4-byte `fingerprint`; received 3 bytes"):
        bitstream.pack(bitstream.Header(b"abc", 8, 8, 1, (2, 2, 4)), b"")
    with pytest.raises(ValueError, match=r"`latent_shape` as 3 sizes .* received \(0, 2, 4\)"):
        bitstream.pack(bitstream.Header(head.fingerprint, 8, 8, 1, (0, 2, 4)), b"")
    with pytest.raises(ValueError, match="1 or 3 channels; received 2"):
        bitstream.pack(bitstream.Header(head.fingerprint, 8, 8, 2, (2, 2, 4)), b"")


def test_truncated_files(codec, dae):
    for n in range(len(dae)):
        with pytest.raises(BitstreamError, match="Truncated|Not a deepae|Corrupted"):
            codec.decompress(dae[:n])


def test_each_flipped_byte_is_caught(codec, dae):
    for i in range(len(dae)):
        bad = bytearray(dae)
        bad[i] ^= 0x5A
        with pytest.raises(BitstreamError):
            codec.decompress(bytes(bad))


@pytest.mark.parametrize("data, match", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "expected the magic bytes b'DAE', found b'\\\\x89PN'"),
    (b"", "Not a deepae compressed image"),
    (b"DAE\x03" + b"\0" * 40, "Unknown .dae format version 3; this deepae reads versions 1 "
                               "and 2"),
])
def test_foreign_and_unknown_version(codec, data, match):
    with pytest.raises(BitstreamError, match=match):
        codec.decompress(data)


def test_wrong_model_and_trailing_bytes(codec, dae):
    other = tiny(random_state=1, epochs=1, patches_per_epoch=64).fit(blurred_noise(4, 32, seed=9))
    with pytest.raises(BitstreamError, match="fingerprint .* this codec's is"):
        other.decompress(dae)
    with pytest.raises(BitstreamError, match="bytes after the"):
        codec.decompress(dae + b"\0")
    with pytest.raises(TypeError, match="Expected `data` as bytes"):
        codec.decompress("photo.dae")


def test_forged_headers_with_valid_checksums(codec, dae):
    """Fields that pass the CRC but contradict the codec are refused by name."""
    def forge(offset, fmt, value):
        b = bytearray(dae)
        struct.pack_into(fmt, b, offset, value)
        return _fuzz_module().fix_crc(bytes(b))

    with pytest.raises(BitstreamError, match="latent of shape"):
        codec.decompress(forge(8, ">H", 46 + 8))  # height no longer matches the latent
    with pytest.raises(BitstreamError, match="invalid shape fields"):
        codec.decompress(forge(12, ">B", 2))
    with pytest.raises(BitstreamError, match="max_pixels"):
        codec.decompress(dae, max_pixels=100)


def _forged(codec, h, w, c, payload=b""):
    """A file with a valid checksum announcing an h x w x c image, with `payload`."""
    s, m = codec.stride, int(codec.latent_channels)
    head = bitstream.Header(bytes.fromhex(codec.fingerprint_[:8]), h, w, c,
                            (-(-h // s), -(-w // s), m))
    return bitstream.pack(head, payload)


@pytest.mark.parametrize("h, w, c, n", [(2048, 2048, 1, 0), (4096, 4096, 3, 0),
                                        (640, 480, 3, 500), (65535, 1365, 1, 973)])
def test_short_payload_refused_before_anything_is_decoded(codec, monkeypatch, h, w, c, n):
    """A forged file under 1 KB announcing a large image: refused by name (bytes expected
    and received) before the range decoder or a transform runs, in milliseconds."""
    def never(*args):
        raise AssertionError("reached the decoder")

    monkeypatch.setattr(codec._coder, "decode", never)
    monkeypatch.setattr(codec, "_decode_fn", never)
    data = _forged(codec, h, w, c, bytes(range(256)) * (n // 256) + bytes(n % 256))
    assert len(data) < 1024
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match=r"takes at least [\d,]+ payload bytes with this "
                                             rf"codec's tables; the file has {n:,}\."):
        codec.decompress(data)
    assert time.perf_counter() - t0 < 0.5


def test_real_payloads_are_never_too_short(codec):
    """The cheapest latents there are (flat images: every position alike) and noisy ones,
    grayscale and colour, small and large: every file the codec writes passes the payload
    check."""
    rng = np.random.default_rng(3)
    images = [np.full(shape, v, np.uint8) for v in (0, 128, 255)
              for shape in [(1, 1), (16, 16), (120, 90), (64, 64, 3)]]
    images += [rng.integers(0, 256, (50, 70), dtype=np.uint8), blurred_noise(1, 96)[0]]
    for img in images:
        data = codec.compress(img)
        head, payload = bitstream.unpack(data)
        n_planes = 3 if head.channels == 3 else 1
        assert len(payload) >= codec._coder.min_payload_bytes([head.latent_shape] * n_planes)
        colour = img.ndim == 3 and img.shape[-1] == 3
        assert codec.decompress(data).shape == img.shape[:2] + ((3,) if colour else ())


def _random_tables(rng, channels):
    from deepae.apps.compress.entropy import _quantise

    lengths = rng.integers(2, 12, channels)
    freqs = np.zeros((channels, lengths.max()), np.int32)
    for c, n in enumerate(lengths):
        freqs[c, :n] = _quantise(rng.dirichlet(np.full(n, rng.choice([0.2, 1.0, 5.0]))))
    return {"offsets": rng.integers(-6, 3, channels).astype(np.int32),
            "lengths": lengths.astype(np.int32), "freqs": freqs}


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 31), channels=st.integers(1, 5), shape=st.tuples(
    st.integers(1, 30), st.integers(1, 30)), planes=st.integers(1, 3),
    kind=st.sampled_from(["mode", "random", "mode_then_first"]))
def test_payload_bound_holds_for_any_tables(seed, channels, shape, planes, kind):
    """`min_payload_bytes` never exceeds what `encode` writes: for each channel's most
    probable value everywhere (the cheapest latent), for random values, and for the cheapest
    latent whose live tail channels end in runs of their first value (which the coder
    writes as dropped zero bytes)."""
    rng = np.random.default_rng(seed)
    tables = _random_tables(rng, channels)
    coder = RangeCoder(tables)
    mode = tables["offsets"] + tables["freqs"].argmax(axis=1)
    ys = []
    for _ in range(planes):
        if kind == "random":
            y = rng.integers(-8, 9, (*shape, channels))
        else:
            y = np.broadcast_to(mode, (*shape, channels)).copy()
        ys.append(y.astype(np.int32))
    if kind == "mode_then_first":  # the end of the last plane's tail channels: first values
        from deepae.apps.compress.entropy import tail_channels

        k = tail_channels(tables)
        flat = ys[-1].reshape(-1, channels)
        cut = rng.integers(0, len(flat) + 1)
        flat[cut:, k:] = tables["offsets"][k:]
    data = coder.encode(ys)
    assert len(data) >= coder.min_payload_bytes([y.shape for y in ys])
    assert all(np.array_equal(a, b) for a, b in zip(coder.decode(data, [y.shape for y in ys]), ys,
                                                    strict=True))


def test_first_values_at_the_end_cost_nothing():
    """Why the bound leaves out the tail channels: first table values at the end of the
    stream code to zero bytes, which the payload drops. A latent made only of them codes to
    an empty payload however large it is; the bound covers every latent whose last live
    channel (here channel 1) is not made only of its first value, a tail value in a trained
    codec."""
    from deepae.apps.compress.entropy import tail_channels

    tables = {"offsets": np.array([0, -1, 5], np.int32), "lengths": np.array([3, 3, 2], np.int32),
              "freqs": np.array([[40000, 25000, 536], [20000, 45000, 536], [65535, 1, 0]],
                                np.int32)}
    coder = RangeCoder(tables)
    assert tail_channels(tables) == 1  # channel 2 is dead (one value), channel 1 is live
    y = np.broadcast_to(np.array([0, -1, 5], np.int32), (50, 50, 3)).copy()
    assert coder.encode([y]) == b""  # every value its table's first
    y[..., 1] = 0  # the live tail channel at its likeliest value, channel 0 at its first
    y[-1, 10:, 1] = -1  # ... and its last values at the first
    assert len(coder.encode([y])) >= coder.min_payload_bytes([y.shape]) > 0
    y[..., 0] = 1  # channel 0 at its second value: more bytes
    assert len(coder.encode([y])) > coder.min_payload_bytes([y.shape]) > 0
    dead = {k: v[2:] for k, v in tables.items()}  # no live channel: nothing to bound
    assert RangeCoder(dead).min_payload_bytes([(999, 999, 1)]) == 0


def test_pixel_limit_counts_planes(codec):
    """A colour image through a grayscale codec is three planes to decode: max_pixels
    counts them; a grayscale image is one."""
    rgb = (blurred_noise(1, 20, channels=3, seed=3)[0, :, :9] * 255).astype(np.uint8)
    data = codec.compress(rgb)  # 20 x 9 = 180 pixels, 540 plane pixels
    with pytest.raises(BitstreamError, match=r"a 9x20 image coded as 3 plane\(s\), 540 "
                                             r"pixels in all, more than max_pixels=539"):
        codec.decompress(data, max_pixels=539)
    assert codec.decompress(data, max_pixels=540).shape == rgb.shape
    grey = codec.compress(rgb[..., 0])
    assert codec.decompress(grey, max_pixels=180).shape == (20, 9)
    with pytest.raises(BitstreamError, match="coded as 1 plane"):
        codec.decompress(grey, max_pixels=179)
    with pytest.raises(ValueError, match=r"`max_pixels` as an int >= 1; received 0"):
        codec.decompress(grey, max_pixels=0)


_MEMORY_CHILD = """
import sys
import numpy as np, deepae

def status(key):  # KB; VmHWM, not ru_maxrss, which a spawned child inherits from its parent
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])

codec = deepae.ImageCodec.load(sys.argv[1])
codec.set_params(tile=int(sys.argv[2]))
img = (np.add.outer(np.arange(2048), np.arange(2048)) % 251).astype(np.uint8)
codec.decompress(codec.compress(img[:64, :64]))  # traced and warm
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) back to the resident set now
base = status("VmRSS:")
out = codec.decompress(codec.compress(img))
print(out.shape, (status("VmHWM:") - base) / 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_memory_is_bounded_by_the_tile(codec, tmp_path):
    """Compressing and decompressing a 4-megapixel image in a fresh process: with tiles of
    128 pixels the peak RSS grows by less than a third of what one whole-image window costs,
    and by under 40 MB (the latent, the image and one tile)."""
    model = codec.save(tmp_path / "c.deepae")

    def extra_mb(tile):
        res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(model), str(tile)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.startswith("(2048, 2048)")
        return float(res.stdout.split()[-1])

    tiled, whole = extra_mb(128), extra_mb(MAX_TILE)
    assert tiled < 40 and tiled < whole / 3, (tiled, whole)


_MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "cut"]),
                                st.integers(0, 10_000), st.integers(0, 255)),
                      min_size=1, max_size=4)


def _fuzz_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_bitstream",
                                                  ROOT / "scripts" / "fuzz_bitstream.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=_MUTATIONS, fix=st.booleans())
def test_mutated_files_decode_or_raise_bitstream_error(codec, dae, ops, fix):
    """Any mutation, with the checksum repaired or not: an image or BitstreamError, nothing
    else."""
    fuzz = _fuzz_module()
    data = fuzz.mutate(dae, ops)
    if fix and len(data) >= 27:
        data = fuzz.fix_crc(data)
    try:
        out = codec.decompress(data)
    except BitstreamError:
        return
    assert out.dtype == np.uint8 and out.ndim in (2, 3)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_images(codec):
    with pytest.raises(ValueError, match=r"shape \(h, w\), \(h, w, 1\) or \(h, w, 3\); received "
                                         r"\(8, 8, 4\)"):
        codec.compress(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(TypeError, match="16-bit"):
        codec.compress(np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match=r"one \(h, w\) or \(h, w, c\) image; received an "
                                         r"array of shape \(2, 8, 8, 1\)"):
        codec.compress(np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match=r"float pixels in \[0, 1\]"):
        codec.compress(np.full((8, 8), 3.0))


def test_bad_parameters_and_training_data():
    with pytest.raises(ValueError, match="'lmbda' parameter of ImageCodec"):
        tiny(lmbda=0).fit(blurred_noise(2, 32))
    with pytest.raises(ValueError, match="at least 4 pixels on each side"):
        tiny().fit(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="all grayscale or all colour"):
        tiny().fit([np.zeros((16, 16)), np.zeros((16, 16, 3))])


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ImageCodec().compress(np.zeros((8, 8), np.uint8))


# -- the shipped codecs --------------------------------------------------------------------------
SHIPPED = ROOT / "src" / "deepae" / "pretrained"


@pytest.mark.skipif(not (SHIPPED / "codec_q8.deepae").exists(),
                    reason="pretrained codecs not trained yet (scripts/train_codecs.py)")
def test_pretrained_codecs_rate_and_quality():
    from deepae.datasets import load_photos
    from deepae.metrics import psnr

    crop = (load_photos(["coins"])[0][:128, :160] * 255).round().astype(np.uint8)
    sizes, quality = [], []
    for q in (1, 4, 8):
        c = ImageCodec.pretrained(quality=q)
        data = c.compress(crop)
        sizes.append(len(data))
        quality.append(psnr(crop, c.decompress(data), data_range=255))
    assert sizes[0] < sizes[1] < sizes[2] < crop.size  # fewer bytes than raw 8-bit pixels
    assert quality[0] < quality[1] < quality[2]
    assert quality[2] > 30
    assert sum(p.stat().st_size for p in SHIPPED.glob("codec_q*.deepae")) < 30e6
    data = ImageCodec.pretrained(quality=4).compress(crop)
    assert ImageCodec.pretrained_for(data).fingerprint_ == \
        ImageCodec.pretrained(quality=4).fingerprint_
    with pytest.raises(ValueError, match="`quality` as an int from 1 to 8; received 9"):
        ImageCodec.pretrained(quality=9)
