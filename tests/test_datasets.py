"""Tests for celib.datasets: the IDX parser, the MNIST checks, and the download path.

Nothing here touches the real network: downloads go to a local HTTP server on
127.0.0.1 that serves small crafted "MNIST" files (their checksums are patched
into ``CHECKSUMS``) and misbehaves on request. The real-data tests read the
shared read-only MNIST folder and are skipped when it is not available; so are the QMNIST
tests, which read the shared ``qmnist`` folder beside it (a corrupt copy is crafted from it).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import re
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import celib.datasets as ds
from celib.datasets import (MNISTDownloadError, MNISTError, QMNISTDownloadError, load_mnist,
                            load_mnist_labels, load_qmnist_test_writers, read_idx,
                            stratified_split)

REPO = Path(__file__).resolve().parent.parent
TEST_LABELS = "t10k-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"

# ----------------------------------------------------------------------------- helpers

DTYPE_BYTES = {
    np.dtype("uint8"): 0x08,
    np.dtype("int8"): 0x09,
    np.dtype("int16"): 0x0B,
    np.dtype("int32"): 0x0C,
    np.dtype("float32"): 0x0D,
    np.dtype("float64"): 0x0E,
}


def idx_bytes(array: np.ndarray, dtype_byte: int | None = None, extra: bytes = b"") -> bytes:
    """Serialise ``array`` as IDX (big-endian), optionally lying about the dtype byte."""
    dtype_byte = DTYPE_BYTES[array.dtype] if dtype_byte is None else dtype_byte
    header = bytes([0, 0, dtype_byte, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes() + extra


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)  # mtime=0: identical bytes every run


def flip_middle(data: bytes) -> bytes:
    """Corrupt a gzip stream inside its deflate data (gives zlib 'invalid distance')."""
    b = bytearray(data)
    for i in range(len(b) // 2, len(b) // 2 + 8):
        b[i] ^= 0xFF
    return bytes(b)


def fake_labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, n, dtype=np.uint8)


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def problem(path: Path | str, text: str) -> str:
    """Regex for an MNISTError message: the file path, then exactly this problem text."""
    return re.escape(f"{os.fspath(path)}: {text}")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fakes() -> dict[str, bytes]:
    """Decompressed bytes of small-but-valid crafted MNIST files (random content)."""
    images = (np.arange(10_000 * 28 * 28) % 251).astype(np.uint8).reshape(10_000, 28, 28)
    return {
        TEST_IMAGES: idx_bytes(images),
        TEST_LABELS: idx_bytes(fake_labels(10_000, 1)),
        TRAIN_LABELS: idx_bytes(fake_labels(60_000, 2)),
    }


@pytest.fixture(scope="module")
def fakes_gz(fakes: dict[str, bytes]) -> dict[str, bytes]:
    return {name: gz(data) for name, data in fakes.items()}


@pytest.fixture
def fake_checksums(monkeypatch: pytest.MonkeyPatch, fakes: dict[str, bytes]) -> None:
    """Make the crafted files the 'known good' ones."""
    for name, data in fakes.items():
        monkeypatch.setitem(ds.CHECKSUMS, name, hashlib.sha256(data).hexdigest())


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may fall back to the real mirrors or the user's cache by accident."""
    monkeypatch.setattr(ds, "MIRRORS", ["http://127.0.0.1:9/never-used/"])
    monkeypatch.setattr(ds, "QMNIST_URLS", ["http://127.0.0.1:9/never-used/qmnist.tsv.gz"])
    monkeypatch.delenv("CELIB_MNIST_DIR", raising=False)
    monkeypatch.delenv("CELIB_QMNIST_DIR", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-home-for-celib-tests")  # no user cache either


def _real_root() -> Path | None:
    env = os.environ.get("CELIB_MNIST_DIR")
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


REAL_ROOT = _real_root()  # read before the autouse fixture clears the variable


@pytest.fixture
def real_root() -> Path:
    if REAL_ROOT is None:
        pytest.skip(
            "real MNIST files not available: set CELIB_MNIST_DIR or provide ../shared/data/mnist"
        )
    return REAL_ROOT


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not delay teardown
    files: dict[str, bytes]
    release: threading.Event

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out or give up cause broken pipes; that is the point


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves /<mode>/<file>.gz where mode chooses a (mis)behaviour."""

    server: _Server

    def do_GET(self) -> None:
        mode, _, filename = self.path.strip("/").partition("/")
        body = self.server.files.get(filename.removesuffix(".gz"))
        if mode == "missing" or body is None:
            self.send_error(404, "Not Found")
            return
        if mode == "corrupt":
            body = flip_middle(body)
        elif mode == "truncated":  # a complete HTTP response of half a gzip file
            body = body[: len(body) // 2]
        elif mode == "badsum":  # valid gzip, valid IDX of the right shape, wrong content
            n = 10_000 if filename.startswith("t10k") else 60_000
            body = gz(idx_bytes(np.zeros((n, 28, 28) if "images" in filename else n, np.uint8)))
        self.send_response(200)
        if mode != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop":  # announce everything, send half, hang up
            self.wfile.write(body[: len(body) // 2])
        elif mode == "stall":  # send a little, then go silent until released
            self.wfile.write(body[:10])
            self.wfile.flush()
            self.server.release.wait(5)
        else:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(fakes_gz: dict[str, bytes]) -> Iterator[str]:
    """Base URL of a local HTTP server; append '<mode>/' to get a mirror."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files = fakes_gz
    httpd.release = threading.Event()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def refused_url() -> str:
    """A URL on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------- real data


def test_real_test_split(real_root: Path) -> None:
    images, labels = load_mnist("test", root=real_root, download=False)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert images.max() == 255 and images.min() == 0


def test_real_train_labels(real_root: Path) -> None:
    labels = load_mnist_labels("train", root=real_root, download=False)
    assert labels.shape == (60_000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]


@pytest.mark.parametrize("name", [TEST_IMAGES, TEST_LABELS, TRAIN_LABELS])
def test_real_checksums_match_table(real_root: Path, name: str) -> None:
    payload = gzip.decompress((real_root / f"{name}.gz").read_bytes())
    assert hashlib.sha256(payload).hexdigest() == ds.CHECKSUMS[name]


def test_real_env_var_root(real_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELIB_MNIST_DIR", str(real_root))
    assert load_mnist_labels("test", download=False)[:3].tolist() == [7, 2, 1]


def test_real_read_only_root_is_never_written(
    real_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    for name in (TEST_IMAGES, TEST_LABELS, TRAIN_LABELS):
        shutil.copy(real_root / f"{name}.gz", ro)
        (ro / f"{name}.gz").chmod(0o444)
    ro.chmod(0o555)
    before = {p.name: p.stat().st_mtime_ns for p in ro.iterdir()}

    # Permissions do not stop root (CI containers), so also make any download attempt fail loudly.
    def no_download(*args: object) -> None:
        raise AssertionError("tried to download into a read-only root")

    monkeypatch.setattr(ds, "_download", no_download)
    try:
        images, labels = load_mnist("test", root=ro, download=True, progress=False)
        assert load_mnist_labels("train", root=ro).shape == (60_000,)
        assert images.shape == (10_000, 28, 28) and labels[0] == 7
        assert {p.name: p.stat().st_mtime_ns for p in ro.iterdir()} == before
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", list(DTYPE_BYTES), ids=lambda d: d.name)
def test_read_idx_roundtrip(tmp_path: Path, dtype: np.dtype, compress: bool) -> None:
    array = (np.arange(24) - (0 if dtype == np.uint8 else 7)).astype(dtype).reshape(2, 3, 4)
    if dtype.kind == "f":
        array = array / 3  # values that need the full mantissa
    data = idx_bytes(array)
    path = tmp_path / "x-idx3"
    path.write_bytes(gz(data) if compress else data)
    got = read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative
    assert got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # a fresh writable array, not a view of the file bytes


def test_read_idx_one_dimensional_str_path(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1"
    path.write_bytes(idx_bytes(np.array([7, 2, 1], np.uint8)))
    assert read_idx(str(path)).tolist() == [7, 2, 1]


def test_read_idx_does_not_check_mnist_checksums(tmp_path: Path) -> None:
    path = tmp_path / f"{TEST_LABELS}.gz"  # an MNIST name, non-MNIST content
    path.write_bytes(gz(idx_bytes(np.zeros(5, np.uint8))))
    assert read_idx(path).tolist() == [0] * 5


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


LABELS_10 = idx_bytes(np.arange(10, dtype=np.uint8))


@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(
            b"\x00\x00",
            "truncated: 2 bytes, too short for the IDX magic number",
            id="shorter-than-magic",
        ),
        pytest.param(
            LABELS_10[:6],
            "truncated: header declares 1 dimension (8 header bytes), file has 6 bytes",
            id="cut-header",
        ),
        pytest.param(
            LABELS_10[:-3],
            "truncated: header says 10 items of 1 byte, found 7 bytes",
            id="truncated",
        ),
        pytest.param(
            idx_bytes(np.zeros((2, 3), np.int32))[:-1],
            "truncated: header says 6 items of 4 bytes, found 23 bytes",
            id="truncated-int32",
        ),
        pytest.param(
            LABELS_10 + b"xyz",
            "trailing bytes: header says 10 items of 1 byte (10), found 13 (3 extra)",
            id="trailing",
        ),
        pytest.param(
            b"\x01" + LABELS_10[1:],
            "bad magic 0x01000801: an IDX file starts with two zero bytes",
            id="magic-nonzero",
        ),
        pytest.param(
            idx_bytes(np.arange(10, dtype=np.uint8), dtype_byte=0x07),
            "unknown dtype byte 0x07 in magic 0x00000701 (known: 0x08 uint8, 0x09 int8, "
            "0x0b int16, 0x0c int32, 0x0d float32, 0x0e float64)",
            id="unknown-dtype-byte",
        ),
        pytest.param(flip_middle(gz(LABELS_10 * 300)), "corrupt gzip stream: ", id="corrupt-gzip"),
        pytest.param(gz(LABELS_10 * 300)[:-20], "truncated gzip stream (", id="truncated-gzip"),
    ],
)
def test_read_idx_errors(tmp_path: Path, data: bytes, text: str) -> None:
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(MNISTError, match=problem(path, text)) as info:
        read_idx(path)
    assert info.value.path == str(path) and info.value.problem.startswith(text)


# ------------------------------------------------------------------ MNIST checks on crafted files


def _labels_with_ten() -> bytes:
    labels = fake_labels(10_000, 1)
    labels[123] = 10
    return idx_bytes(labels)


def _crafted_cases(fakes: dict[str, bytes]) -> dict[str, tuple[str, bytes, str]]:
    """case id -> (file name, decompressed bytes to write gzipped, expected problem)."""
    good = fakes[TEST_LABELS]
    return {
        "truncated": (
            TEST_LABELS,
            good[:8] + good[8:4008],
            "truncated: header says 10000 items of 1 byte, found 4000 bytes",
        ),
        "trailing": (
            TEST_LABELS,
            good + b"\0" * 5,
            "trailing bytes: header says 10000 items of 1 byte (10000), found 10005 (5 extra)",
        ),
        "wrong-magic": (
            TEST_LABELS,
            idx_bytes(fake_labels(10_000, 1).reshape(10_000, 1)),
            "bad magic 0x00000802, expected 0x00000801 (dtype byte 0x08 = uint8, 2 dimensions; "
            "MNIST labels have dtype byte 0x08 = uint8, 1 dimension)",
        ),
        "images-as-labels": (
            TEST_LABELS,
            fakes[TEST_IMAGES],
            "bad magic 0x00000803, expected 0x00000801",
        ),
        "wrong-dtype-byte": (
            TEST_LABELS,
            idx_bytes(fake_labels(10_000, 1).astype(np.float32)),
            "bad magic 0x00000d01, expected 0x00000801 (dtype byte 0x0d = float32, 1 dimension;",
        ),
        "unknown-dtype-byte": (
            TEST_LABELS,
            idx_bytes(fake_labels(10, 1), dtype_byte=0x42),
            "bad magic 0x00004201, expected 0x00000801 (dtype byte 0x42 = unknown,",
        ),
        "wrong-dims": (
            TEST_IMAGES,
            idx_bytes(np.zeros((5, 27, 28), np.uint8)),
            "wrong image size: header says 27x28, expected 28x28",
        ),
        "wrong-count-labels": (
            TEST_LABELS,
            good[:4] + (9999).to_bytes(4, "big") + good[8:-1],
            "wrong record count: header says 9999, MNIST test has 10000",
        ),
        "wrong-count-images": (
            TEST_IMAGES,
            idx_bytes(np.zeros((3, 28, 28), np.uint8)),
            "wrong record count: header says 3, MNIST test has 10000",
        ),
        "wrong-count-train": (
            TRAIN_LABELS,
            good,
            "wrong record count: header says 10000, MNIST train has 60000",
        ),
        "label-10": (
            TEST_LABELS,
            _labels_with_ten(),
            "label value 10 at index 123 is outside 0..9",
        ),
        "short-file": (
            TEST_LABELS,
            b"\0\0",
            "truncated: 2 bytes, too short for the IDX magic number",
        ),
    }


CRAFTED_IDS = [
    "truncated", "trailing", "wrong-magic", "images-as-labels", "wrong-dtype-byte",
    "unknown-dtype-byte", "wrong-dims", "wrong-count-labels", "wrong-count-images",
    "wrong-count-train", "label-10", "short-file",
]  # fmt: skip


def _load(name: str, root: Path) -> object:
    split = "train" if name.startswith("train") else "test"
    if "images" in name:
        return load_mnist(split, root=root, download=False)
    return load_mnist_labels(split, root=root, download=False)


@pytest.mark.usefixtures("fake_checksums")
@pytest.mark.parametrize("case", CRAFTED_IDS)
def test_crafted_file_errors(tmp_path: Path, fakes: dict[str, bytes], case: str) -> None:
    name, data, text = _crafted_cases(fakes)[case]
    path = tmp_path / f"{name}.gz"
    path.write_bytes(gz(data))
    with pytest.raises(MNISTError, match=problem(path, text)):
        _load(name, tmp_path)


@pytest.mark.usefixtures("fake_checksums")
@pytest.mark.parametrize(
    ("mangle", "text"),
    [
        (flip_middle, "corrupt gzip stream: "),
        (lambda b: b[: len(b) // 2], "truncated gzip stream ("),
    ],
    ids=["corrupt-gzip", "truncated-gzip"],
)
def test_crafted_gzip_errors(
    tmp_path: Path, fakes_gz: dict[str, bytes], mangle: Callable[[bytes], bytes], text: str
) -> None:
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(mangle(fakes_gz[TEST_LABELS]))
    with pytest.raises(MNISTError, match=problem(path, text)):
        load_mnist_labels("test", root=tmp_path, download=False)


def test_checksum_mismatch_uses_real_table(
    tmp_path: Path, fakes_gz: dict[str, bytes], fakes: dict[str, bytes]
) -> None:
    # A structurally perfect labels file that simply is not MNIST's.
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(fakes_gz[TEST_LABELS])
    got = hashlib.sha256(fakes[TEST_LABELS]).hexdigest()
    want = ds.CHECKSUMS[TEST_LABELS]
    text = f"sha256 mismatch: expected {want}, got {got} (of the 10008 decompressed bytes)"
    with pytest.raises(MNISTError, match=problem(path, text)):
        load_mnist_labels("test", root=tmp_path, download=False)


@pytest.mark.usefixtures("fake_checksums")
def test_uncompressed_file_under_gz_name_is_accepted(
    tmp_path: Path, fakes: dict[str, bytes]
) -> None:
    (tmp_path / f"{TEST_LABELS}.gz").write_bytes(fakes[TEST_LABELS])
    assert (
        load_mnist_labels("test", root=tmp_path, download=False).tolist()
        == fake_labels(10_000, 1).tolist()
    )


def test_errors_are_value_errors_and_pickle() -> None:
    err = MNISTError("/x/t10k-labels-idx1-ubyte.gz", "truncated: whatever")
    assert isinstance(err, ValueError)
    assert str(err) == "/x/t10k-labels-idx1-ubyte.gz: truncated: whatever"
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), str(again), again.problem) == (MNISTError, str(err), err.problem)
    down = MNISTDownloadError("/c/f.gz", [("http://a/f.gz", "HTTP 404 Not Found")])
    again = pickle.loads(pickle.dumps(down))
    assert (
        type(again) is MNISTDownloadError
        and str(again) == str(down)
        and again.failures == down.failures
    )


def test_invalid_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        load_mnist("validation", root=tmp_path, download=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------- root resolution, download=False


def test_download_false_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_labels("test", root=root, download=False)
    message = str(info.value)
    assert f"not found in {root} (the root argument)" in message
    assert "download=True" in message and str(root / f"{TEST_LABELS}.gz") in message
    assert not root.exists()  # looking must not create anything


def test_env_var_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELIB_MNIST_DIR", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"not found in {tmp_path} (from $CELIB_MNIST_DIR)")
    ):
        load_mnist_labels("test", download=False)


def test_default_root_is_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CELIB_MNIST_DIR", "")  # empty counts as unset
    expected = tmp_path / ".cache" / "celib" / "mnist"
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"not found in {expected} (the default;")
    ):
        load_mnist("train", download=False)


# ----------------------------------------------------------------------------- downloads


@pytest.mark.usefixtures("fake_checksums")
def test_download_lands_in_cache_and_loads(
    tmp_path: Path, server: str, fakes: dict[str, bytes]
) -> None:
    root = tmp_path / "cache" / "mnist"  # does not exist yet
    images, labels = load_mnist("test", root=root, mirrors=[server + "good/"], progress=False)
    assert listing(root) == [f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"]
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == fake_labels(10_000, 1).tolist() and labels.dtype == np.int64
    assert stat.S_IMODE((root / f"{TEST_LABELS}.gz").stat().st_mode) == 0o644
    # Now cached: no mirror is needed any more.
    again_images, again_labels = load_mnist("test", root=root, download=False, mirrors=[])
    np.testing.assert_array_equal(again_images, images)
    np.testing.assert_array_equal(again_labels, labels)


@pytest.mark.usefixtures("fake_checksums")
def test_download_uses_module_mirrors_and_env_root(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ds, "MIRRORS", [server + "missing/", server + "good"])  # no trailing slash
    monkeypatch.setenv("CELIB_MNIST_DIR", str(tmp_path))
    assert load_mnist_labels("train", progress=False).shape == (60_000,)
    assert listing(tmp_path) == [f"{TRAIN_LABELS}.gz"]


BAD_MODES = ["corrupt", "truncated", "missing", "drop", "badsum", "stall", "refused"]


def reason(mode: str, gz_size: int) -> str:
    """What the download error must say about a mirror misbehaving in this way."""
    return {
        "corrupt": "corrupt gzip stream: ",
        "truncated": f"truncated gzip stream ({gz_size // 2} bytes): ",
        "missing": "HTTP 404 Not Found",
        "drop": f"connection closed after {gz_size // 2} of {gz_size} bytes (Content-Length)",
        "badsum": "sha256 mismatch: expected ",
        "stall": "TimeoutError: timed out",
        "refused": "cannot connect: ",
    }[mode]


def mirror(mode: str, server: str, refused_url: str) -> str:
    return refused_url if mode == "refused" else f"{server}{mode}/"


@pytest.mark.usefixtures("fake_checksums")
@pytest.mark.parametrize("mode", BAD_MODES)
def test_bad_first_mirror_falls_back_to_second(
    tmp_path: Path,
    server: str,
    refused_url: str,
    fakes_gz: dict[str, bytes],
    mode: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = mirror(mode, server, refused_url)
    labels = load_mnist_labels("test", root=tmp_path, mirrors=[bad, server + "good/"], timeout=0.5)
    assert labels.tolist() == fake_labels(10_000, 1).tolist()
    assert listing(tmp_path) == [f"{TEST_LABELS}.gz"]  # no temp file left by the failed attempt
    why = reason(mode, len(fakes_gz[TEST_LABELS]))
    lines = capsys.readouterr().err.split("\n")  # progress bars (if any) end with a newline
    assert any(line.startswith(f"{bad}{TEST_LABELS}.gz: {why}") for line in lines)


@pytest.mark.usefixtures("fake_checksums")
def test_all_mirrors_bad_lists_each_and_leaves_nothing(
    tmp_path: Path, server: str, refused_url: str, fakes_gz: dict[str, bytes]
) -> None:
    mirrors = [mirror(mode, server, refused_url) for mode in BAD_MODES]
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist_labels("test", root=tmp_path, mirrors=mirrors, progress=False, timeout=0.5)
    err = info.value
    assert isinstance(err, MNISTError) and isinstance(err, ValueError)
    urls = [m + f"{TEST_LABELS}.gz" for m in mirrors]
    assert [url for url, _ in err.failures] == urls
    message = str(err)
    assert message.startswith(f"{tmp_path / TEST_LABELS}.gz: download failed from every mirror:\n")
    for url, mode in zip(urls, BAD_MODES, strict=True):
        assert f"\n  - {url}: {reason(mode, len(fakes_gz[TEST_LABELS]))}" in message
    assert f"\nnothing was written to {tmp_path}\n" in message
    assert message.endswith(f"Without a network, copy the MNIST .gz files (this one is "
                            f"{TEST_LABELS}.gz) into {tmp_path}, or set CELIB_MNIST_DIR to a "
                            "folder that holds them")
    assert listing(tmp_path) == []


def test_a_failed_download_leaves_no_empty_cache_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "celib" / "mnist"
    with pytest.raises(MNISTDownloadError, match="nothing was written"):
        load_mnist_labels("test", root=cache, mirrors=[], progress=False)
    assert listing(tmp_path) == []  # the folders it created for the cache are gone too


@pytest.mark.usefixtures("fake_checksums")
@pytest.mark.parametrize("mode", ["corrupt", "drop", "badsum"])
def test_single_bad_images_mirror_leaves_empty_cache(
    tmp_path: Path, server: str, fakes_gz: dict[str, bytes], mode: str
) -> None:
    why = reason(mode, len(fakes_gz[TEST_IMAGES]))
    with pytest.raises(MNISTDownloadError, match=re.escape(f"{TEST_IMAGES}.gz: {why}")):
        load_mnist("test", root=tmp_path, mirrors=[f"{server}{mode}/"], progress=False)
    assert listing(tmp_path) == []


def test_no_mirrors(tmp_path: Path) -> None:
    with pytest.raises(
        MNISTDownloadError, match=re.escape("every mirror: (no mirrors were given)")
    ):
        load_mnist_labels("test", root=tmp_path, mirrors=[], progress=False)
    with pytest.raises(FileNotFoundError, match="to fetch it \\(from a mirror\\)"):
        load_mnist_labels("test", root=tmp_path, mirrors=[], download=False)


@pytest.mark.usefixtures("fake_checksums")
def test_corrupt_cached_file_is_reported_not_replaced(tmp_path: Path, server: str) -> None:
    path = tmp_path / f"{TEST_LABELS}.gz"
    path.write_bytes(b"\0\0\x08\x01garbage")
    with pytest.raises(MNISTError, match=problem(path, "truncated: header says")):
        load_mnist_labels("test", root=tmp_path, mirrors=[server + "good/"], progress=False)
    assert path.read_bytes() == b"\0\0\x08\x01garbage"


@pytest.mark.usefixtures("fake_checksums")
def test_progress_shown_when_enabled(
    tmp_path: Path, server: str, fakes_gz: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    load_mnist_labels("test", root=tmp_path, mirrors=[server + "good/"])
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.rstrip("\n").split("\r")[-1]
    size = f"{len(fakes_gz[TEST_LABELS]) / 1e3:.1f} kB"
    assert last == f"{TEST_LABELS}.gz [{'#' * 30}] {size}/{size} 100%"


@pytest.mark.usefixtures("fake_checksums")
def test_progress_without_content_length(
    tmp_path: Path, server: str, fakes_gz: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    load_mnist_labels("train", root=tmp_path, mirrors=[server + "nolength/"])
    size = f"{len(fakes_gz[TRAIN_LABELS]) / 1e3:.1f} kB"
    assert capsys.readouterr().err.rstrip("\n").split("\r")[-1] == f"{TRAIN_LABELS}.gz {size}"


@pytest.mark.usefixtures("fake_checksums")
def test_progress_absent_when_disabled(
    tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    load_mnist_labels(
        "test", root=tmp_path, mirrors=[server + "missing/", server + "good/"], progress=False
    )
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------------------- stratified_split


@st.composite
def labels_and_sizes(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    """Integer labels (some classes possibly rare) and part sizes adding up to at most N."""
    n_classes = draw(st.integers(1, 6))
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=1, max_size=120)))
    cuts = sorted(draw(st.lists(st.integers(0, len(labels)), min_size=1, max_size=4)))
    sizes = np.diff([0, *cuts]).tolist()
    return labels, sizes


@given(labels_and_sizes(), st.integers(0, 2**32 - 1))
def test_stratified_split_sizes_disjoint_sorted(case: tuple[np.ndarray, list[int]],
                                                seed: int) -> None:
    labels, sizes = case
    parts = stratified_split(labels, sizes, seed=seed)
    assert [len(p) for p in parts] == sizes                       # every size exact
    every = np.concatenate(parts)
    assert len(np.unique(every)) == len(every)                    # disjoint, no repeats
    assert every.size == 0 or (every.min() >= 0 and every.max() < len(labels))
    for part in parts:
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)  # sorted indices


@given(labels_and_sizes(), st.integers(0, 2**32 - 1))
def test_stratified_split_first_part_within_one_per_class(
        case: tuple[np.ndarray, list[int]], seed: int) -> None:
    labels, sizes = case
    first = stratified_split(labels, sizes, seed=seed)[0]
    share = np.bincount(labels) / len(labels)
    counts = np.bincount(labels[first], minlength=len(share))
    # Largest remainder rounds each class's quota size * share up or down: off by less than 1.
    assert np.all(np.abs(counts - sizes[0] * share) < 1)


@given(labels_and_sizes(), st.integers(0, 2**32 - 1))
def test_stratified_split_two_parts_of_everything(case: tuple[np.ndarray, list[int]],
                                                  seed: int) -> None:
    labels, sizes = case
    n = len(labels)
    k = sizes[0]
    parts = stratified_split(labels, [k, n - k], seed=seed)
    share = np.bincount(labels) / n
    for part, size in zip(parts, (k, n - k), strict=True):
        counts = np.bincount(labels[part], minlength=len(share))
        assert np.all(np.abs(counts - size * share) < 1)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def test_stratified_split_later_parts_are_within_two_not_one() -> None:
    # A part after the first is drawn in proportion to what the earlier parts left, so its
    # counts can miss the data's proportions by more than one example (here 1.2 for class 2).
    labels = np.array([0, 1, 2, 2, 2])
    parts = stratified_split(labels, [1, 1, 2], seed=0)
    counts = [np.bincount(labels[p], minlength=3).tolist() for p in parts]
    assert counts == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    assert abs(counts[2][2] - 2 * 3 / 5) > 1


def test_stratified_split_is_deterministic_and_seeded() -> None:
    labels = np.random.default_rng(0).integers(0, 10, 500)
    a = stratified_split(labels, [300, 150], seed=7)
    b = stratified_split(labels.tolist(), [300, 150], seed=7)   # a list works too
    c = stratified_split(labels, [300, 150], seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    # The class counts come from the data alone; only which examples is up to the seed.
    assert np.array_equal(np.bincount(labels[a[0]], minlength=10),
                          np.bincount(labels[c[0]], minlength=10))


def test_stratified_split_zero_sizes_and_one_class() -> None:
    labels = np.zeros(7, dtype=np.uint8)
    empty, rest = stratified_split(labels, [0, 7], seed=0)
    assert empty.dtype == np.int64 and empty.size == 0
    assert rest.tolist() == list(range(7))
    assert stratified_split(labels, [], seed=0) == ()


def test_stratified_split_mnist_test_file(real_root: Path) -> None:
    """The split chapter 7 (and the chapters after it) uses: 8,000 / 2,000 of the test file."""
    labels = load_mnist_labels("test", root=real_root, download=False)
    train, held = stratified_split(labels, [8000, 2000], seed=0)
    assert len(train) == 8000 and len(held) == 2000 and not np.intersect1d(train, held).size
    assert np.all(np.abs(np.bincount(labels[held]) - np.bincount(labels) / 5) < 1)
    # Both blocks of the file (first 5,000 and last 5,000) are represented in the held-out part.
    assert 900 < np.sum(held < 5000) < 1100


@pytest.mark.parametrize(
    ("labels", "sizes", "message"),
    [
        (np.zeros((3, 2), dtype=np.int64), [1], "1-d integer array"),
        (np.array([0.0, 1.0, 1.0]), [1], "1-d integer array"),
        (np.array([True, False]), [1], "1-d integer array"),
        (np.array([0, 1, 1]), [-1, 2], "non-negative"),
        (np.array([0, 1, 1]), [2, 2], "at most 3"),
    ],
)
def test_stratified_split_errors(labels: np.ndarray, sizes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_split(labels, sizes, seed=0)


# ----------------------------------------------------------------------------- QMNIST

QMNIST = "qmnist-test-labels.tsv.gz"
QMNIST_GZ_SHA256 = "fe2001449c9580376e16fad7a14cc4f525644b6ffeadc47dc249938529002904"  # README


def _real_qmnist_root() -> Path | None:
    env = os.environ.get("CELIB_QMNIST_DIR")
    candidates = [Path(env)] if env else []
    candidates += [root.parent / "qmnist" for root in [REAL_ROOT] if root is not None]
    candidates.append(REPO.parent / "shared" / "data" / "qmnist")
    return next((c for c in candidates if (c / QMNIST).is_file()), None)


REAL_QMNIST_ROOT = _real_qmnist_root()


@pytest.fixture
def qmnist_root() -> Path:
    if REAL_QMNIST_ROOT is None:
        pytest.skip("QMNIST file not available: set CELIB_QMNIST_DIR or provide "
                    "../shared/data/qmnist")
    return REAL_QMNIST_ROOT


@pytest.fixture
def qmnist_server(qmnist_root: Path) -> Iterator[str]:
    """A local server whose '<mode>/qmnist-test-labels.tsv.gz' misbehaves as for MNIST."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files = {QMNIST.removesuffix(".gz"): (qmnist_root / QMNIST).read_bytes()}
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_qmnist_checksums_match_the_readme(qmnist_root: Path) -> None:
    raw = (qmnist_root / QMNIST).read_bytes()
    assert len(raw) == 478_170 and hashlib.sha256(raw).hexdigest() == QMNIST_GZ_SHA256
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == ds.QMNIST_CHECKSUM


def test_qmnist_rows_as_chapter_7_uses_them(qmnist_root: Path, real_root: Path) -> None:
    w = load_qmnist_test_writers(root=qmnist_root, download=False)
    assert all(a.shape == (10_000,) and a.dtype == np.int64 for a in w)
    np.testing.assert_array_equal(w.digit, load_mnist_labels("test", real_root, download=False))
    np.testing.assert_array_equal(w.nist_class, 30 + w.digit)  # 30-39: the digit's ASCII code
    first, second = slice(0, 5000), slice(5000, 10_000)
    assert np.all(w.series[first] == 4)  # the high-school students
    assert (w.writer[first].min(), w.writer[first].max()) == (2351, 2599)
    assert np.bincount(w.series[second]).tolist() == [4999, 0, 0, 0, 1]
    assert (w.writer[second].min(), w.writer[second].max()) == (326, 2387)
    assert np.flatnonzero(w.series[second] == 4).tolist() == [0]  # row 5,000, writer 2387
    census = w.writer[second][w.series[second] == 0]
    assert (census.min(), census.max(), len(np.unique(census))) == (326, 373, 48)
    assert len(np.unique(w.writer[first])) == 249


def test_qmnist_root_rules(qmnist_root: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder named qmnist beside $CELIB_MNIST_DIR, used only if it holds the file.
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv("CELIB_MNIST_DIR", str(tmp_path / "mnist"))
    with pytest.raises(FileNotFoundError, match=re.escape("(the default; pass root=")):
        load_qmnist_test_writers(download=False)
    (tmp_path / "qmnist").mkdir()
    shutil.copy(qmnist_root / QMNIST, tmp_path / "qmnist" / QMNIST)
    assert load_qmnist_test_writers(download=False).series[0] == 4
    # $CELIB_QMNIST_DIR comes first: an empty folder there is reported, not skipped.
    monkeypatch.setenv("CELIB_QMNIST_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=re.escape("elsewhere (from $CELIB_QMNIST_DIR)")):
        load_qmnist_test_writers(download=False)


def test_qmnist_corrupt_file_is_refused_not_replaced(qmnist_root: Path, tmp_path: Path) -> None:
    payload = bytearray(gzip.decompress((qmnist_root / QMNIST).read_bytes()))
    payload[0:1] = b"1"  # image 0 relabelled: the digit 7 becomes 1, still a valid table
    path = tmp_path / QMNIST
    path.write_bytes(gz(bytes(payload)))
    with pytest.raises(MNISTError, match=problem(path, "sha256 mismatch: expected "
                                                       f"{ds.QMNIST_CHECKSUM}, got ")):
        load_qmnist_test_writers(root=tmp_path, urls=["http://127.0.0.1:9/never-used"])
    assert path.read_bytes() == gz(bytes(payload))
    path.write_bytes(flip_middle((qmnist_root / QMNIST).read_bytes()))
    with pytest.raises(MNISTError, match=problem(path, "corrupt gzip stream: ")):
        load_qmnist_test_writers(root=tmp_path, download=False)


def test_qmnist_download_falls_back_and_lands(qmnist_server: str, tmp_path: Path) -> None:
    root = tmp_path / "cache" / "qmnist"
    urls = [f"{qmnist_server}{mode}/{QMNIST}" for mode in ("corrupt", "badsum", "good")]
    w = load_qmnist_test_writers(root=root, urls=urls, progress=False)
    assert w.series[:5000].tolist() == [4] * 5000
    assert listing(root) == [QMNIST]  # no temporary file left behind
    assert stat.S_IMODE((root / QMNIST).stat().st_mode) == 0o644


def test_qmnist_download_failure_says_what_to_copy_where(qmnist_server: str,
                                                         tmp_path: Path) -> None:
    root = tmp_path / "cache" / "qmnist"
    urls = [f"{qmnist_server}{mode}/{QMNIST}" for mode in ("corrupt", "drop", "missing")]
    with pytest.raises(QMNISTDownloadError) as info:
        load_qmnist_test_writers(root=root, urls=urls, progress=False)
    message = str(info.value)
    assert isinstance(info.value, MNISTDownloadError) and info.value.failures[2][1] == (
        "HTTP 404 Not Found")
    assert message.startswith(f"{root / QMNIST}: download failed from every URL:\n")
    assert "sha256" not in message and "corrupt gzip stream" in message
    assert message.endswith(f"nothing was written to {root}\nWithout a network, copy {QMNIST} "
                            f"(from github.com/facebookresearch/qmnist) into {root}, or set "
                            "CELIB_QMNIST_DIR to a folder that holds it (a folder named qmnist "
                            "beside $CELIB_MNIST_DIR is also found)")
    assert listing(tmp_path) == []  # not even the cache folders it created
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is QMNISTDownloadError and str(again) == message


def test_qmnist_download_false_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"QMNIST file {QMNIST} not found in {tmp_path} (the root argument); call with "
            "download=True to fetch it (from http://127.0.0.1:9/never-used/qmnist.tsv.gz)")):
        load_qmnist_test_writers(root=tmp_path, download=False)
    assert listing(tmp_path) == []
