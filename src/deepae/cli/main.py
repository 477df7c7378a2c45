"""`deepae` command line: parse, call the Python API, print.

A user error prints one line, ``deepae: error: ...``, to stderr and exits with status 1
(``--debug`` shows the traceback instead); argument-parsing errors exit with 2 (argparse's
convention). One output rule for every command: an existing output file is refused unless
``--overwrite``, an input is never its own output, and every file is written atomically.
A command that prints a result (a table, figures) prints it as one JSON document with
``--json``; ``-`` names standard input or output where a command reads or writes one file
(`_options.STDIO`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deepae.cli._options import (
    UserError,
    add_common_options,
    add_json_option,
    add_run_options,
    is_stdio,
    named_dataset,
    not_stdio,
    output_path,
    read_stdin,
    result,
    result_json,
    result_text,
    results_stream,
    results_to,
    run_parameters,
    save_trained,
    status,
    units,
)

# Quiet TensorFlow's C++ start-up logs before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRAIN_DEFAULTS = {
    "kind": "dense", "hidden_units": "256,128", "latent_dim": 32, "decoder_units": None,
    "activation": "relu", "latent_activation": "linear", "output_activation": "auto",
    "preprocessing": "auto", "epochs": 10, "batch_size": 256, "loss": "mse",
    "optimizer": "adam", "learning_rate": None, "momentum": 0.9, "validation_split": 0.0,
    "early_stopping": None, "reduce_lr_on_plateau": None, "seed": None,
    "checkpoint_dir": None, "key": None, "split": "train", "strategy": None, "stream": None,
}


def _load_config(path) -> dict:
    not_stdio(path, "--config", "name a .toml or .yaml file")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} not found")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {str(path)!r} is not valid TOML: {e}") from e
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise UserError('YAML config files need PyYAML: pip install "deepae[config]"') from e
        try:
            cfg = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise UserError(f"config file {str(path)!r} is not valid YAML: {e}") from e
    else:
        raise UserError(f"config file must end in .toml, .yaml or .yml; received {str(path)!r}")
    if not isinstance(cfg, dict):
        raise UserError(f"config file {str(path)!r} must hold a table of options")
    cfg = {k.replace("-", "_"): v for k, v in cfg.items()}
    unknown = sorted(set(cfg) - set(TRAIN_DEFAULTS))
    if unknown:
        raise UserError(f"config file {str(path)!r} has unknown option(s) {unknown}; "
                        f"known: {sorted(TRAIN_DEFAULTS)}")
    return cfg


# what `-` may hold for the commands that read an array: told apart by their first bytes
STDIN_DATA = "data (.npy, .npz, Parquet, or CSV with a header row)"


def _read_array(source, key=None):
    """An array from a file, or from standard input (`-`, see `STDIN_DATA`)."""
    from deepae.data.io import read_data, read_data_bytes

    if is_stdio(source):
        return read_data_bytes(read_stdin(STDIN_DATA), key=key)
    return read_data(source, key=key)


def _read_source(source, key=None, split="train"):
    named = named_dataset(source)
    if named is not None:
        (x_train, _), (x_test, _) = named
        return x_train if split == "train" else x_test
    return _read_array(source, key=key)


def _write_array(path, arr, overwrite, column: str):
    """`arr` to a .npy or .csv file, or as CSV to standard output (`path` None). CSV has a
    header row, `column`_0, `column`_1, ..., as every CSV reader of deepae expects: `deepae
    encode m.deepae - -o -` reads what `reconstruct -o -` writes, every row of it."""
    import io

    import numpy as np

    from deepae.fileio import atomic_write

    buf = io.BytesIO()
    if path is not None and Path(path).suffix == ".npy":
        np.save(buf, arr)
    elif path is None or Path(path).suffix == ".csv":
        flat = arr.reshape(len(arr), -1)
        np.savetxt(buf, flat, delimiter=",", fmt="%.6g", comments="",
                   header=",".join(f"{column}_{j}" for j in range(flat.shape[1])))
    else:
        raise UserError(f"output must end in .npy or .csv; received {str(path)!r}")
    if path is None:
        result_text(buf.getvalue().decode())  # flushed: a closed pipe stops the command here
    else:
        atomic_write(path, buf.getvalue(), overwrite=overwrite)


def _check_array_output(args, path, *inputs) -> Path | None:
    """The .npy or .csv file to write, or None for CSV on standard output (``-o -``)."""
    path = output_path(args, path, *inputs, stdout=True)
    if path is not None and path.suffix not in (".npy", ".csv"):
        raise UserError(f"output must end in .npy or .csv (or - for CSV on standard output); "
                        f"received {str(path)!r}")
    return path


# -- commands ------------------------------------------------------------------------------
def cmd_demo(args):
    from deepae.experiments import format_table, reference_experiment

    output_path(args, args.out)
    res = reference_experiment(epochs=args.epochs, latent_dim=args.latent_dim,
                               random_state=args.seed, picture=args.out,
                               verbose=2 if args.quiet else "auto")
    ratio = res["rows"][0]["mse_per_feature"] / res["rows"][1]["mse_per_feature"]
    if args.json:
        result_json({"data": "MNIST test set", "epochs": res["epochs"],
                     "latent_dim": args.latent_dim, "rows": res["rows"],
                     "error_ratio_to_pca": ratio, "picture": res["picture"]})
        return 0
    result()
    result(f"MNIST test set, {res['epochs']} epochs: reconstruction error at code size "
          f"{args.latent_dim}")
    result(format_table(res["rows"]))
    result(f"\nThe autoencoder's error is {ratio:.2f} x PCA's. Picture: {res['picture']}")
    return 0


def cmd_train(args):
    import deepae

    cfg = dict(TRAIN_DEFAULTS)
    if args.config:
        cfg.update(_load_config(args.config))
    for k in TRAIN_DEFAULTS:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    if cfg["stream"]:
        not_stdio(args.source, "SOURCE with --stream", "streamed data is read from named "
                  "files, in blocks")
    out = output_path(args, args.output, args.source, args.config)
    if args.curves:
        output_path(args, args.curves, args.source, args.config, out)
    run = run_parameters(args, out, args.source, checkpoint_dir=cfg["checkpoint_dir"])
    ckpt = run["checkpoint_dir"]
    if cfg["stream"]:
        from deepae.data.shards import open_shards

        x = open_shards(args.source)
    else:
        x = _read_source(args.source, key=cfg["key"], split=cfg["split"])
    model = deepae.Autoencoder(kind=cfg["kind"], hidden_units=units(cfg["hidden_units"]),
                               latent_dim=cfg["latent_dim"],
                               decoder_units=units(cfg["decoder_units"]),
                               activation=cfg["activation"],
                               latent_activation=cfg["latent_activation"],
                               output_activation=cfg["output_activation"],
                               preprocessing=cfg["preprocessing"])
    model.fit(x, epochs=cfg["epochs"], batch_size=cfg["batch_size"], loss=cfg["loss"],
              optimizer=cfg["optimizer"], learning_rate=cfg["learning_rate"],
              momentum=cfg["momentum"], validation_split=cfg["validation_split"],
              early_stopping=cfg["early_stopping"],
              reduce_lr_on_plateau=cfg["reduce_lr_on_plateau"], checkpoint_dir=ckpt,
              resume=args.resume, keep_checkpoint=True, random_state=cfg["seed"],
              callbacks=run["callbacks"],
              verbose=2 if args.quiet else "auto", strategy=cfg["strategy"])
    from deepae.distribute import is_chief

    if cfg["strategy"] != "multi-worker" or is_chief():
        save_trained(model, args, out, ckpt)  # the checkpoint goes only once this succeeds
    s = model.training_summary_
    status(f"saved {out} ({s['epochs_run']} epochs, final "
          + ", ".join(f"{k}={v:.5g}" for k, v in s["final"].items()) + ")")
    if args.curves:
        from deepae.plots import training_curves

        curves = training_curves(model.history_, args.curves, overwrite=args.overwrite)
        status(f"training curves: {curves}")
    return 0


MODEL_FILE = "a model is read from a file that deepae can check before it loads it; name the file"


def _load_model(path, *, with_owner=False):
    """The `Autoencoder` inside any saved deepae model (and, if asked, what holds it)."""
    import deepae

    not_stdio(path, "MODEL", MODEL_FILE)
    obj = deepae.load(path)
    model = getattr(obj, "autoencoder_", obj)
    return (model, obj) if with_owner else model


def _shown_output(path) -> str:
    return "standard output" if path is None else str(path)


def cmd_encode(args):
    out = _check_array_output(args, args.output, args.model, args.source)
    model = _load_model(args.model)
    codes = model.encode(_read_source(args.source, key=args.key, split=args.split))
    _write_array(out, codes, args.overwrite, "code")
    status(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {_shown_output(out)}")
    return 0


def cmd_reconstruct(args):
    out = output_path(args, args.output, args.model, args.source, stdout=True)
    if out is None or out.suffix != ".png":
        _check_array_output(args, out, args.model, args.source)
    model = _load_model(args.model)
    x = _read_source(args.source, key=args.key, split=args.split)
    if out is not None and out.suffix == ".png":
        from deepae.plots import reconstruction_grid

        n = min(args.n, len(x))
        recon = model.reconstruct(x[:n])
        reconstruction_grid(x[:n], recon, out, n=n, overwrite=args.overwrite)
        status(f"wrote originals beside reconstructions of {n} samples to {out}")
    else:
        recon = model.reconstruct(x)
        _write_array(out, recon, args.overwrite, "x")
        status(f"wrote {len(recon)} reconstructions to {_shown_output(out)}")
    return 0


def _shown(value) -> str:
    """One value of a description, on one line."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def cmd_info(args):
    import deepae

    not_stdio(args.model, "MODEL", MODEL_FILE)
    info = deepae.load(args.model).describe()
    if args.json:
        result_json(info)
        return 0
    for key, value in info.items():
        result(f"{key + ':':<26} {_shown(value)}")
    return 0


def cmd_export(args):
    import deepae
    from deepae.exporting import FORMATS

    not_stdio(args.model, "MODEL", MODEL_FILE)
    not_stdio(args.out, "OUT", "name a folder (saved_model) or a file")
    if args.format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}; received "
                        f"{args.format!r}")
    if Path(args.model).resolve().is_relative_to(Path(args.out).resolve()):
        raise UserError(f"OUT {args.out!r} is the model file itself or a folder that holds it; "
                        "write the export elsewhere")
    est = deepae.load(args.model)
    if not hasattr(est, "export"):
        raise UserError(f"a {type(est).__name__} has no inference graph to export (the "
                        "exportable models: Autoencoder, AutoencoderReducer, AnomalyDetector, "
                        "SemanticHasher, Denoiser, SuperResolver)")
    extra = {}
    if args.channels is not None:
        if type(est).__name__ not in ("Denoiser", "SuperResolver"):
            raise UserError(f"--channels picks a restorer's network; a {type(est).__name__} "
                            "has none to pick")
        extra["channels"] = args.channels
    path = est.export(args.out, format=args.format, overwrite=args.overwrite, **extra)
    if args.json:
        result_json({"model": str(args.model), "estimator": type(est).__name__,
                     "format": args.format, "path": str(path)})
    else:
        status(f"exported the {type(est).__name__} to {path} ({args.format})")
    return 0


def _labelled_source(source, test, labels):
    """(x_train, x_test, labels_test) from a data set name, or from files."""
    import numpy as np

    from deepae.data.io import read_data

    named = named_dataset(source)
    if named is not None:
        (x_train, _), (x_test, y_test) = named
        return x_train, x_test, y_test
    not_stdio(test, "--test", "standard input can hold only SOURCE")
    not_stdio(labels, "--labels", "standard input can hold only SOURCE")
    x = _read_array(source)
    if test:
        x_test = read_data(test)
    else:  # hold out a random fifth
        perm = np.random.default_rng(0).permutation(len(x))
        cut = max(1, len(x) // 5)
        x, x_test = x[perm[cut:]], x[perm[:cut]]
    y = np.load(labels, allow_pickle=False) if labels else None
    return x, x_test, y


def _reduce_table(rows, n_components, n_train, n_test):
    result(f"test reconstruction error at code size {n_components} "
           f"({n_train} training and {n_test} test samples; SE/sample: squared error "
           "summed over the features in [0, 1])")
    head = (f"{'model':<12} {'code':>5} {'MSE/feature':>12} {'SE/sample':>10} "
            f"{'fit s':>8} {'transform s':>12}")
    result(head)
    result("-" * len(head))
    for r in rows:
        result(f"{r['model']:<12} {r['code_size']:>5} {r['mse_per_feature']:>12.5f} "
               f"{r['se_per_sample']:>10.3f} {r['fit_seconds']:>8.1f} "
               f"{r['transform_seconds']:>12.4f}")


def cmd_reduce(args):
    import deepae
    from deepae.apps.reduce import reduction_plots

    inputs = (args.source, args.test, args.labels)
    if args.output:
        output_path(args, args.output, *inputs)
    if args.plots:
        for name in ("error_vs_code_size.png", "embedding_2d.png"):
            output_path(args, Path(args.plots) / name, *inputs)
    x_train, x_test, y_test = _labelled_source(args.source, args.test, args.labels)
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    params = {"epochs": args.epochs, "batch_size": args.batch_size,
              "hidden_units": units(args.hidden_units), "random_state": args.seed,
              "verbose": 0 if args.quiet else 2}
    res = deepae.compare_with_pca(x_train, x_test, args.n_components, **params)
    if args.json:
        result_json({"n_components": args.n_components, "n_train": len(x_train),
                     "n_test": len(x_test), "rows": res["rows"]})
    else:
        _reduce_table(res["rows"], args.n_components, len(x_train), len(x_test))
    if args.output:
        res["models"]["autoencoder"].save(args.output, overwrite=args.overwrite)
        status(f"saved the reducer to {args.output}")
    if args.plots:
        paths = reduction_plots(x_train, x_test, args.plots, labels_test=y_test,
                                fitted={args.n_components: res["models"]["autoencoder"]},
                                overwrite=args.overwrite, **params)
        status("plots: " + ", ".join(str(p) for p in paths))
    return 0


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from deepae._version import __version__
    from deepae.cli.compress import add_compress_parsers
    from deepae.cli.detect import add_detect_parser
    from deepae.cli.index import add_index_parser
    from deepae.cli.restore import add_restore_parsers
    from deepae.cli.serve import add_serve_parser

    p = argparse.ArgumentParser(
        prog="deepae", description="Deep autoencoders: train, encode, reconstruct, inspect.")
    p.add_argument("--version", action="version", version=f"deepae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_demo_parser, _add_train_parser, _add_encode_parsers, _add_reduce_parser,
                add_detect_parser, add_restore_parsers, add_compress_parsers, add_index_parser,
                _add_info_parser, _add_export_parser, add_serve_parser):
        add(sub)
    return p


def _add_demo_parser(sub):
    d = sub.add_parser("demo", help="train the reference autoencoder on MNIST, compare with PCA",
                       description="The reference experiment: MNIST; encoder with two layers "
                       "(hidden + code), decoder with one hidden and the output layer; ReLU; "
                       "MSE; 5 epochs. Writes originals beside reconstructions and prints the "
                       "test error beside PCA's at the same code size.")
    d.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    d.add_argument("--latent-dim", type=int, default=32, help="code size (default 32)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.add_argument("--out", default="reconstructions.png",
                   help="picture to write (default reconstructions.png)")
    d.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    add_json_option(d, "the error table")
    add_common_options(d)
    d.set_defaults(func=cmd_demo)


def _add_train_parser(sub):
    from deepae.data.preprocessing import KINDS as SCALINGS
    from deepae.distribute import STRATEGIES
    from deepae.nn.autoencoders import KINDS
    from deepae.training import LOSSES, OPTIMIZERS

    t = sub.add_parser("train", help="train an autoencoder on a file, folder or data set",
                       description="Train an autoencoder and save it as one .deepae file. "
                       "Options may come from a TOML/YAML --config file (keys as the long "
                       "option names); options on the command line win. A checkpoint is kept "
                       "each epoch in OUTPUT.ckpt; after an interruption, run the same command "
                       "with --resume to continue from the last completed epoch.")
    t.add_argument("source", help="data: .npy, .npz, .csv, .parquet, a folder of PNG/JPEG "
                   "images, a data set name (mnist, fashion-mnist, digits), or - for "
                   "standard input (.npy, .npz, Parquet or CSV bytes, told apart by their "
                   "first bytes)")
    t.add_argument("-o", "--output", required=True, help="model file to write (.deepae)")
    t.add_argument("--config", help="TOML or YAML file of options")
    t.add_argument("--kind", choices=KINDS, help="layer type (default dense)")
    t.add_argument("--hidden-units", help="encoder hidden sizes, widest first (default 256,128)")
    t.add_argument("--latent-dim", type=int, help="code size (default 32)")
    t.add_argument("--decoder-units", help="decoder hidden sizes (default: mirror)")
    t.add_argument("--activation", help="hidden activation: relu, tanh, sigmoid, elu, ...")
    t.add_argument("--latent-activation", help="code activation (default linear)")
    t.add_argument("--output-activation", help="auto (from the data range), sigmoid, tanh, "
                   "linear")
    t.add_argument("--preprocessing", choices=("auto", *SCALINGS))
    t.add_argument("--epochs", type=int, help="training epochs (default 10)")
    t.add_argument("--batch-size", type=int, help="batch size (default 256)")
    t.add_argument("--loss", choices=LOSSES)
    t.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adam, adamw (with weight decay), or sgd with momentum")
    t.add_argument("--learning-rate", type=float, help="default 1e-3 (adam), 1e-2 (sgd)")
    t.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    t.add_argument("--validation-split", type=float, help="fraction held out (default 0)")
    t.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement, keep the best weights")
    t.add_argument("--reduce-lr-on-plateau", type=int, metavar="PATIENCE",
                   help="halve the learning rate after PATIENCE epochs without improvement")
    t.add_argument("--seed", type=int, help="random seed for a repeatable run")
    add_run_options(t)
    t.add_argument("--key", help="array name inside a .npz file")
    t.add_argument("--split", choices=["train", "test"], help="split of a named data set")
    t.add_argument("--stream", action="store_true", default=None,
                   help="SOURCE is larger than memory: .npy shards, CSV or Parquet files, or "
                   "images (a folder, a glob or a file), read in blocks (docs/distributed.md)")
    t.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy; multi-worker reads TF_CONFIG, and only the "
                   "chief (worker 0) writes OUTPUT (default single)")
    t.add_argument("--curves", help="also write training curves to this PNG")
    t.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    add_common_options(t)
    t.set_defaults(func=cmd_train)


def _add_encode_parsers(sub):
    for name, func, helptext in (
            ("encode", cmd_encode, "write the latent codes of data (.npy or .csv)"),
            ("reconstruct", cmd_reconstruct,
             "reconstruct data: a picture (.png) of originals beside reconstructions, "
             "or an array file (.npy, .csv)")):
        c = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:]
                           + ". SOURCE - reads standard input: .npy, .npz, Parquet or CSV "
                           "(with a header row) bytes, told apart by their first bytes; "
                           "-o - writes CSV to standard output. CSV (-o - or -o FILE.csv) "
                           "starts with a header row (code_0, ... or x_0, ...), so that "
                           "another deepae command reads every row.")
        c.add_argument("model", help="a .deepae model file")
        c.add_argument("source", help="data file, image folder, data set name, or - "
                       "(standard input)")
        c.add_argument("-o", "--output", required=True, help="file to write (.npy, .csv"
                       + (", .png" if name == "reconstruct" else "") + "), or - for CSV on "
                       "standard output")
        c.add_argument("--key", help="array name inside a .npz file")
        c.add_argument("--split", choices=["train", "test"], default="test",
                       help="split of a named data set (default test)")
        if name == "reconstruct":
            c.add_argument("-n", type=int, default=10, help="samples in the picture (default 10)")
        add_common_options(c)
        c.set_defaults(func=func)


def _add_reduce_parser(sub):
    r = sub.add_parser("reduce", help="dimensionality reduction: autoencoder codes vs PCA",
                       description="Fit an AutoencoderReducer and PCA at the same code size and "
                       "print their test reconstruction errors (per feature, and summed per "
                       "sample with the data in [0, 1], Hinton & Salakhutdinov's unit).")
    r.add_argument("source", help="training data (file or folder, or - for standard "
                   "input as for train) or a data set name (mnist, fashion-mnist, digits: its "
                   "test split is the test set)")
    r.add_argument("--test", help="test data file (default: a random fifth of SOURCE)")
    r.add_argument("--labels", help=".npy of test labels, to colour the 2-d plot")
    r.add_argument("-k", "--n-components", type=int, default=30, help="code size (default 30)")
    r.add_argument("--hidden-units", help="encoder layers (default 1000,500,250 for images)")
    r.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    r.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r.add_argument("-o", "--output", help="save the fitted reducer here (.deepae)")
    r.add_argument("--plots", metavar="DIR", help="write error_vs_code_size.png (codes 2, 10, "
                   "30) and, with labels, embedding_2d.png to DIR")
    r.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_json_option(r, "the error table")
    add_common_options(r)
    r.set_defaults(func=cmd_reduce)


def _add_info_parser(sub):
    i = sub.add_parser("info", help="architecture, data range and training summary of a model",
                       description="Show a saved model's architecture, data range and "
                       "training summary.")
    i.add_argument("model", help="a .deepae model file")
    add_json_option(i, "the description")
    add_common_options(i, output=False)
    i.set_defaults(func=cmd_info)


def _add_export_parser(sub):
    e = sub.add_parser(
        "export", help="write a model's inference as a SavedModel, ONNX or LiteRT file",
        description="Write a saved model's inference, raw inputs to named outputs, as a "
        "TensorFlow SavedModel folder (the default; signature serving_default), an ONNX file "
        "or a LiteRT (.tflite) file, runnable without deepae. docs/serving.md lists the "
        "inputs and outputs of each kind of model.")
    e.add_argument("model", help="a .deepae model file")
    e.add_argument("out", help="the SavedModel folder, or the .onnx / .tflite file")
    e.add_argument("--format", default="saved_model", metavar="FORMAT",
                   help="saved_model (default), onnx or litert")
    e.add_argument("--channels", type=int, choices=(1, 3),
                   help="a Denoiser or SuperResolver with a grayscale and a colour network "
                   "(the pretrained ones): export only the grayscale (1) or colour (3) one; "
                   "needed for onnx and litert")
    add_json_option(e, "what was written")
    add_common_options(e)
    e.set_defaults(func=cmd_export)


# the commands whose first argument picks training among other actions (apply, evaluate)
_ACTION_COMMANDS = ("compress", "denoise", "upscale")


def _is_training(args) -> bool:
    """Whether `args` runs a training command (`train`, `detect fit`, `index build`, `denoise
    train`, ...): those take --resume; `compress IMG -o OUT` takes it too but trains nothing."""
    if not hasattr(args, "resume"):
        return False
    if getattr(args, "command", None) in _ACTION_COMMANDS:
        return bool(args.args) and args.args[0] == "train"
    return True


def _resume_hint(args) -> str:
    """For an interrupted training command whose checkpoint folder holds finished epochs
    (deepae's mark is there): where they are, and how to continue; else nothing."""
    if not _is_training(args):
        return ""
    from deepae.cli._options import checkpoint_folder
    from deepae.training import CHECKPOINT_MARK

    folder = checkpoint_folder(args)
    if folder is None or not (folder / CHECKPOINT_MARK).is_file():
        return ""
    return (f"; the finished epochs are kept in {str(folder)!r}: run the same command with "
            "--resume to continue")


def _stdout_to_devnull() -> None:
    """Point the process's standard output at the null device, so that Python's own flush
    at exit does not fail again on the closed pipe."""
    import io

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (in tests)
        pass


def _older_json_file(argv: list[str]) -> list[str]:
    """`argv` with the older `detect evaluate ... --json FILE.json` (where FILE ends in
    .json, so it cannot be DATA) as the hidden ``--json-file FILE.json``; ``--json`` is a
    flag, and anything else after it stays a positional argument."""
    if argv[:2] != ["detect", "evaluate"]:
        return argv
    out, i = argv[:2], 2
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return out + argv[i:]
        value = token[len("--json="):] if token.startswith("--json=") else (
            argv[i + 1] if token == "--json" and i + 1 < len(argv) else None)
        if value is not None and value.lower().endswith(".json"):
            out += ["--json-file", value]
            i += 1 if token.startswith("--json=") else 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(_older_json_file(list(sys.argv[1:] if argv is None else argv)))
    import deepae

    if getattr(args, "debug", False):  # TensorFlow's start-up lines, kept quiet on import
        sys.stderr.write(deepae.STARTUP_LOG)
    from sklearn.exceptions import NotFittedError

    from deepae.exceptions import DeepAEError

    try:
        with results_to(sys.stdout):  # results there; progress and notes to standard error
            code = args.func(args)
            results_stream().flush()  # a result left in a buffer meets a closed pipe here
            return code
    except KeyboardInterrupt:
        print("deepae: interrupted" + _resume_hint(args), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of standard output left (`| head`): no error line
        _stdout_to_devnull()
        return 141  # 128 + SIGPIPE, what a shell reports for a command a closed pipe stops
    except (UserError, DeepAEError, ValueError, TypeError, OSError, ImportError,
            NotFittedError, MemoryError) as e:
        if getattr(args, "debug", False):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        if isinstance(e, MemoryError):
            msg = f"out of memory ({msg}); try a smaller input or batch"
        print(f"deepae: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
