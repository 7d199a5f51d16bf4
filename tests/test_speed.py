"""benchmarks.speed runs end to end (on tiny shapes) and reports what it measured, and refuses a
noisy measurement. No timings are asserted: they vary from machine to machine and from minute
to minute."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from benchmarks import measure, speed, speed_linear


def test_make_input_is_deterministic():
    x1, y1 = speed.make_input((6, 5), "float32")
    x2, y2 = speed.make_input((6, 5), "float32")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.dtype == np.float32 and y1.dtype == np.int64 and y1.max() < 5


def test_time_methods(monkeypatch):
    monkeypatch.setattr(measure, "ROW_S", 0.01)
    timings, busy = measure.time_methods({"a": lambda: np.ones(10), "b": lambda: np.zeros(10)},
                                       repeats=3)
    assert set(timings) == {"a", "b"}
    assert all(len(t.samples) == 3 and t.best > 0 and t.spread >= 0 for t in timings.values())
    assert busy is None or busy >= 0


def test_timing_keeps_the_best_round_and_measures_the_spread():
    t = measure.Timing((2.0, 3.0, 2.5, 10.0))
    assert t.best == 2.0 and t.median == 2.75 and t.spread == pytest.approx(0.375)


def test_a_noisy_row_is_refused_with_its_reason():
    quiet = {"celib": measure.Timing((1.0, 1.05, 1.1)), "torch": measure.Timing((2.0, 2.0, 2.1))}
    assert measure.noise(quiet, busy_elsewhere=0.05, cpus=2) is None
    assert measure.noise(quiet, busy_elsewhere=None, cpus=2) is None  # not measurable: spread only
    assert "other processes used 0.50 of 2 CPUs" in measure.noise(quiet, 0.5, 2)
    spread = {"celib": measure.Timing((1.0, 1.5, 1.6)), "torch": measure.Timing((2.0, 2.0, 2.1))}
    assert "celib's rounds spread 50%" in measure.noise(spread, 0.0, 2)
    one_round = {"celib": measure.Timing((1.0,)), "torch": measure.Timing((2.0,))}
    assert "fewer than 3 rounds" in measure.noise(one_round, 0.0, 2)  # no spread to judge by
    row = speed.Result("cross_entropy", "float32", (8, 4), spread, noise="celib's rounds spread")
    assert np.isnan(row.ratio)
    text = speed.format_results([row])
    assert "too noisy" in text and "celib's rounds spread" in text and "0.50" not in text


def test_run_and_format_on_tiny_shapes(monkeypatch):
    monkeypatch.setattr(measure, "ROW_S", 0.01)
    report = speed.run(shapes=((16, 5),), dtypes=("float32",), repeats=1, threads=1)
    results = report.results
    assert [r.function for r in results] == list(speed.FUNCTIONS)
    for r in results:
        assert {"celib", "torch"} <= set(r.ms)
        assert np.isfinite(r.ratio) or r.noise
        assert "celib" in r.memory and "torch" in r.memory
    names = {name for r in results for name in r.ms}
    assert "scipy" in names and "sklearn" in names
    text = speed.format_results(results)
    assert "cross_entropy_grad" in text and "celib/torch" in text


def test_the_threads_asked_for_are_the_threads_used_and_printed(monkeypatch):
    import torch

    monkeypatch.setattr(measure, "ROW_S", 0.01)
    before = torch.get_num_threads()
    report = speed.run(shapes=((8, 4),), dtypes=("float32",), functions=("logsumexp",),
                       repeats=1, threads=1, memory=False)
    assert report.machine.celib_threads == 1 and report.machine.torch_threads == 1
    assert all("1 thread(s)" in pool for pool in report.machine.blas)
    assert "threads: celib 1, torch 1" in report.header()
    assert torch.get_num_threads() == before  # restored afterwards
    assert report.machine.cpu and "numpy" in report.machine.simd_level
    assert len(report.load_before) in (0, 3) and "load average" in report.header()


def test_main_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(speed, "QUICK_SHAPES", ((8, 4),))
    monkeypatch.setattr(measure, "ROW_S", 0.01)
    path = tmp_path / "speed.json"
    assert speed.main(["--quick", "--repeats", "1", "--no-memory", "--no-linear",
                       "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert len(data["results"]) == 2 * len(speed.FUNCTIONS)
    assert {"machine", "simd_level", "load_before", "load_after"} <= set(data)
    for row in data["results"]:
        assert (row["ratio"] is None) == (row["noise"] is not None)
    out = capsys.readouterr().out
    assert "celib/torch" in out and "load average" in out and "threads: celib" in out


def test_shapes_are_parsed_or_refused_clearly():
    assert speed._parse_shapes("4096x10,16x128000") == ((4096, 10), (16, 128000))
    for bad in ("4096", "4096x10x3", "ax10", "0x10", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected shapes like"):
            speed._parse_shapes(bad)


def test_the_json_report_reads_back_as_the_same_report(monkeypatch):
    monkeypatch.setattr(measure, "ROW_S", 0.01)
    report = speed.run(shapes=((8, 4),), dtypes=("float32",), functions=("logsumexp",),
                       repeats=3, threads=1, memory=False)
    back = speed.report_from_json(json.loads(json.dumps(speed.report_to_json(report))))
    assert back.machine == report.machine
    assert [(r.function, r.dtype, r.shape, r.timings, r.noise) for r in back.results] == [
        (r.function, r.dtype, r.shape, r.timings, r.noise) for r in report.results]
    assert speed.compare_dispatch(report, back).count("logsumexp") == 1


def test_a_worker_runs_in_a_fresh_python_and_returns_its_json():
    job = {"threads": 1, "configs": [["logsumexp", "float32", 64, 8]]}
    rises = measure.run_in_fresh_python(speed.torch_memory_worker, job)
    assert isinstance(rises, list) and len(rises) == 1 and rises[0] >= 0


def test_linear_section_runs_on_a_tiny_shape():
    """The linear cross-entropy section (speed and memory are measured there, never asserted
    here)."""
    rows = speed_linear.run(shapes=((16, 8, 40),), repeats=1, threads=1, memory=False)
    text = speed_linear.format_rows(rows)
    assert "16 x 8 x 40" in text and "ratio" in text
    assert set(rows[0].ms) == {"celib fwd", "torch fwd", "chunked fwd", "celib fwd+grad",
                               "celib fused", "torch fwd+bwd", "chunked fwd+bwd"}


def test_without_torch_the_benchmark_says_what_to_install(monkeypatch, capsys):
    real_find_spec = speed.importlib.util.find_spec
    monkeypatch.setattr(speed.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    assert speed.main(["--quick"]) == 2
    assert "pip install torch==2.13.0" in capsys.readouterr().err
