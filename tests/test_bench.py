"""celib.bench runs end to end (on tiny shapes) and reports what it measured. No timings are
asserted: they vary from machine to machine and from minute to minute."""

from __future__ import annotations

import json

import numpy as np

from celib import bench


def test_make_input_is_deterministic():
    x1, y1 = bench.make_input((6, 5), "float32")
    x2, y2 = bench.make_input((6, 5), "float32")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.dtype == np.float32 and y1.dtype == np.int64 and y1.max() < 5


def test_time_methods_and_traced_peak():
    ms = bench.time_methods({"a": lambda: np.ones(10), "b": lambda: np.zeros(10)}, repeats=3)
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())
    assert bench.traced_peak(lambda: np.ones(100_000)) >= 800_000


def test_run_and_format_on_tiny_shapes(tmp_path):
    results = bench.run(shapes=((16, 5),), dtypes=("float32",), repeats=1, threads=1)
    assert [r.function for r in results] == list(bench.FUNCTIONS)
    for r in results:
        assert {"celib", "torch"} <= set(r.ms)
        assert np.isfinite(r.ratio)
        assert "celib" in r.memory and "torch" in r.memory
    names = {name for r in results for name in r.ms}
    assert "scipy" in names and "sklearn" in names
    text = bench.format_results(results)
    assert "cross_entropy_grad" in text and "celib/torch" in text


def test_main_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "QUICK_SHAPES", ((8, 4),))
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--repeats", "1", "--no-memory", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert len(data["results"]) == 2 * len(bench.FUNCTIONS)
    assert "celib/torch" in capsys.readouterr().out
