"""One convention for every command: ``--json`` prints the result as one JSON document on
standard output (and nothing else there), and ``-`` names standard input or output where a
command reads or writes one file. Standard input is bounded; binary results (a .dae file, a
PNG) go to the real standard output's bytes."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepae.cli import _options
from deepae.cli.main import main
from deepae.data.io import read_image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model, detector and index, their data, and two small images."""
    d = tmp_path_factory.mktemp("json_stdio")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.savez(d / "x.npz", x=x, y=np.arange(60) % 3)
    assert main(["train", str(d / "x.npy"), "-o", str(d / "m.deepae"), "--epochs", "1",
                 "--hidden-units", "4", "--latent-dim", "2", "--quiet"]) == 0
    table = pd.DataFrame(x, columns=[f"c{i}" for i in range(6)]).assign(
        label=(np.arange(60) % 10 == 0).astype(int))
    table.to_csv(d / "t.csv", index=False)
    assert main(["detect", "fit", str(d / "t.csv"), "-o", str(d / "det.deepae"), "--drop",
                 "label", "--epochs", "2", "--quiet"]) == 0
    assert main(["index", "build", str(d / "x.npz"), "-o", str(d / "idx.deepae"), "--bits",
                 "8", "--epochs", "1", "--hidden-units", "8", "--quiet"]) == 0
    (d / "photos").mkdir()
    yy, xx = np.mgrid[:24, :24]
    for i in range(2):
        img = 128 + 80 * np.sin(xx / (3 + i)) * np.cos(yy / 4) + rng.normal(0, 5, (24, 24))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / "photos" / f"{i}.png")
    return d


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def _json_out(capsys, argv) -> dict:
    """Run `argv`; its standard output must be one JSON document and nothing else."""
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(out)  # fails on anything beside the one document


def _one_line_error(capsys, argv, needle):
    assert main(argv) == 1, argv
    said = capsys.readouterr()
    assert said.out == "" and said.err.count("\n") == 1 and needle in said.err, said.err


# -- --json on every command that prints a result ---------------------------------------------
def test_info_json_and_no_model_from_stdin(files, capsys):
    info = _json_out(capsys, ["info", str(files / "m.deepae"), "--json"])
    assert info["latent_dim"] == 2 and info["training"]["epochs_run"] == 1
    _one_line_error(capsys, ["info", "-"], "MODEL cannot be `-`")
    _one_line_error(capsys, ["encode", "-", str(files / "x.npy"), "-o", "-"],
                    "MODEL cannot be `-`")


def test_demo_json(tmp_path, monkeypatch, capsys):
    from conftest import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name, n in (("train", 32), ("t10k", 8)):
        write_idx(folder / f"{name}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{name}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("DEEPAE_DATA", str(tmp_path / "data"))
    doc = _json_out(capsys, ["demo", "--epochs", "1", "--latent-dim", "3", "--out",
                             str(tmp_path / "p.png"), "--quiet", "--json"])
    assert {"epochs", "latent_dim", "rows", "error_ratio_to_pca", "picture"} <= set(doc)
    assert [r["model"] for r in doc["rows"]][1] == "PCA" and doc["latent_dim"] == 3
    assert doc["picture"] == str(tmp_path / "p.png")


def test_reduce_json_from_stdin(files, monkeypatch, capsys):
    _stdin(monkeypatch, (files / "x.npy").read_bytes())
    doc = _json_out(capsys, ["reduce", "-", "-k", "2", "--hidden-units", "4", "--epochs", "1",
                             "--quiet", "--json"])
    assert (doc["n_components"], doc["n_train"], doc["n_test"]) == (2, 48, 12)
    assert [r["model"] for r in doc["rows"]] == ["autoencoder", "PCA"]
    assert all(r["mse_per_feature"] > 0 for r in doc["rows"])


def test_detect_score_json_and_stdin(files, tmp_path, monkeypatch, capsys):
    det, table = str(files / "det.deepae"), str(files / "t.csv")
    csv_out = tmp_path / "s.csv"
    assert main(["detect", "score", det, table, "--drop", "label", "-o", str(csv_out)]) == 0
    expected = pd.read_csv(csv_out)
    doc = _json_out(capsys, ["detect", "score", det, table, "--drop", "label", "--json"])
    assert set(doc) == {"threshold", "rows", "n_rows", "n_flagged"}
    assert doc["n_rows"] == len(doc["rows"]) == 60
    assert doc["n_flagged"] == sum(r["anomaly"] for r in doc["rows"])
    np.testing.assert_allclose([r["score"] for r in doc["rows"]], expected["score"], rtol=1e-5)
    # the table on standard input: the same scores
    _stdin(monkeypatch, (files / "t.csv").read_bytes())
    assert main(["detect", "score", det, "-", "--drop", "label", "-o", "-"]) == 0
    np.testing.assert_allclose(pd.read_csv(io.StringIO(capsys.readouterr().out))["score"],
                               expected["score"], rtol=1e-6)
    # rows to a file, counts as the JSON result
    doc = _json_out(capsys, ["detect", "score", det, table, "--drop", "label", "--json", "-o",
                             str(tmp_path / "s2.csv")])
    assert doc["n_rows"] == 60 and doc["output"] == str(tmp_path / "s2.csv")


def test_detect_evaluate_json_flag_and_older_file(files, tmp_path, monkeypatch, capsys):
    argv = ["detect", "evaluate", str(files / "det.deepae"), str(files / "t.csv"),
            "--label-column", "label", "--quiet"]
    keys = {"roc_auc", "average_precision", "recall_at_fpr", "tp", "fp", "threshold_rule"}
    rep = _json_out(capsys, [*argv, "--json"])
    assert keys <= set(rep) and rep["n_rows"] == 60 and rep["n_anomalies"] == 6
    assert _json_out(capsys, [*argv[:3], "--json", *argv[3:]]) == rep  # a flag: DATA follows
    _stdin(monkeypatch, (files / "t.csv").read_bytes())
    assert _json_out(capsys, [*argv[:3], "-", *argv[4:], "--json"]) == rep
    # the older --json FILE: the table on standard output, the file, a note
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    said = capsys.readouterr()
    assert "ROC-AUC" in said.out and "--json > " in said.err
    assert json.loads((tmp_path / "r.json").read_text()) == rep
    _one_line_error(capsys, [*argv, "--json", str(tmp_path / "r.json")], "pass --overwrite")


def test_index_query_and_evaluate_json(files, tmp_path, monkeypatch, capsys):
    idx = str(files / "idx.deepae")
    doc = _json_out(capsys, ["index", "query", idx, str(files / "x.npy"), "-k", "3",
                             "--limit", "5", "--json"])
    assert (doc["n_queries"], doc["n_rows"], len(doc["rows"])) == (5, 15, 15)
    assert set(doc["rows"][0]) == {"query", "rank", "id", "distance"}
    doc = _json_out(capsys, ["index", "query", idx, str(files / "x.npy"), "-k", "3", "--json",
                             "-o", str(tmp_path / "q.csv")])
    assert doc["n_rows"] == 180 and len(pd.read_csv(tmp_path / "q.csv")) == 180
    _stdin(monkeypatch, (files / "x.npz").read_bytes())  # the labels come with the vectors
    res = _json_out(capsys, ["index", "evaluate", idx, "-", "-n", "20", "--top", "30", "-k",
                             "5", "--json"])
    assert res["queries"] == 20 and res["n_bits"] == 8 and 0 <= res["mAP@30"] <= 1


@pytest.mark.parametrize("which,methods", [("denoise", {"noisy input", "deepae"}),
                                           ("upscale", {"bicubic", "deepae"})])
def test_restore_evaluate_json(files, capsys, which, methods):
    extra = ["--sigma", "0.1"] if which == "denoise" else ["--scale", "2"]
    doc = _json_out(capsys, [which, "evaluate", str(files / "photos"), *extra, "--json"])
    assert doc["n_images"] == 2 and methods <= set(doc["methods"])
    assert all(set(m) == {"psnr", "ssim"} for m in doc["methods"].values())
    _one_line_error(capsys, [which, str(files / "photos" / "0.png"), "-o", "x.png", "--json"],
                    "--json prints the scores")


# -- `-`: standard input and output --------------------------------------------------------------
def test_encode_reconstruct_stdin_stdout(files, tmp_path, monkeypatch, capsys):
    model, x = str(files / "m.deepae"), np.load(files / "x.npy")
    assert main(["encode", model, str(files / "x.npy"), "-o", str(tmp_path / "z.npy")]) == 0
    codes = np.load(tmp_path / "z.npy")
    pd.DataFrame(x).to_csv(tmp_path / "x.csv", index=False)  # CSV with its header row
    for source in ("x.npy", "x.npz"):
        _stdin(monkeypatch, (files / source).read_bytes())
        assert main(["encode", model, "-", "-o", "-"]) == 0
        said = capsys.readouterr()
        np.testing.assert_allclose(pd.read_csv(io.StringIO(said.out)), codes,
                                   rtol=1e-4, atol=1e-5)
        assert "standard output" in said.err
    _stdin(monkeypatch, (tmp_path / "x.csv").read_bytes())
    assert main(["encode", model, "-", "-o", str(tmp_path / "z2.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "z2.npy"), codes, rtol=1e-5, atol=1e-6)
    _stdin(monkeypatch, (files / "x.npy").read_bytes())
    assert main(["reconstruct", model, "-", "-o", "-"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out)).shape == (60, 6)


def test_stdin_is_bounded_and_checked(files, monkeypatch, capsys):
    model = str(files / "m.deepae")
    monkeypatch.setattr(_options, "STDIN_MAX_BYTES", 100)
    _stdin(monkeypatch, (files / "x.npy").read_bytes())
    _one_line_error(capsys, ["encode", model, "-", "-o", "-"], "at most 100 bytes")
    monkeypatch.undo()
    _stdin(monkeypatch, b"")
    _one_line_error(capsys, ["encode", model, "-", "-o", "-"], "received nothing")
    _stdin(monkeypatch, b"\x89PNG\r\n\x1a\n\0\0\0")
    _one_line_error(capsys, ["encode", model, "-", "-o", "-"], "Expected .npy, .npz")
    _stdin(monkeypatch, b"PAR1 and more")
    _one_line_error(capsys, ["detect", "score", str(files / "det.deepae"), "-"],
                    "received Parquet")
    _one_line_error(capsys, ["compress", str(files / "photos" / "0.png"), "-o", "-",
                             "--model", "-"], "--model cannot be `-`")
    _one_line_error(capsys, ["train", "-", "-o", "m2.deepae", "--stream"],
                    "SOURCE with --stream cannot be `-`")
    _one_line_error(capsys, ["compress", str(files / "photos" / "0.png"), "-o", "-", "--json"],
                    "expected -o FILE.dae with --json")


def test_images_through_stdin_and_stdout(files, tmp_path, monkeypatch, capsysbinary):
    src = files / "photos" / "0.png"
    assert main(["denoise", str(src), "-o", str(tmp_path / "d.png")]) == 0
    _stdin(monkeypatch, src.read_bytes())
    assert main(["denoise", "-", "-o", "-"]) == 0
    png = capsysbinary.readouterr().out
    assert png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(read_image(io.BytesIO(png)), read_image(tmp_path / "d.png"))
    # compress --json: the figures; -o -: the very bytes of the file
    dae = tmp_path / "a.dae"
    assert main(["compress", str(src), "-o", str(dae), "--quality", "1", "--json"]) == 0
    doc = json.loads(capsysbinary.readouterr().out)
    assert doc["bytes"] == dae.stat().st_size and (doc["width"], doc["height"]) == (24, 24)
    assert {"bpp", "bpp_estimate", "psnr", "output"} <= set(doc)
    assert main(["compress", str(src), "-o", "-", "--quality", "1"]) == 0
    assert capsysbinary.readouterr().out == dae.read_bytes()
    assert main(["decompress", str(dae), "-o", str(tmp_path / "a.png"), "--quiet"]) == 0
    _stdin(monkeypatch, dae.read_bytes())
    assert main(["decompress", "-", "-o", str(tmp_path / "b.png"), "--quiet"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), read_image(tmp_path / "a.png"))


def test_compress_pipe_between_processes(files, tmp_path):
    """Real processes, real pipes: `compress IN -o - | decompress - -o -` gives the image
    that the files give (nothing but the bytes on either standard output)."""
    src = files / "photos" / "1.png"
    assert main(["compress", str(src), "-o", str(tmp_path / "a.dae"), "--quality", "1",
                 "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "a.dae"), "-o", str(tmp_path / "a.png"),
                 "--quiet"]) == 0
    cli = [sys.executable, "-m", "deepae.cli.main"]
    first = subprocess.Popen([*cli, "compress", str(src), "-o", "-", "--quality", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.run([*cli, "decompress", "-", "-o", "-"], stdin=first.stdout,
                            capture_output=True, timeout=120)
    first.stdout.close()
    assert first.wait(timeout=120) == 0 and second.returncode == 0, second.stderr
    assert b"rate:" in first.stderr.read() and b"wrote standard output" in second.stderr
    np.testing.assert_array_equal(read_image(io.BytesIO(second.stdout)),
                                  read_image(tmp_path / "a.png"))


# -- what the reviewer found ----------------------------------------------------------------------
def test_csv_written_by_deepae_reads_back_every_row(files, tmp_path, monkeypatch, capsys):
    """`reconstruct -o - | encode - -o -`: CSV out has the header row that CSV in takes,
    so no row is lost on the way (nor in a .csv file)."""
    model, x = str(files / "m.deepae"), np.load(files / "x.npy")
    assert main(["reconstruct", model, str(files / "x.npy"), "-o", "-"]) == 0
    recon = capsys.readouterr().out
    assert recon.splitlines()[0] == ",".join(f"x_{j}" for j in range(6))
    _stdin(monkeypatch, recon.encode())
    assert main(["encode", model, "-", "-o", "-"]) == 0
    said = capsys.readouterr()
    codes = pd.read_csv(io.StringIO(said.out))
    assert list(codes.columns) == ["code_0", "code_1"] and len(codes) == len(x) == 60
    assert "wrote 60 codes" in said.err
    assert main(["encode", model, str(files / "x.npy"), "-o", str(tmp_path / "c.csv")]) == 0
    _stdin(monkeypatch, (tmp_path / "c.csv").read_bytes())
    assert main(["reconstruct", model, str(files / "x.npy"), "-o", str(tmp_path / "r.csv")]) == 0
    assert pd.read_csv(tmp_path / "c.csv").shape == (60, 2)
    assert pd.read_csv(tmp_path / "r.csv").shape == (60, 6)


@pytest.mark.parametrize("command", [["reconstruct", "m.deepae", "big.npy", "-o", "-"],
                                     ["detect", "score", "det.deepae", "big.csv", "--quiet",
                                      "--json"]])
def test_a_reader_that_leaves_stops_the_command(files, tmp_path, command):
    """Real processes, a real pipe that its reader closes after 10 bytes (`| head -c 10`):
    status 141, no error line and no "wrote"/"scored" report."""
    rng = np.random.default_rng(1)
    big = rng.normal(size=(60_000, 6)).astype(np.float32)  # several MB of CSV
    np.save(tmp_path / "big.npy", big)
    pd.DataFrame(big, columns=[f"c{i}" for i in range(6)]).assign(label=0).to_csv(
        tmp_path / "big.csv", index=False)
    argv = [str(files / a) if a.endswith(".deepae") else
            str(tmp_path / a) if a.startswith("big.") else a for a in command]
    if command[0] == "detect":
        argv += ["--drop", "label"]
    proc = subprocess.Popen([sys.executable, "-m", "deepae.cli.main", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert len(proc.stdout.read(10)) == 10
        proc.stdout.close()  # the reader leaves while the command still writes
        rc = proc.wait(timeout=180)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert rc == 141, err
    assert "wrote" not in err and "scored" not in err and "error" not in err, err


def test_detect_score_json_failure_leaves_stdout_empty(files, capsys):
    _one_line_error(capsys, ["detect", "score", str(files / "det.deepae"), str(files / "t.csv"),
                             "--drop", "label", "--id-column", "nope", "--json"],
                    "column 'nope' is not in")


def test_detect_evaluate_json_is_a_flag(files, tmp_path, capsys):
    """`--json DATA` is the flag, then DATA; only a name ending in .json after --json is the
    older --json FILE."""
    det, table = str(files / "det.deepae"), str(files / "t.csv")
    rep = _json_out(capsys, ["detect", "evaluate", det, "--json", table, "--label-column",
                             "label", "--quiet"])
    assert rep["n_rows"] == 60
    for i, form in enumerate((["--json", str(tmp_path / "A.JSON")],
                              [f"--json={tmp_path / 'b.json'}"])):
        assert main(["detect", "evaluate", det, table, *form, "--label-column", "label",
                     "--quiet"]) == 0
        said = capsys.readouterr()
        assert "ROC-AUC" in said.out and "will be removed" in said.err
        written = tmp_path / ("A.JSON" if i == 0 else "b.json")
        assert json.loads(written.read_text()) == rep
    with pytest.raises(SystemExit) as stop:  # a positional too many, not a file to write
        main(["detect", "evaluate", det, table, "--json", "x.csv", "--label-column", "label"])
    assert stop.value.code == 2 and not (tmp_path / "x.csv").exists()
    capsys.readouterr()


def test_detect_streams_stdin_past_the_cap(files, monkeypatch, capsys):
    """`detect score -` and `evaluate -` read standard input in chunks, without the cap of
    the commands that read it whole (`detect fit -` keeps it)."""
    table = pd.concat([pd.read_csv(files / "t.csv")] * 80, ignore_index=True)
    data = table.to_csv(index=False).encode()
    monkeypatch.setattr(_options, "STDIN_MAX_BYTES", 100_000)
    assert len(data) > 2 * _options.STDIN_MAX_BYTES
    det = str(files / "det.deepae")
    _stdin(monkeypatch, data)
    assert main(["detect", "score", det, "-", "--drop", "label", "--chunk-size", "500",
                 "--quiet"]) == 0
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == len(table) == 4800
    _stdin(monkeypatch, data)
    rep = _json_out(capsys, ["detect", "evaluate", det, "-", "--label-column", "label",
                             "--chunk-size", "500", "--quiet", "--json"])
    assert rep["n_rows"] == 4800
    _stdin(monkeypatch, data)
    _one_line_error(capsys, ["detect", "fit", "-", "-o", "never.deepae", "--drop", "label"],
                    "at most 100,000 bytes")


def test_non_text_where_csv_is_expected(files, monkeypatch, capsys):
    """Gzipped or other non-UTF-8 bytes on standard input: one line saying what was
    expected and what came."""
    import gzip

    det, model = str(files / "det.deepae"), str(files / "m.deepae")
    zipped = gzip.compress((files / "t.csv").read_bytes())
    not_utf8 = b"c0,c1\n1,2\n" + "\u00e9,3\n".encode("latin-1")
    for data, said in ((zipped, "gzip-compressed bytes"),
                       (not_utf8, "bytes that are not UTF-8 text")):
        for argv in (["detect", "score", det, "-", "--quiet"], ["encode", model, "-", "-o", "-"]):
            _stdin(monkeypatch, data)
            _one_line_error(capsys, argv, said)
        _stdin(monkeypatch, data)
        _one_line_error(capsys, ["detect", "score", det, "-", "--quiet"], "CSV")
