"""deepae.plots: figures the benchmarks and experiments write."""

import pytest

pytest.importorskip("matplotlib")


def test_rate_distortion_one_colour_per_method_across_panels(tmp_path, monkeypatch):
    from deepae import plots

    colours, save = {}, plots._save

    def capture(fig, path, overwrite=True):
        for ax in fig.axes:
            for line in ax.get_lines():
                colours.setdefault(line.get_label(), set()).add(line.get_color())
        return save(fig, path, overwrite)

    monkeypatch.setattr(plots, "_save", capture)
    curve = ([0.5, 1.0], [30.0, 33.0])
    out = plots.rate_distortion({"first": {"ours": curve, "JPEG": curve},
                                 "second": {"ours": curve, "refined": curve, "JPEG": curve}},
                                tmp_path / "rd.png")
    assert out.exists() and out.stat().st_size > 0
    assert set(colours) == {"ours", "refined", "JPEG"}
    assert all(len(c) == 1 for c in colours.values())  # the same colour in both panels
    assert len(set.union(*colours.values())) == 3  # and a different one per method
