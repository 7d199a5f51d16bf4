"""Tests for celib.datasets.load_names and split_names (makemore's names.txt, chapter 10).

No test touches the network: downloads go to the local server of ``tests/test_datasets.py``,
which serves the real file (good, corrupted, cut short, missing). The real-data tests read the
shared ``names`` folder and are skipped when it is not available.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import celib.datasets as ds
from celib.datasets import (MNISTDownloadError, MNISTError, NamesDownloadError, load_names,
                            split_names)
from tests.test_datasets import REAL_ROOT, REPO, _Handler, _Server, listing, problem

NAMES = "names.txt"


def _real_names_root() -> Path | None:
    env = os.environ.get("CELIB_NAMES_DIR")
    candidates = [Path(env)] if env else []
    candidates += [root.parent / "names" for root in [REAL_ROOT] if root is not None]
    candidates.append(REPO.parent / "shared" / "data" / "names")
    return next((c for c in candidates if (c / NAMES).is_file()), None)


REAL_NAMES_ROOT = _real_names_root()  # read before the autouse fixture clears the variables


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may fall back to makemore's URLs or the user's cache by accident."""
    monkeypatch.setattr(ds, "NAMES_URLS", ["http://127.0.0.1:9/never-used/names.txt"])
    for var in ("CELIB_MNIST_DIR", "CELIB_NAMES_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-home-for-celib-tests")


@pytest.fixture
def names_root() -> Path:
    if REAL_NAMES_ROOT is None:
        pytest.skip("names.txt not available: set CELIB_NAMES_DIR or provide "
                    "../shared/data/names")
    return REAL_NAMES_ROOT


@pytest.fixture
def names_server(names_root: Path) -> Iterator[str]:
    """A local server whose '<mode>/names.txt' misbehaves as the MNIST server's files do."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files = {NAMES: (names_root / NAMES).read_bytes()}
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_real_file_matches_the_readme(names_root: Path) -> None:
    raw = (names_root / NAMES).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ds.NAMES_CHECKSUM
    names = load_names(root=names_root, download=False)
    assert len(names) == 32_033 and len(set(names)) == 29_494
    assert names[:3] == ["emma", "olivia", "ava"]
    assert min(map(len, names)) == 2 and max(map(len, names)) == 15
    assert set("".join(names)) == set("abcdefghijklmnopqrstuvwxyz")
    assert sum(len(n) + 1 for n in names) == 228_146  # the README's character pairs


def test_root_rules(names_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder named names beside $CELIB_MNIST_DIR, used only if it holds the file.
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv("CELIB_MNIST_DIR", str(tmp_path / "mnist"))
    with pytest.raises(FileNotFoundError, match=re.escape("(the default; pass root=, set "
                                                          "$CELIB_NAMES_DIR, or put a folder")):
        load_names(download=False)
    (tmp_path / "names").mkdir()
    shutil.copy(names_root / NAMES, tmp_path / "names" / NAMES)
    assert load_names(download=False)[0] == "emma"
    # $CELIB_NAMES_DIR comes first: an empty folder there is reported, not skipped.
    monkeypatch.setenv("CELIB_NAMES_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=re.escape("elsewhere (from $CELIB_NAMES_DIR)")):
        load_names(download=False)


def test_checksum_mismatch_is_refused_not_replaced(names_root: Path, tmp_path: Path) -> None:
    edited = (names_root / NAMES).read_bytes().replace(b"emma", b"emmy", 1)
    path = tmp_path / NAMES
    path.write_bytes(edited)
    with pytest.raises(MNISTError, match=problem(path, "sha256 mismatch: expected "
                                                       f"{ds.NAMES_CHECKSUM}, got ")):
        load_names(root=tmp_path, urls=["http://127.0.0.1:9/never-used"])
    assert path.read_bytes() == edited


def test_missing_file_offline_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"names file {NAMES} not found in {tmp_path} (the root argument); call with "
            "download=True to fetch it (from http://127.0.0.1:9/never-used/names.txt)")):
        load_names(root=tmp_path, download=False)
    assert listing(tmp_path) == []


def test_download_falls_back_and_lands(names_server: str, tmp_path: Path) -> None:
    root = tmp_path / "cache" / "names"
    urls = [f"{names_server}{mode}/{NAMES}" for mode in ("corrupt", "drop", "good")]
    assert len(load_names(root=root, urls=urls, progress=False)) == 32_033
    assert listing(root) == [NAMES]  # no temporary file left behind
    assert stat.S_IMODE((root / NAMES).stat().st_mode) == 0o644


def test_failed_download_writes_nothing(names_server: str, tmp_path: Path) -> None:
    root = tmp_path / "cache" / "names"
    urls = [f"{names_server}{mode}/{NAMES}" for mode in ("corrupt", "truncated", "missing")]
    with pytest.raises(NamesDownloadError) as info:
        load_names(root=root, urls=urls, progress=False)
    message = str(info.value)
    assert isinstance(info.value, MNISTDownloadError)
    assert [reason.split(":")[0] for _, reason in info.value.failures] == [
        "sha256 mismatch", "sha256 mismatch", "HTTP 404 Not Found"]
    assert message.startswith(f"{root / NAMES}: download failed from every URL:\n")
    assert message.endswith(f"nothing was written to {root}\nWithout a network, copy {NAMES} "
                            f"(from github.com/karpathy/makemore) into {root}, or set "
                            "CELIB_NAMES_DIR to a folder that holds it (a folder named names "
                            "beside $CELIB_MNIST_DIR is also found)")
    assert listing(tmp_path) == []  # not even the cache folders it created
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is NamesDownloadError and str(again) == message


def test_split_names_is_by_distinct_name_seeded_and_complete() -> None:
    names = [f"n{k % 37}" for k in range(200)]
    parts = split_names(names, (0.8, 0.1, 0.1), seed=3)
    assert sorted(sum(parts, [])) == sorted(names)
    assert [len(set(p)) for p in parts] == [30, 4, 3]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not set(parts[a]) & set(parts[b])
    assert split_names(names, (0.8, 0.1, 0.1), seed=3) == parts
    assert split_names(names[::-1], (0.8, 0.1, 0.1), seed=3)[1] == parts[1][::-1]
    assert split_names(names, (0.8, 0.1, 0.1), seed=4) != parts


def test_split_of_the_real_file(names_root: Path) -> None:
    train, val, test = split_names(load_names(root=names_root, download=False))
    assert (len(train), len(val), len(test)) == (25_608, 3_208, 3_217)
    assert [len(set(p)) for p in (train, val, test)] == [23_595, 2_949, 2_950]


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.0, 0.0), (), (0.5, float("nan"))])
def test_split_names_errors(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions must be positive and sum to 1, got "):
        split_names(["ann", "bo"], fractions)
