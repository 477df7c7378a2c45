"""Denoiser and the restoration pieces: layouts and dtypes, any size, seamless tiling,
save/load, bad input."""

import numpy as np
import pytest

import deepae
from conftest import smooth_images
from deepae.apps.restore import Denoiser, apply_tiled, random_patches, to_float_images
from deepae.metrics import psnr
from deepae.nn.restoration import multiple, receptive_radius, restoration_net


@pytest.fixture(scope="module")
def fitted():
    x = smooth_images(64, 32, 32)
    return Denoiser(sigma=0.1, filters=(8, 16), epochs=4, patches_per_epoch=512,
                    patch_size=32, random_state=0).fit(x)


def test_denoiser_learns_and_keeps_layout_and_dtype(fitted):
    clean = smooth_images(8, 32, 32, seed=1)
    r = np.random.default_rng(2)
    noisy = np.clip(clean + r.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    out = fitted.transform(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(clean, out) > psnr(clean, noisy) + 1.0   # it denoises
    one = fitted.transform(noisy[0, ..., 0])             # (h, w) in, (h, w) out
    assert one.shape == (32, 32)
    u8 = fitted.transform((noisy[0] * 255).astype(np.uint8))
    assert u8.dtype == np.uint8 and u8.shape == (32, 32, 1)
    sizes = fitted.transform([noisy[0, :17, :29], noisy[1]])   # any size, a list
    assert [s.shape for s in sizes] == [(17, 29, 1), (32, 32, 1)]


def test_tiled_equals_untiled():
    net = restoration_net(1, filters=(4, 8, 8), convs_per_level=2)
    radius = receptive_radius((4, 8, 8), 2)
    img = np.random.default_rng(0).random((150, 203, 1)).astype(np.float32)
    fn = lambda x: net(x, training=False).numpy()  # noqa: E731
    whole = apply_tiled(fn, img, tile=10_000, halo=radius, mult=multiple((4, 8, 8)))
    tiled = apply_tiled(fn, img, tile=40, halo=radius, mult=4)
    assert whole.shape == tiled.shape == img.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    # too little context shows: the check above is not vacuous
    short = apply_tiled(fn, img, tile=40, halo=2, mult=4)
    assert np.abs(short - whole).max() > 1e-4


def test_denoiser_tiles_large_images(fitted):
    img = smooth_images(1, 130, 90, seed=3)[0]
    small_tiles = Denoiser(**{**fitted.get_params(), "tile": 32})
    small_tiles.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")
                                 or k == "_predict"})
    np.testing.assert_allclose(small_tiles.transform(img), fitted.transform(img), atol=1e-4)


def test_save_load_identity(tmp_path, fitted):
    x = smooth_images(2, 24, 40, seed=4)
    path = fitted.save(tmp_path / "d.deepae")
    again = deepae.load(path)
    assert isinstance(again, Denoiser) and again.get_params() == fitted.get_params()
    for a, b in zip(again.model_.get_weights(), fitted.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the same weights; oneDNN may pick another kernel for a new model: float rounding only
    np.testing.assert_allclose(again.transform(x), fitted.transform(x), atol=1e-6)


def test_given_sigma_mode_and_other_noises():
    x = smooth_images(16, 16, 16)
    d = Denoiser(mode="given", filters=(4,), epochs=1, patches_per_epoch=64,
                 random_state=0).fit(x)
    assert d.transform(x[0], sigma=0.2).shape == (16, 16, 1)
    with pytest.raises(ValueError, match="sigma="):
        d.transform(x[0])
    for noise in ("salt_pepper", "mask"):
        m = Denoiser(noise=noise, sigma=0.1, filters=(4,), epochs=1, patches_per_epoch=64,
                     random_state=0).fit(x)
        assert m.transform(x).shape == x.shape


def test_bad_input(fitted):
    with pytest.raises(ValueError, match="1-channel images.*per_channel=True"):
        fitted.transform(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(TypeError, match="'per_channel' parameter of Denoiser must be a bool"):
        Denoiser(per_channel="yes").fit(smooth_images(2, 8, 8))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        fitted.transform(np.zeros((1, 8), np.float32))
    with pytest.raises(TypeError, match="16-bit"):
        fitted.transform(np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Denoiser(epochs=1).fit(np.full((2, 8, 8), 3.0))
    # noisy floats outside [0, 1] are what the denoiser trains on: accepted, result clipped
    out = fitted.transform(np.full((8, 8), 1.3, np.float32))
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="Expected image files"):
        Denoiser().fit(tmp := __import__("tempfile").mkdtemp())
    del tmp
    with pytest.raises(ValueError, match="'sigma' parameter of Denoiser"):
        Denoiser(sigma=(0.3, 0.1)).fit(smooth_images(2, 8, 8))
    with pytest.raises(ValueError, match="'noise' parameter of Denoiser"):
        Denoiser(noise="poisson").fit(smooth_images(2, 8, 8))


def test_patches_and_layouts():
    r = np.random.default_rng(0)
    imgs = [np.arange(100, dtype=np.float32).reshape(10, 10, 1) / 100,
            np.zeros((20, 12, 1), np.float32)]
    p = random_patches(imgs, 8, 50, r)
    assert p.shape == (50, 8, 8, 1)
    ims, layout = to_float_images(np.zeros((5, 28, 28), np.uint8), batch_3d=True)
    assert len(ims) == 5 and ims[0].shape == (28, 28, 1) and layout["kind"] == "batch3"


def blocky_images(n, h, w, seed=0):
    """Overlapping rectangles: sharp edges that bicubic upsampling blurs."""
    r = np.random.default_rng(seed)
    out = np.full((n, h, w, 1), 0.2, np.float32)
    for i in range(n):
        for _ in range(4):
            y, x = r.integers(0, h - 4), r.integers(0, w - 4)
            out[i, y:y + r.integers(3, h // 2), x:x + r.integers(3, w // 2)] = r.uniform(0.3, 1)
    return out


@pytest.fixture(scope="module")
def upscaler():
    x = blocky_images(128, 32, 32)
    return deepae.SuperResolver(scale=2, filters=(16, 32), epochs=8, patches_per_epoch=1024,
                                patch_size=32, random_state=0).fit(x)


def test_super_resolver_beats_bicubic_and_keeps_layout(upscaler):
    from deepae.apps.restore import box_downscale

    hi = blocky_images(16, 32, 32, seed=5)
    lo = box_downscale(hi, 2)
    up = upscaler.transform(lo)
    assert up.shape == hi.shape and up.dtype == np.float32
    import tensorflow as tf

    bicubic = np.clip(tf.image.resize(lo, (32, 32), method="bicubic").numpy(), 0, 1)
    assert psnr(hi, up) > psnr(hi, bicubic) + 0.5
    assert upscaler.transform(lo[0, ..., 0]).shape == (32, 32)
    odd = upscaler.transform((lo[0, :7, :13] * 255).astype(np.uint8))
    assert odd.shape == (14, 26, 1) and odd.dtype == np.uint8


def test_super_resolver_tiles_and_saves(tmp_path, upscaler):
    img = smooth_images(1, 70, 45, seed=6)[0]
    tiled = deepae.SuperResolver(**{**upscaler.get_params(), "tile": 16})
    tiled.__dict__.update({k: v for k, v in upscaler.__dict__.items()
                           if k.endswith("_") or k == "_predict"})
    np.testing.assert_allclose(tiled.transform(img), upscaler.transform(img), atol=1e-4)
    again = deepae.load(upscaler.save(tmp_path / "s.deepae"))
    np.testing.assert_allclose(again.transform(img), upscaler.transform(img), atol=1e-6)
    with pytest.raises(ValueError, match="'scale' parameter of SuperResolver"):
        deepae.SuperResolver(scale=3).fit(smooth_images(2, 16, 16))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        upscaler.transform(np.zeros((1, 5), np.float32))


def test_per_channel_applies_a_grayscale_model_to_each_channel(fitted):
    rgb = smooth_images(1, 32, 40, c=3, seed=5)[0]
    fitted.set_params(per_channel=True)
    try:
        out = fitted.transform(rgb)
        each = np.concatenate([fitted.transform(rgb[..., c:c + 1]) for c in range(3)], axis=-1)
    finally:
        fitted.set_params(per_channel=False)
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out, each, atol=1e-6)


@pytest.mark.parametrize("kind", ["denoiser", "x2", "x4"])
def test_pretrained_models_ship_and_work_on_unseen_photos(kind):
    """The shipped models (scripts/train_pretrained.py) load, hold a grayscale and a colour
    network, and restore test photographs (never trained on), grayscale and colour, better
    than the noisy input or bicubic upscaling; all shipped models stay under 50 MB."""
    from importlib.resources import files

    from deepae.apps.restore import box_downscale
    from deepae.baselines import bicubic
    from deepae.datasets import load_photos

    shipped = files("deepae") / "pretrained"
    assert sum(f.stat().st_size for f in shipped.iterdir() if f.name.endswith(".deepae")) < 50e6
    gray = load_photos(["coins"])[0][:128, :128]
    colour = load_photos(["hubble_deep_field"], gray=False)[0][200:328, 200:328]
    model = Denoiser.pretrained() if kind == "denoiser" else \
        deepae.SuperResolver.pretrained(scale=int(kind[1]))
    assert model.n_channels_ == 1 and model.colour_model_.input_shape[-1] == 3
    for clean in (gray, colour):
        if kind == "denoiser":
            noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape)
            noisy = np.round(np.clip(noisy, 0, 1) * 255).astype(np.float32) / 255
            gain = psnr(clean, model.transform(noisy)) - psnr(clean, noisy)
            assert gain > 5, gain
        else:
            scale = int(kind[1])
            small = box_downscale(clean.reshape(clean.shape[:2] + (-1,))[None], scale)[0]
            small = small.reshape(small.shape[:2] + clean.shape[2:])
            bic = np.clip(bicubic(small, clean.shape[:2]), 0, 1)
            gain = psnr(clean, model.transform(small)) - psnr(clean, bic)
            assert gain > 0.5, gain
    # the colour network is the one colour images take (not each channel in turn)
    rgb = (colour * 255).astype(np.uint8)[:40, :48]
    out = model.transform(rgb)
    assert out.dtype == np.uint8 and out.shape[2] == 3
    model.colour_model_ = None
    model._build_predict()
    assert np.abs(model.transform(rgb).astype(int) - out).max() > 0
    with pytest.raises(ValueError, match="'scale' parameter of SuperResolver.pretrained"):
        deepae.SuperResolver.pretrained(scale=3)


def test_self_ensemble_keeps_shapes_and_helps(fitted):
    clean = smooth_images(4, 32, 40, seed=9)
    noisy = clean + np.random.default_rng(1).normal(0, 0.1, clean.shape).astype(np.float32)
    plain, ens = fitted.transform(noisy), fitted.transform(noisy, ensemble=True)
    assert ens.shape == plain.shape == clean.shape
    assert psnr(clean, ens) > psnr(clean, plain) - 0.05
    # averaged over all flips and turns, each undone, the result turns with its input
    x = noisy[0]
    for view in (lambda a: np.rot90(a), lambda a: a[::-1], lambda a: np.rot90(a[:, ::-1], 3)):
        np.testing.assert_allclose(fitted.transform(np.ascontiguousarray(view(x)), ensemble=True),
                                   view(fitted.transform(x, ensemble=True)), atol=1e-5)


def test_baselines_and_training_log(capsys):
    from deepae import baselines

    clean = smooth_images(1, 40, 48, c=3, seed=3)[0]
    noisy = clean + np.random.default_rng(2).normal(0, 0.1, clean.shape).astype(np.float32)
    nlm = baselines.nl_means(noisy)
    assert nlm.shape == clean.shape and psnr(clean, np.clip(nlm, 0, 1)) > psnr(
        clean, np.clip(noisy, 0, 1)) + 3
    big = baselines.bicubic(clean[..., 0], (80, 96))
    assert big.shape == (80, 96) and big.dtype == np.float32
    # not a terminal: Keras's log lines, one per epoch with the loss (no bar redrawn)
    Denoiser(epochs=2, patches_per_epoch=32, filters=(8, 16), patch_size=16,
             verbose=1).fit(smooth_images(2, 16, 16))
    out = capsys.readouterr().out
    assert len([ln for ln in out.splitlines() if ln.startswith("Epoch ")]) == 2
    assert len([ln for ln in out.splitlines() if "loss:" in ln]) == 2 and "\r" not in out


def test_bm3d_baseline():
    """`baselines.bm3d`, the baseline of `deepae denoise evaluate` and the benchmark, is the
    bm3d package's BM3D told the true sigma in [0, 1] units, run channel by channel; and it
    is the stronger classic method here: above NL-means, which is above the noisy input."""
    import bm3d  # in the dev extra: this comparison runs, it does not skip

    from deepae import baselines

    clean = smooth_images(1, 32, 32, seed=4)[0, ..., 0]
    noisy = clean + np.random.default_rng(2).normal(0, 0.1, clean.shape).astype(np.float32)
    out = baselines.bm3d(noisy, 0.1)
    assert out.shape == clean.shape and out.dtype == np.float32
    scores = {name: psnr(clean, np.clip(im, 0, 1)) for name, im in
              (("noisy", noisy), ("NL-means", baselines.nl_means(noisy)), ("BM3D", out))}
    assert scores["BM3D"] > scores["NL-means"] > scores["noisy"], scores
    rgb = np.clip(smooth_images(1, 24, 24, c=3, seed=5)[0]
                  + np.random.default_rng(3).normal(0, 0.1, (24, 24, 3)), 0, 1).astype(np.float32)
    each = np.stack([bm3d.bm3d(rgb[..., c], 0.1) for c in range(3)], axis=-1)
    np.testing.assert_allclose(baselines.bm3d(rgb, 0.1), each, rtol=0, atol=1e-5)


def test_colour_models_restore_channels_together():
    rgb = smooth_images(16, 32, 32, c=3, seed=6)
    sr = deepae.SuperResolver(scale=2, filters=(8, 16), epochs=1, patches_per_epoch=64,
                              patch_size=16, random_state=0).fit(rgb)
    assert sr.n_channels_ == 3
    assert sr.transform(rgb[0]).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="3-channel images"):
        sr.transform(rgb[0, ..., 0])


# -- colour pairs, clipped noise, warm starts (issue 22) -------------------------------------
@pytest.fixture(scope="module")
def pair():
    """A grayscale and a colour Denoiser of the same tiny architecture."""
    common = dict(sigma=0.1, filters=(8, 16), epochs=2, patches_per_epoch=128,
                  patch_size=16, random_state=0)
    gray = Denoiser(**common).fit(smooth_images(16, 32, 32, seed=11))
    colour = Denoiser(**common).fit(smooth_images(16, 32, 32, c=3, seed=12))
    return gray, colour


def _paired(pair):
    import copy

    gray, colour = pair
    return copy.deepcopy(gray).with_colour(colour)


def test_with_colour_sends_colour_images_to_the_colour_network(pair, tmp_path):
    gray, colour = pair
    both = _paired(pair)
    rgb = smooth_images(2, 40, 52, c=3, seed=13)
    grey = rgb[..., :1]
    np.testing.assert_array_equal(both.transform(rgb), colour.transform(rgb))
    np.testing.assert_array_equal(both.transform(grey), gray.transform(grey))
    # the two networks differ: the check above is not vacuous
    assert np.abs(gray.transform(rgb[..., :1]) - colour.transform(rgb)[..., :1]).max() > 1e-3
    # layout and dtype kept, for colour as for grayscale
    u8 = (rgb[0] * 255).astype(np.uint8)
    out = both.transform(u8)
    assert out.dtype == np.uint8 and out.shape == (40, 52, 3)
    f64 = both.transform(rgb.astype(np.float64))
    assert f64.dtype == np.float64 and f64.shape == rgb.shape
    assert both.transform(grey[0, ..., 0]).shape == (40, 52)
    mixed = both.transform([rgb[0], grey[1, :17, :29]])
    assert [m.shape for m in mixed] == [(40, 52, 3), (17, 29, 1)]
    # saved and loaded as one file, both networks
    loaded = Denoiser.load(both.save(tmp_path / "pair.deepae"))
    np.testing.assert_array_equal(loaded.transform(rgb), both.transform(rgb))
    np.testing.assert_array_equal(loaded.transform(grey), both.transform(grey))
    assert loaded.describe()["colour_network"]["parameters"] == colour.model_.count_params()


def test_colour_network_tiles_like_untiled(pair):
    both = _paired(pair)
    img = smooth_images(1, 130, 90, c=3, seed=14)[0]
    whole = both.transform(img)
    both.set_params(tile=32)
    assert both.receptive_radius_ < 32  # several tiles with a halo each
    np.testing.assert_allclose(both.transform(img), whole, atol=1e-5)
    both.set_params(tile=512)


def test_with_colour_refuses_what_does_not_pair(pair):
    gray, colour = pair
    import copy

    g = copy.deepcopy(gray)
    with pytest.raises(TypeError, match="fitted Denoiser; received SuperResolver"):
        g.with_colour(deepae.SuperResolver())
    with pytest.raises(ValueError, match="received 1 and 1 channel"):
        g.with_colour(gray)
    other = Denoiser(sigma=0.1, filters=(8, 8), epochs=1, patches_per_epoch=32,
                     patch_size=16).fit(smooth_images(4, 32, 32, c=3))
    with pytest.raises(ValueError, match="same architecture"):
        g.with_colour(other)
    assert not hasattr(g, "colour_model_")
    # fitting again drops the colour network (it belonged to other weights)
    both = _paired(pair)
    both.set_params(epochs=1, patches_per_epoch=16)
    both.fit(smooth_images(4, 32, 32))
    assert not hasattr(both, "colour_model_")
    with pytest.raises(ValueError, match="takes 1-channel images"):
        both.transform(smooth_images(1, 32, 32, c=3))


def test_forged_colour_networks_are_refused(pair, tmp_path):
    from deepae.exceptions import ArtifactError
    from deepae.persistence import save_artifact

    gray, colour = pair
    both = _paired(pair)
    meta, models, _ = both._artifact_parts()
    params = both._saved_params()
    cases = {
        # a grayscale network where the colour one belongs
        "gray_as_colour": ({**meta}, {"model": gray.model_, "colour_model": gray.model_}),
        # a colour estimator with a second colour network
        "colour_pair": ({**meta, "n_channels": 3}, {"model": colour.model_,
                                                    "colour_model": colour.model_}),
        "no_model": ({**meta}, {"colour_model": colour.model_}),
        "history_list": ({**meta, "colour": {**meta["colour"], "history": [1, 2]}}, models),
        "history_values": ({**meta, "colour": {**meta["colour"], "history": {"loss": "ab"}}},
                           models),
        "no_record": ({k: v for k, v in meta.items() if k != "colour"}, models),
        "record_list": ({**meta, "colour": [1]}, models),
        "no_patch_size": ({**meta, "colour": {"history": {}}}, models),
    }
    expected = {"gray_as_colour": "colour network.*not the one", "colour_pair":
                "takes 3 channels and holds a colour network", "no_model": "no network called",
                "history_list": "history is malformed", "history_values":
                "history is malformed", "no_record": "without its training record",
                "record_list": "without its training record", "no_patch_size": "patch_size"}
    for name, (md, ms) in cases.items():
        path = save_artifact(tmp_path / f"{name}.deepae", "Denoiser", {"params": params, **md},
                             models=ms)
        with pytest.raises(ArtifactError, match=expected[name]):
            Denoiser.load(path)
    # the genuine file loads (the cases above are forged from it)
    good = save_artifact(tmp_path / "good.deepae", "Denoiser", {"params": params, **meta},
                         models=models)
    assert Denoiser.load(good).colour_training_["patch_size"] == 16


@pytest.mark.parametrize("per_channel", [False, True])
def test_exported_pair_serves_both(pair, tmp_path, per_channel):
    import tensorflow as tf

    both = _paired(pair).set_params(per_channel=per_channel)
    both.export(tmp_path / "m")
    serve = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    rgb = smooth_images(2, 36, 44, c=3, seed=15)
    np.testing.assert_allclose(serve(x=tf.constant(rgb))["image"].numpy(),
                               both.transform(rgb), atol=1e-5)
    np.testing.assert_allclose(serve(x=tf.constant(rgb[..., :1]))["image"].numpy(),
                               both.transform(rgb[..., :1]), atol=1e-5)
    two = np.concatenate([rgb, rgb[..., :1]], axis=-1)[..., 2:]  # 2 channels
    if per_channel:  # each channel through the grayscale network (transform takes 1 or 3)
        each = np.concatenate([both.transform(two[..., i:i + 1]) for i in range(2)], axis=-1)
        np.testing.assert_allclose(serve(x=tf.constant(two))["image"].numpy(), each,
                                   atol=1e-5)
    else:
        with pytest.raises(ValueError, match=r"\(h, w, 1\) or \(h, w, 3\); received \(36"):
            both.transform(two)
        with pytest.raises(tf.errors.InvalidArgumentError, match="1 or 3 channels"):
            serve(x=tf.constant(two))


def test_pair_exports_one_network_per_onnx_or_litert_file(pair, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    from deepae.exporting import ExportError
    from test_export import run_litert, run_onnx

    both = _paired(pair)
    rgb = smooth_images(1, 32, 40, c=3, seed=19)
    for fmt, suffix, run in (("onnx", ".onnx", run_onnx), ("litert", ".tflite", run_litert)):
        with pytest.raises(ExportError, match="channels=1 or channels=3"):
            both.export(tmp_path / f"both{suffix}", format=fmt)
        for c, x in ((3, rgb), (1, rgb[..., :1])):
            path = both.export(tmp_path / f"c{c}{suffix}", format=fmt, channels=c)
            np.testing.assert_allclose(run(path, {"x": x})["image"], both.transform(x),
                                       atol=1e-5)
    with pytest.raises(ValueError, match=r"exports channels in \(1, 3\).*received channels=2"):
        both.export(tmp_path / "x", channels=2)
    with pytest.raises(ValueError, match=r"exports channels in \(1,\)"):
        pair[0].export(tmp_path / "y", channels=3)


def test_pair_with_per_channel_sends_colour_to_the_colour_network(pair):
    gray, colour = pair
    both = _paired(pair).set_params(per_channel=True)
    rgb = smooth_images(1, 32, 40, c=3, seed=20)[0]
    np.testing.assert_array_equal(both.transform(rgb), colour.transform(rgb))
    np.testing.assert_allclose(both.transform(rgb[..., :1]), gray.transform(rgb[..., :1]),
                               atol=1e-6)
    both.colour_model_ = None  # without it: each channel through the grayscale network
    both._build_predict()
    each = np.concatenate([gray.transform(rgb[..., i:i + 1]) for i in range(3)], axis=-1)
    np.testing.assert_allclose(both.transform(rgb), each, atol=1e-6)
    assert np.abs(each - colour.transform(rgb)).max() > 1e-3


def test_a_refused_warm_start_leaves_the_pair_as_it_was(pair):
    both = _paired(pair)
    rgb = smooth_images(1, 32, 40, c=3, seed=21)[0]
    before = both.transform(rgb)
    both.set_params(warm_start=True, filters=(8, 8), patch_size=32)
    with pytest.raises(ValueError, match="different one"):
        both.fit(smooth_images(4, 32, 32))
    assert both.patch_size_ == 16 and both.colour_model_ is not None
    np.testing.assert_array_equal(both.transform(rgb), before)
    sr = deepae.SuperResolver(scale=2, filters=(8, 16), epochs=1, patches_per_epoch=16,
                              patch_size=16).fit(smooth_images(4, 32, 32))
    sr.set_params(warm_start=True, scale=4)  # the same weights, another network
    with pytest.raises(ValueError, match="different one"):
        sr.fit(smooth_images(4, 32, 32))
    assert sr.model_.name == "super_resolver_x2" and len(sr.history_["loss"]) == 1


def test_clipped_noise_is_a_saved_photograph():
    import tensorflow as tf

    from deepae.apps.restore import _corrupt

    clean = tf.constant(smooth_images(400, 8, 8, seed=16))
    seed = tf.constant([3, 4], tf.int64)
    full, _ = _corrupt(tf, clean, "gaussian", 0.3, 0.3, seed, 1.0)
    full = full.numpy()
    assert full.min() >= 0 and full.max() <= 1
    np.testing.assert_allclose(full * 255, np.round(full * 255), atol=1e-3)
    plain, _ = _corrupt(tf, clean, "gaussian", 0.3, 0.3, seed)
    plain = plain.numpy()
    assert plain.min() < -0.5 and plain.max() > 1.5  # unclipped
    # the same draws: clipping and rounding is all that differs
    np.testing.assert_allclose(full, np.round(np.clip(plain, 0, 1) * 255) / 255, atol=1e-6)
    half, _ = _corrupt(tf, clean, "gaussian", 0.3, 0.3, seed, 0.5)
    outside = (half.numpy() < 0).any(axis=(1, 2, 3)) | (half.numpy() > 1).any(axis=(1, 2, 3))
    assert 0.35 < 1 - outside.mean() < 0.65  # about half clipped, drawn per image
    with pytest.raises(deepae.exceptions.InvalidParameterError, match="'clipped'"):
        Denoiser(clipped=1.5).fit(smooth_images(2, 16, 16))
    card = Denoiser(clipped=0.75, filters=(8, 16), epochs=1, patches_per_epoch=16,
                    patch_size=16).fit(smooth_images(2, 16, 16)).describe()
    assert card["noise_model"]["clipped"] == 0.75


def test_warm_start_continues_the_fitted_network():
    x = smooth_images(8, 32, 32, seed=17)
    den = Denoiser(sigma=0.1, filters=(8, 16), epochs=1, patches_per_epoch=64, patch_size=16,
                   random_state=0).fit(x)
    before = [w.copy() for w in den.model_.get_weights()]
    den.set_params(warm_start=True, learning_rate=1e-12, random_state=1)
    den.fit(x)
    assert len(den.history_["loss"]) == 2
    for a, b in zip(before, den.model_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    den.set_params(warm_start=False)  # a new network: other weights
    den.fit(x)
    assert len(den.history_["loss"]) == 1
    assert max(np.abs(a - b).max() for a, b in zip(before, den.model_.get_weights(),
                                                   strict=True)) > 1e-3
    den.set_params(warm_start=True, filters=(8, 8))
    with pytest.raises(ValueError, match="different one"):
        den.fit(x)
    den.set_params(filters=(8, 16))
    with pytest.raises(ValueError, match="of 1-channel images; received 3"):
        den.fit(smooth_images(4, 32, 32, c=3))


def test_cbm3d_baseline():
    import bm3d

    from deepae import baselines

    clean = smooth_images(1, 32, 32, c=3, seed=18)[0]
    noisy = clean + np.random.default_rng(5).normal(0, 0.1, clean.shape).astype(np.float32)
    out = baselines.cbm3d(noisy, 0.1)
    assert out.shape == clean.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, bm3d.bm3d_rgb(noisy, 0.1), atol=1e-6)
    assert psnr(clean, np.clip(out, 0, 1)) > psnr(clean, np.clip(noisy, 0, 1)) + 3
    with pytest.raises(ValueError, match=r"\(h, w, 3\) colour image; received shape \(32, 32\)"):
        baselines.cbm3d(noisy[..., 0], 0.1)


def test_serving_spec_of_a_pair_takes_colour(pair):
    from deepae.serve.models import DenoiserModel

    gray, _ = pair
    both = _paired(pair)
    assert DenoiserModel("d", gray).inputs[0].shape == (-1, -1, -1, 1)
    assert DenoiserModel("d", both).inputs[0].shape == (-1, -1, -1, -1)


# -- the training objective: loss="mse" or "psnr" ---------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "psnr"])
def test_training_loss_is_the_documented_objective(loss, tmp_path):
    """Every patch of a flat image is the same and sigma=0 leaves it clean, so with a
    learning rate too small to move the weights the recorded loss is the objective of the
    network on that one patch: its MSE, or 10 log10(MSE + 1e-5) with loss="psnr"."""
    from deepae import SuperResolver

    flat = np.full((2, 32, 32), 0.5, np.float32)
    d = Denoiser(sigma=0.0, filters=(8, 16), patch_size=32, patches_per_epoch=16, batch_size=8,
                 epochs=1, learning_rate=1e-12, loss=loss, random_state=0).fit(flat)
    mse = float(np.mean((d.model_(flat[:1, :, :, None]).numpy() - 0.5) ** 2))
    assert mse > 1e-4  # the untrained network changes the patch: the two objectives differ
    expected = 10 * np.log10(mse + 1e-5) if loss == "psnr" else mse
    assert d.history_["loss"][0] == pytest.approx(expected, rel=1e-3)
    assert Denoiser.load(d.save(tmp_path / "d.deepae")).loss == loss
    # the upscaler: a flat patch box-averaged down is flat, so the same holds
    sr = SuperResolver(scale=2, filters=(8, 16), patch_size=32, patches_per_epoch=16,
                       batch_size=8, epochs=1, learning_rate=1e-12, loss=loss,
                       random_state=0).fit(flat)
    mse = float(np.mean((sr.model_(flat[:1, :16, :16, None]).numpy() - 0.5) ** 2))
    expected = 10 * np.log10(mse + 1e-5) if loss == "psnr" else mse
    assert sr.history_["loss"][0] == pytest.approx(expected, rel=1e-3)


def test_loss_must_be_mse_or_psnr():
    with pytest.raises(deepae.exceptions.InvalidParameterError,
                       match="'loss' parameter of Denoiser must be a str among .*'psnr'.*"
                             "Got 'l1'"):
        Denoiser(loss="l1").fit(smooth_images(2, 16, 16))


def test_training_script_splits_the_shipped_pairs_and_joins_them_back(tmp_path):
    """`train_pretrained.py --from-shipped` takes each network out of the pairs that ship
    (its own training record with it), and `--combine` writes pairs that restore exactly as
    the shipped ones: a new machine can continue the training with --more."""
    script = _training_script()
    work, out = tmp_path / "work", tmp_path / "out"
    assert script.main(["--from-shipped", "--combine", "--work", str(work),
                        "--out", str(out)]) == 0
    shipped = Denoiser.pretrained()
    gray, colour = Denoiser.load(work / "denoiser.deepae"), Denoiser.load(
        work / "denoiser_rgb.deepae")
    assert (gray.n_channels_, colour.n_channels_) == (1, 3)
    assert gray.history_ == shipped.history_
    assert colour.history_ == shipped.colour_training_["history"]
    again = Denoiser.load(out / "denoiser.deepae")
    image = smooth_images(1, 40, 48, c=3, seed=5)[0]
    for x in (image, image[..., 0]):
        np.testing.assert_array_equal(again.transform(x), shipped.transform(x))
    np.testing.assert_array_equal(colour.transform(image), shipped.transform(image))
    assert {f.name for f in out.iterdir()} == {"denoiser.deepae", "super_resolver_x2.deepae",
                                               "super_resolver_x4.deepae"}
    for scale in (2, 4):  # each colour network keeps its design (joint or shared)
        shipped = deepae.SuperResolver.pretrained(scale=scale)
        alone = deepae.SuperResolver.load(work / f"x{scale}_rgb.deepae")
        assert alone.describe()["design"] == shipped.describe()["colour_network"]["design"]
        np.testing.assert_array_equal(alone.transform(image[:20, :24]),
                                      shipped.transform(image[:20, :24]))


def _training_script():
    import sys
    from pathlib import Path

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    sys.path.insert(0, scripts)
    try:
        import train_pretrained
    finally:
        sys.path.remove(scripts)
    return train_pretrained


def test_training_script_colour_mixes_reorder_and_invert_channels():
    """`--colour-mix`: each colour photograph gets one copy whose channels are the
    photograph's, reordered and/or some inverted, never equal to the photograph (a gray
    one included), the same for a seed."""
    script = _training_script()
    rng = np.random.default_rng(3)
    photos = [rng.random((4, 3, 3)).astype(np.float32) for _ in range(300)]
    gray = rng.random((5, 4, 1)).astype(np.float32).repeat(3, axis=-1)  # R = G = B
    photos += [gray] * 40
    mixes = script.colour_mixes(photos)
    assert len(mixes) == len(photos)
    inverted = reordered = 0
    for p, q in zip(photos[:300], mixes, strict=False):
        assert q.shape == p.shape and q.dtype == p.dtype
        assert not np.array_equal(q, p)
        found = []
        for c in range(3):  # each channel is one of p's, as it is or inverted
            src = [(j, inv) for j in range(3) for inv in (False, True)
                   if np.array_equal(q[..., c], 1 - p[..., j] if inv else p[..., j])]
            assert len(src) == 1, src
            found.append(src[0])
        assert sorted(j for j, _ in found) == [0, 1, 2]
        inverted += any(inv for _, inv in found)
        reordered += [j for j, _ in found] != [0, 1, 2]
    assert 150 < inverted < 300 and 150 < reordered < 300  # both kinds, not always
    for q in mixes[300:]:
        assert not np.array_equal(q, gray)
    assert all(np.array_equal(a, b) for a, b in zip(mixes, script.colour_mixes(photos),
                                                     strict=True))
    with pytest.raises(ValueError, match="photograph 1 is uniform gray 0.5"):
        script.colour_mixes([gray, np.full((2, 2, 3), 0.5, np.float32)])


def test_training_script_mixes_only_the_colour_jobs_photographs(monkeypatch):
    script = _training_script()
    import deepae.datasets as ds

    colour = [np.full((8, 8, 3), 0.25, np.float32), np.full((8, 8, 3), 0.75, np.float32)]
    monkeypatch.setattr(ds, "load_photos", lambda names, gray=True: (
        [c.mean(-1) for c in colour] if gray else list(colour)))
    monkeypatch.setattr(ds, "load_wallpapers", lambda names, gray=False: [])
    plain, mixed = script.training_photos(True), script.training_photos(True, mix=True)
    assert len(plain) == 2 and len(mixed) == 4
    for got, want in zip(mixed, plain + script.colour_mixes(plain), strict=True):
        np.testing.assert_array_equal(got, want)
    gray = script.training_photos(False, mix=True)  # grayscale jobs: never mixed
    assert [g.shape for g in gray] == [(8, 8, 1)] * 2


def test_training_script_passes_its_options_to_the_jobs(tmp_path, monkeypatch):
    script = _training_script()
    calls = []
    monkeypatch.setattr(script, "run_job", lambda *a: calls.append(a))
    monkeypatch.setattr(script, "combine", lambda work, out: None)
    work = tmp_path / "w"
    script.main(["--only", "x2,x2_rgb", "--more", "5", "--more-lr", "1e-3", "--colour-mix",
                 "--loss", "psnr", "--work", str(work)])
    assert calls == [("x2", work, 1.0, 5, "psnr", None, True, 1e-3),
                     ("x2_rgb", work, 1.0, 5, "psnr", None, True, 1e-3)]
    calls.clear()
    script.main(["--only", "x4_rgb", "--more", "2", "--work", str(work)])
    assert calls == [("x4_rgb", work, 1.0, 2, None, None, False, script.MORE_LR)]


def test_training_script_says_which_options_a_finished_job_does_not_use(tmp_path, capsys):
    script = _training_script()
    (tmp_path / "x2_rgb.deepae").touch()  # finished: not loaded, not trained again
    (tmp_path / "x2.deepae").touch()
    script.run_job("x2_rgb", tmp_path, 1.0, loss="psnr", mix=True)
    script.run_job("x2", tmp_path, 1.0, mix=True)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"x2_rgb: done ({tmp_path / 'x2_rgb.deepae'}); --loss not used; "
                   "--colour-mix not used", f"x2: done ({tmp_path / 'x2.deepae'})"]


@pytest.mark.parametrize("argv, message", [
    (["--more", "1", "--more-lr=0"], "--more-lr takes a positive finite learning rate; got 0.0"),
    (["--more", "1", "--more-lr=-1e-3"], "positive finite learning rate; got -0.001"),
    (["--more", "1", "--more-lr=nan"], "positive finite learning rate; got nan"),
    (["--more", "1", "--more-lr=inf"], "positive finite learning rate; got inf"),
    (["--more-lr", "1e-3"], "rounds; got --more-lr 0.001 with --more 0"),
    (["--more", "2", "--more-lr", "1e-3", "--combine"], "got --more-lr 0.001 with --combine"),
    (["--more", "-2"], "--more takes a number of epochs (0 or more); got -2"),
    (["--only", "x2,bogus"], "--only takes names among"),
    (["--colour-mix", "--only", "x2"], "--colour-mix changes the colour jobs' data; --only x2"),
    (["--colour-mix", "--combine"], "--colour-mix changes the training data; --combine"),
    (["--filters", "32,x"], "--filters takes positive integers"),
])
def test_training_script_refuses_bad_options_before_writing(tmp_path, capsys, argv,
                                                            message):
    """Each bad option is refused with a message naming it, before any folder is made or
    any job trained."""
    script = _training_script()
    with pytest.raises(SystemExit):
        script.main([*argv, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_psnr_loss_averages_each_patch_psnr():
    """Two patches of different errors: the objective is the mean of their 10 log10(MSE +
    1e-5), not the log of the batch's MSE."""
    import tensorflow as tf

    from deepae.apps.restore import patch_loss

    target = np.zeros((2, 4, 4, 1), np.float32)
    restored = target.copy()
    restored[0] += 0.1  # MSE 1e-2
    restored[1] += 0.001  # MSE 1e-6
    mse = float(patch_loss(tf, restored, target, "mse"))
    psnr_loss = float(patch_loss(tf, restored, target, "psnr"))
    assert mse == pytest.approx((1e-2 + 1e-6) / 2, rel=1e-5)
    expected = np.mean(10 * np.log10(np.array([1e-2, 1e-6]) + 1e-5))
    assert psnr_loss == pytest.approx(expected, rel=1e-5)
    assert abs(psnr_loss - 10 * np.log10(mse + 1e-5)) > 10  # not the batch's MSE


def test_warm_start_records_which_loss_each_epoch_used(tmp_path):
    """A warm start may change the loss: `history_["objective"]` says which each epoch
    used (and describe() the last), so the losses in dB and in squared error are not read
    as one curve; the record survives save/load and a further warm start."""
    x = smooth_images(4, 32, 32)
    d = Denoiser(sigma=0.1, filters=(8, 16), patch_size=16, patches_per_epoch=16,
                 batch_size=8, epochs=2, random_state=0).fit(x)
    assert d.history_["objective"] == ["mse", "mse"]
    d.set_params(warm_start=True, loss="psnr", epochs=1).fit(x)
    assert d.history_["objective"] == ["mse", "mse", "psnr"]
    assert len(d.history_["loss"]) == 3 and d.history_["loss"][-1] < 0
    assert d.describe()["training"]["objective"] == "psnr"
    back = Denoiser.load(d.save(tmp_path / "d.deepae"))
    assert back.history_["objective"] == ["mse", "mse", "psnr"]
    back.set_params(loss="mse").fit(x)
    assert back.history_["objective"] == ["mse", "mse", "psnr", "mse"]
    old = {k: v for k, v in back.history_.items() if k != "objective"}  # a file from before
    back.history_ = old
    back.set_params(loss="psnr").fit(x)
    assert back.history_["objective"] == ["mse"] * 4 + ["psnr"]


def test_training_curves_of_a_psnr_loss_are_drawn_linear(tmp_path, monkeypatch):
    """The psnr objective is in dB, below zero: the curves use a linear axis (a log axis
    would draw nothing); a squared error keeps the log axis."""
    pytest.importorskip("matplotlib")
    import deepae.plots as plots

    scales, real_save = [], plots._save

    def save(fig, path, overwrite=True):
        scales.append(fig.axes[0].get_yscale())
        return real_save(fig, path, overwrite)

    monkeypatch.setattr(plots, "_save", save)
    for loss in ([-30.0, -32.5], [0.02, 0.01]):
        path = plots.training_curves({"loss": loss, "objective": ["psnr"] * 2,
                                      "seconds": [1.0, 2.0]}, tmp_path / f"{loss[0]}.png")
        assert path.stat().st_size > 0
    assert scales == ["linear", "log"]


# -- colour_network="shared": one network applied to each channel, the image beside it --------
def test_shared_network_starts_as_the_grayscale_one_on_each_channel():
    from deepae.nn.restoration import shared_from_grayscale

    for kw in (dict(scale=2), dict(noise_level_input=True)):
        gray = restoration_net(1, filters=(4, 8), **kw)
        rng = np.random.default_rng(0)
        for w in gray.weights:  # weights that change the output (the residual starts at 0)
            w.assign(rng.normal(0, 0.2, w.shape))
        shared = shared_from_grayscale(restoration_net(3, filters=(4, 8), shared=True, **kw),
                                       gray)
        x = rng.random((2, 8, 12, 3)).astype(np.float32)
        level = np.full((2, 8, 12, 1), 0.1, np.float32)
        lv = [level] if "noise_level_input" in kw else []
        def run(net, x, lv=lv):
            return net([x, *lv] if lv else x).numpy()

        got = run(shared, x)
        want = np.concatenate([run(gray, x[..., c:c + 1]) for c in range(3)], -1)
        assert got.shape == want.shape == (2,) + got.shape[1:3] + (3,)
        assert np.abs(want[..., 0] - want[..., 1]).max() > 1e-3  # channels differ
        np.testing.assert_allclose(got, want, atol=1e-5)
        # the weights that read the rest of the image start at zero and do read it
        kernel = shared.get_layer("body_enc0_0").kernel
        assert np.all(kernel.numpy()[:, :, 1:4] == 0)
        kernel.assign(kernel.numpy() + 0.3)
        y = run(shared, x)
        x2 = x.copy()
        x2[..., 2] = 0.0  # changing the blue channel changes the red one's result
        assert np.abs(run(shared, x2)[..., 0] - y[..., 0]).max() > 1e-4
    with pytest.raises(ValueError, match="no SplitChannels layer"):
        shared_from_grayscale(restoration_net(3, filters=(4, 8)), gray)
    with pytest.raises(ValueError, match="same layers"):
        shared_from_grayscale(restoration_net(3, filters=(4, 8, 8), shared=True,
                                              noise_level_input=True), gray)


@pytest.fixture(scope="module")
def shared_pair():
    """A grayscale SuperResolver and a colour one with colour_network='shared'."""
    common = dict(filters=(8, 16), epochs=2, patches_per_epoch=128, patch_size=16,
                  random_state=0)
    gray = deepae.SuperResolver(**common).fit(smooth_images(16, 32, 32, seed=21))
    colour = deepae.SuperResolver(**common, colour_network="shared").fit(
        smooth_images(16, 32, 32, c=3, seed=22))
    return gray, colour


def test_shared_colour_network_layout_dtype_tiling_and_file(shared_pair, tmp_path):
    import copy

    gray, colour = shared_pair
    assert colour.model_.get_layer("split_channels") is not None
    assert colour.describe()["design"] == "shared"
    both = copy.deepcopy(gray).with_colour(colour)
    assert both.describe()["colour_network"]["design"] == "shared"
    rgb = smooth_images(2, 40, 52, c=3, seed=23)
    out = both.transform(rgb)
    assert out.shape == (2, 80, 104, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, colour.transform(rgb))
    u8 = both.transform((rgb[0] * 255).astype(np.uint8))
    assert u8.dtype == np.uint8 and u8.shape == (80, 104, 3)
    assert both.transform(rgb.astype(np.float64)).dtype == np.float64
    # tiles give the untiled result
    img = smooth_images(1, 70, 90, c=3, seed=24)[0]
    whole = both.transform(img)
    both.set_params(tile=24)
    assert both.receptive_radius_ < 24
    np.testing.assert_allclose(both.transform(img), whole, atol=1e-5)
    both.set_params(tile=512)
    # one file, both networks; a grayscale estimator of the default design loads it
    loaded = deepae.SuperResolver.load(both.save(tmp_path / "pair.deepae"))
    assert loaded.get_params()["colour_network"] == "joint"
    np.testing.assert_array_equal(loaded.transform(rgb), out)
    alone = deepae.SuperResolver.load(colour.save(tmp_path / "colour.deepae"))
    np.testing.assert_array_equal(alone.transform(rgb), out)
    # a colour network of neither design is refused
    from deepae.persistence import ArtifactError
    forged = copy.deepcopy(gray).with_colour(colour)
    forged.colour_model_ = restoration_net(3, filters=(8, 16), scale=2, shared=True,
                                           noise_level_input=True)
    with pytest.raises(ArtifactError, match="colour network"):
        deepae.SuperResolver.load(forged.save(tmp_path / "forged.deepae"))


def test_colour_network_parameter_checked():
    with pytest.raises(ValueError, match="colour_network.*'split'"):
        deepae.SuperResolver(colour_network="split").fit(smooth_images(2, 16, 16, c=3))


def test_warm_start_names_the_colour_network_and_shared_from_grayscale_checks_its_input():
    from deepae.nn.restoration import shared_from_grayscale

    kw = dict(filters=(4, 8), epochs=1, patches_per_epoch=32, patch_size=16, random_state=0)
    joint = Denoiser(**kw).fit(smooth_images(2, 16, 16, c=3))
    with pytest.raises(ValueError, match="colour_network"):
        joint.set_params(warm_start=True, colour_network="shared").fit(
            smooth_images(2, 16, 16, c=3))
    gray = Denoiser(**kw).fit(smooth_images(2, 16, 16))
    with pytest.raises(ValueError, match="shared_from_grayscale"):
        gray.set_params(warm_start=True).fit(smooth_images(2, 16, 16, c=3))
    x2 = restoration_net(1, filters=(4, 8), scale=2)
    for other in (restoration_net(3, filters=(4, 8), scale=4, shared=True),  # another scale
                  restoration_net(3, filters=(4, 8), shared=True)):  # a denoiser
        with pytest.raises(ValueError, match="scale"):
            shared_from_grayscale(other, x2)
    given = restoration_net(1, filters=(4, 8), noise_level_input=True)
    with pytest.raises(ValueError, match="noise level"):
        shared_from_grayscale(restoration_net(3, filters=(4, 8), shared=True), given)
    with pytest.raises(TypeError, match="Denoiser.*model_"):
        shared_from_grayscale(restoration_net(3, filters=(4, 8), shared=True), gray)


def test_training_script_starts_a_shared_colour_job_as_its_grayscale_network():
    script = _training_script()
    kw = dict(filters=(4, 8), epochs=1, patches_per_epoch=32, patch_size=16, random_state=0)
    gray = deepae.SuperResolver(**kw).fit(smooth_images(2, 16, 16))
    rng = np.random.default_rng(0)
    for w in gray.model_.weights:  # weights that change every channel's result
        w.assign(rng.normal(0, 0.2, w.shape))
    gray._build_predict()
    image = smooth_images(1, 24, 32, c=3, seed=3)[0]
    for design in ("shared", "joint"):
        est = deepae.SuperResolver(**kw, colour_network=design)
        script.colour_start(est, gray)
        est.patch_size_ = 16
        est._build_predict()
        per_channel = gray.set_params(per_channel=True).transform(image)
        gap = np.abs(est.transform(image) - per_channel).max()
        assert est.describe()["design"] == design
        if design == "shared":  # exactly the grayscale network on each channel
            assert gap < 1e-5
        else:  # the luminance's correction on each channel: not the same
            assert gap > 1e-3
