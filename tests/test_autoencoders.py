import doctest

import keras
import numpy as np
import pytest

import deepae
from conftest import small_model
from deepae.apps import autoencoder as autoencoders


def test_dense_shapes_and_mirrored_decoder(table):
    ae = deepae.Autoencoder(hidden_units=(32, 16), latent_dim=3)
    ae.fit(table, epochs=1, verbose=0, random_state=0)
    assert ae.encoder.hidden_units == (32, 16)
    assert ae.decoder.hidden_units == (16, 32)
    assert ae.encode(table).shape == (200, 3)
    assert ae.reconstruct(table).shape == table.shape
    assert ae(table[:5]).shape == (5, 12)  # calling the model reconstructs (model space)


def test_decoder_units_override(table):
    ae = deepae.Autoencoder(hidden_units=(32, 16), latent_dim=3, decoder_units=(8,))
    ae.fit(table, epochs=1, verbose=0)
    assert ae.decoder.hidden_units == (8,)
    assert [w.shape for w in ae.decoder.weights][0] == (3, 8)


@pytest.mark.parametrize("shape", [(8, 8), (9, 7), (6, 6, 3)])
def test_conv_variant_any_size(rng, shape):
    x = rng.integers(0, 256, size=(10, *shape)).astype(np.uint8)
    ae = deepae.Autoencoder(kind="conv", hidden_units=(4, 8), latent_dim=5)
    ae.fit(x, epochs=1, batch_size=4, verbose=0)
    assert ae.reconstruct(x).shape == x.shape
    assert ae.encode(x).shape == (10, 5)
    kinds = [type(layer).__name__ for layer in ae.encoder.hidden]
    assert kinds == ["Conv2D", "Conv2D"]
    assert type(ae.decoder.out).__name__ == "Conv2DTranspose"


@pytest.mark.parametrize("data,expected", [
    (np.array([[0, 255], [128, 3]], np.uint8), "sigmoid"),
    (np.array([[0.0, 0.5], [1.0, 0.2]], np.float32), "sigmoid"),
    (np.array([[-1.0, 0.5], [1.0, -0.2]], np.float32), "tanh"),
    (np.array([[-7.0, 50.0], [3.0, 2.0]], np.float32), "linear"),
])
def test_output_activation_from_data_range(data, expected):
    ae = deepae.Autoencoder(hidden_units=(4,), latent_dim=1)
    ae.fit(data, epochs=1, verbose=0)
    assert ae.output_activation_ == expected
    assert ae.decoder.out.activation.__name__ == expected


def test_user_output_activation_wins():
    ae = deepae.Autoencoder(hidden_units=(4,), latent_dim=1, output_activation="linear")
    ae.fit(np.array([[0, 255], [3, 4]], np.uint8), epochs=1, verbose=0)
    assert ae.output_activation_ == "linear"


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_config_round_trip(images, kind):
    ae = deepae.Autoencoder(kind=kind, hidden_units=(4, 8), latent_dim=3, activation="tanh")
    ae.fit(images, epochs=1, verbose=0)
    config = ae.get_config()
    clone = deepae.Autoencoder.from_config(config)
    clone.build((None, 8, 8))
    assert clone.get_config() == config
    clone.set_weights(ae.get_weights())
    z = images[:4].astype("float32") / 255
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(z)),
                               keras.ops.convert_to_numpy(ae(z)), atol=1e-6)
    for layer in (ae.encoder, ae.decoder):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "elu"])
def test_hidden_activations(table, activation):
    ae = small_model(activation=activation)
    ae.fit(table, epochs=1, verbose=0)
    assert ae.encoder.hidden[0].activation.__name__ == activation


def test_latent_not_smaller_warns(table):
    with pytest.warns(UserWarning, match="nothing is compressed"):
        deepae.Autoencoder(hidden_units=(8,), latent_dim=12).fit(table, epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"latent_dim": 0}, ValueError, r"'latent_dim' parameter .* range \[1, inf\). Got 0"),
    ({"latent_dim": -3}, ValueError, "Got -3"),
    ({"latent_dim": 2.5}, TypeError, "'latent_dim'.*float 2.5"),
    ({"hidden_units": (8, 0)}, ValueError, "got 0 at position 1"),
    ({"hidden_units": (8, -2)}, ValueError, "got -2 at position 1"),
    ({"kind": "lstm"}, ValueError, "'kind' parameter.*Got 'lstm'"),
    ({"activation": "swishy"}, ValueError, "'activation' parameter.*Got 'swishy'"),
    ({"input_shape": (0, 5)}, ValueError, "input_shape.*got 0"),
    ({"kind": "conv", "input_shape": (784,)}, ValueError, "height, width"),
])
def test_bad_model_parameters(table, kwargs, exc, match):
    kwargs = {"hidden_units": (8,), "latent_dim": 2, **kwargs}
    ae = deepae.Autoencoder(**kwargs)
    with pytest.raises(exc, match=match):
        ae.fit(table, epochs=1, verbose=0)


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        deepae.Autoencoder().encode(np.zeros((2, 3)))


def test_docstring_examples():
    result = doctest.testmod(autoencoders, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_dropout_and_input_corruption_act_in_training_only(tmp_path, table):
    import deepae

    ae = deepae.Autoencoder(hidden_units=(16,), latent_dim=3, dropout=0.3, input_noise=0.2,
                            input_mask=0.1)
    ae.fit(table, epochs=2, verbose=0, random_state=0)
    z = ae.to_model_space(table)
    a, b = ae(z, training=False), ae(z, training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(ae(z, training=True)), np.asarray(a))
    ae.save(tmp_path / "m.deepae")
    again = deepae.load(tmp_path / "m.deepae")
    assert again.get_config()["dropout"] == 0.3 and again.get_config()["input_noise"] == 0.2
    np.testing.assert_allclose(again.reconstruct(table), ae.reconstruct(table), rtol=1e-6)
    with pytest.raises(ValueError, match="'dropout' parameter of Encoder must be a float in"):
        deepae.Autoencoder(hidden_units=(4,), latent_dim=2, dropout=1.5).fit(table, epochs=1)
    with pytest.raises(ValueError, match="'input_mask' parameter of Autoencoder"):
        deepae.Autoencoder(hidden_units=(4,), latent_dim=2, input_mask=1.0).fit(table, epochs=1)


def test_tied_weights_share_the_encoder_kernels(tmp_path, table):
    import deepae

    tied = deepae.Autoencoder(hidden_units=(16, 8), latent_dim=3, tied_weights=True)
    tied.fit(table, epochs=3, verbose=0, random_state=0)
    free = deepae.Autoencoder(hidden_units=(16, 8), latent_dim=3)
    free.fit(table, epochs=1, verbose=0, random_state=0)
    kernels = 12 * 16 + 16 * 8 + 8 * 3
    assert free.count_params() - tied.count_params() == kernels
    assert len(tied.decoder.trainable_weights) == 3  # biases only
    tied.save(tmp_path / "t.deepae")
    again = deepae.load(tmp_path / "t.deepae")
    np.testing.assert_allclose(again.reconstruct(table), tied.reconstruct(table), rtol=1e-6)
    assert again.get_config()["tied_weights"] is True
    with pytest.raises(ValueError, match="tied_weights=True in Autoencoder needs kind='dense'"):
        deepae.Autoencoder(hidden_units=(16, 8), latent_dim=3, decoder_units=(4,),
                           tied_weights=True).fit(table, epochs=1)
