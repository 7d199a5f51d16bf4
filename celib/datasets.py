"""MNIST, read straight from its original IDX files.

Chapter 7 ("The MNIST label-index question", ``book/07_mnist_labels.ipynb``)
uses this module to load the MNIST test split and the training labels, so that
its claims about class indices are made about the real data.

The loader parses the IDX format itself (numpy and the standard library only)
and trusts nothing: every file is checked against its header, against the
shapes MNIST is known to have, and against the sha256 of its decompressed
payload. A file that is missing is downloaded from public mirrors into a
temporary file that only becomes visible in the cache once it has passed those
checks, so an interrupted or corrupt download never leaves anything behind.

Files are looked for in, in order: the ``root`` argument, the directory named
by the environment variable ``CELIB_MNIST_DIR``, and ``~/.cache/celib/mnist``.
The directory holds the four files directly, under their original names
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``); it may be
read-only, since nothing is written to it when the files are already there.

:func:`load_qmnist_test_writers` reads, with the same checks, QMNIST's table of who wrote
each MNIST test image (from ``$CELIB_QMNIST_DIR``, a folder named ``qmnist`` beside
``$CELIB_MNIST_DIR``, or ``~/.cache/celib/qmnist``).

:func:`load_names` reads, with the same checks, makemore's ``names.txt`` for chapter 10
("Beyond one label", ``book/10_beyond_one_label.ipynb``), from ``$CELIB_NAMES_DIR``, a folder
named ``names`` beside ``$CELIB_MNIST_DIR``, or ``~/.cache/celib/names``; :func:`split_names`
splits it, seeded, by distinct name.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple, Union

import numpy as np

__all__ = [
    "CHECKSUMS",
    "MIRRORS",
    "MNISTDownloadError",
    "MNISTError",
    "QMNIST_CHECKSUM",
    "QMNIST_URLS",
    "QMNISTDownloadError",
    "QMNISTTestWriters",
    "load_mnist",
    "load_mnist_labels",
    "load_qmnist_test_writers",
    "NAMES_CHECKSUM",
    "NAMES_URLS",
    "NamesDownloadError",
    "load_names",
    "split_names",
    "read_idx",
    "stratified_split",
]

StrPath = Union[str, "os.PathLike[str]"]
Split = Literal["train", "test"]

#: Mirrors tried in order; each holds the four ``.gz`` files under their usual names.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: sha256 of the *decompressed* IDX payloads. The mirrors wrap the same bytes in
#: different gzip headers (timestamps), so checksums of the ``.gz`` files would differ.
CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Environment variable naming the directory that holds the MNIST files.
ENV_VAR = "CELIB_MNIST_DIR"
#: Seconds a socket may stay silent before a download attempt gives up.
TIMEOUT = 30.0

_DEFAULT_ROOT = Path("~/.cache/celib/mnist")
_PREFIX = {"train": "train", "test": "t10k"}
_RECORDS = {"train": 60_000, "test": 10_000}
_MAGIC = {"labels": 0x00000801, "images": 0x00000803}
_IMAGE_SHAPE = (28, 28)
_CHUNK = 1 << 16
_USER_AGENT = "celib (Cross-Entropy, Executed; MNIST loader)"

# IDX dtype byte -> numpy dtype; multi-byte values are stored big-endian.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class MNISTError(ValueError):
    """An IDX/MNIST file (or a download of one) is not what it should be.

    Parameters
    ----------
    path : str
        The file or URL the problem was found in.
    problem : str
        What exactly is wrong, e.g. ``"truncated: ..."`` or ``"sha256 mismatch: ..."``.

    Notes
    -----
    ``str(error)`` is ``"<path>: <problem>"``; both parts are also attributes.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # The default pickling would call __init__ with the formatted message only.
        return (type(self), (self.path, self.problem))


def _not_found(data_set: str, path: Path, why: str, source: str) -> FileNotFoundError:
    """The error for a missing file with ``download=False``: where it was looked for, and the
    two ways to get it."""
    return FileNotFoundError(
        errno.ENOENT,
        f"{data_set} file {path.name} not found in {path.parent} ({why}); call with "
        f"download=True to fetch it (from {source}), or copy it there yourself",
        str(path),
    )


def _failure_message(failures: list[tuple[str, str]], source: str, folder: Path,
                     todo: str) -> str:
    """What a failed download says: each ``source`` (mirror, URL) tried and why it failed,
    that nothing was written, and what to do without a network."""
    listing = "".join(f"\n  - {url}: {reason}" for url, reason in failures)
    return (f"download failed from every {source}:{listing or f' (no {source}s were given)'}"
            f"\nnothing was written to {folder}{todo}")


class MNISTDownloadError(MNISTError):
    """No mirror delivered a file that passed the checks.

    Parameters
    ----------
    path : str
        The cache path the file would have been saved under.
    failures : sequence of (str, str)
        One ``(url, reason)`` pair per mirror tried, in order.
    """

    def __init__(self, path: str, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        folder = Path(path).parent
        todo = (f"\nWithout a network, copy the MNIST .gz files (this one is {Path(path).name})"
                f" into {folder}, or set {ENV_VAR} to a folder that holds them")
        super().__init__(path, _failure_message(self.failures, "mirror", folder, todo))

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.path, self.failures))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _describe_magic(magic: int) -> str:
    dtype = _DTYPES.get((magic >> 8) & 0xFF)
    kind = dtype.newbyteorder("=").name if dtype is not None else "unknown"
    return f"dtype byte 0x{(magic >> 8) & 0xFF:02x} = {kind}, {_plural(magic & 0xFF, 'dimension')}"


def _decompress(raw: bytes, where: str) -> bytes:
    """Return ``raw`` gunzipped if it is gzip data, unchanged otherwise."""
    # Sniff rather than trust the file name: an IDX file starts with 0x00, gzip with 0x1f 0x8b.
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise MNISTError(where, f"truncated gzip stream ({len(raw)} bytes): {exc}") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise MNISTError(where, f"corrupt gzip stream: {exc}") from exc


def _parse_idx(data: bytes, where: str) -> np.ndarray:
    """Parse decompressed IDX bytes into a native-endian array, checking every length."""
    if len(data) < 4:
        raise MNISTError(
            where, f"truncated: {_plural(len(data), 'byte')}, too short for the IDX magic number"
        )
    magic = int.from_bytes(data[:4], "big")
    if data[0] or data[1]:
        raise MNISTError(where, f"bad magic 0x{magic:08x}: an IDX file starts with two zero bytes")
    dtype = _DTYPES.get(data[2])
    if dtype is None:
        known = ", ".join(f"0x{b:02x} {d.newbyteorder('=').name}" for b, d in _DTYPES.items())
        raise MNISTError(
            where, f"unknown dtype byte 0x{data[2]:02x} in magic 0x{magic:08x} (known: {known})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTError(
            where,
            f"truncated: header declares {_plural(ndim, 'dimension')} ({header} header bytes), "
            f"file has {_plural(len(data), 'byte')}",
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    count = math.prod(shape)
    expected, found = count * dtype.itemsize, len(data) - header
    says = f"header says {_plural(count, 'item')} of {_plural(dtype.itemsize, 'byte')}"
    if found < expected:
        raise MNISTError(where, f"truncated: {says}, found {_plural(found, 'byte')}")
    if found > expected:
        raise MNISTError(
            where, f"trailing bytes: {says} ({expected}), found {found} ({found - expected} extra)"
        )
    # astype copies: the result is writable and native-endian, not a view of `data`.
    return np.frombuffer(data, dtype, count, header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: StrPath) -> np.ndarray:
    """Read any IDX file, gzip-compressed or raw, into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip data is recognised by its first two bytes, not by the name.

    Returns
    -------
    numpy.ndarray
        Shape as declared in the header; dtype from the header's dtype byte
        (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
        0x0E float64), converted to native byte order.

    Raises
    ------
    MNISTError
        Corrupt or truncated gzip stream, bad magic number, unknown dtype byte,
        or a payload shorter (truncated) or longer (trailing bytes) than the
        header declares. The message names the file and the problem.
    FileNotFoundError
        If ``path`` does not exist.

    Notes
    -----
    No checksum is verified, so this also reads IDX files that are not MNIST;
    :func:`load_mnist` adds the MNIST-specific checks. Explained in chapter 7 (The MNIST label-index
    question, book/07_mnist_labels.ipynb), which reads a label file byte by byte.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> header = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big")  # uint8, 1-D, 3 items
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "tiny-labels-idx1-ubyte.gz")
    ...     with gzip.open(path, "wb") as f:
    ...         _ = f.write(header + bytes([7, 2, 1]))
    ...     print(read_idx(path))
    [7 2 1]
    """
    where = os.fspath(path)
    return _parse_idx(_decompress(Path(path).read_bytes(), where), where)


def _file_name(split: str, kind: str) -> str:
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return f"{_PREFIX[split]}-{kind}-idx{1 if kind == 'labels' else 3}-ubyte"


def _verify_mnist(data: bytes, split: str, kind: str, where: str) -> np.ndarray:
    """Parse decompressed bytes of one MNIST file and check everything known about it."""
    expected_magic = _MAGIC[kind]
    magic = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and magic != expected_magic:  # shorter: _parse_idx reports the truncation
        raise MNISTError(
            where,
            f"bad magic 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({_describe_magic(magic)}; MNIST {kind} have {_describe_magic(expected_magic)})",
        )
    array = _parse_idx(data, where)
    if kind == "images" and array.shape[1:] != _IMAGE_SHAPE:
        got, want = ("x".join(map(str, s)) for s in (array.shape[1:], _IMAGE_SHAPE))
        raise MNISTError(where, f"wrong image size: header says {got}, expected {want}")
    if array.shape[0] != _RECORDS[split]:
        raise MNISTError(
            where,
            f"wrong record count: header says {array.shape[0]}, "
            f"MNIST {split} has {_RECORDS[split]}",
        )
    if kind == "labels" and array.max() > 9:  # the record count above rules out empty
        index = int(np.argmax(array > 9))
        raise MNISTError(where, f"label value {array[index]} at index {index} is outside 0..9")
    name = _file_name(split, kind)
    want_sha, got_sha = CHECKSUMS[name], hashlib.sha256(data).hexdigest()
    if got_sha != want_sha:
        raise MNISTError(
            where,
            f"sha256 mismatch: expected {want_sha}, got {got_sha} "
            f"(of the {len(data)} decompressed bytes)",
        )
    return array


def _resolve_root(root: StrPath | None) -> tuple[Path, str]:
    """The directory to use, and why it was chosen (for error messages)."""
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"from ${ENV_VAR}"
    return _DEFAULT_ROOT.expanduser(), f"the default; pass root= or set ${ENV_VAR} to change it"


def _draw_progress(label: str, done: int, total: int | None) -> None:
    def size(n: int) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"

    if total:
        filled = min(30, 30 * done // total)
        line = f"{label} [{'#' * filled:<30}] {size(done)}/{size(total)} {100 * done // total:3d}%"
    else:
        line = f"{label} {size(done)}"
    sys.stderr.write("\r" + line)
    sys.stderr.flush()


def _fetch(url: str, out: BinaryIO, label: str, progress: bool, timeout: float) -> None:
    """Copy ``url`` into ``out``; raise if fewer bytes arrive than Content-Length announced."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None else None
        done = 0
        if progress:
            _draw_progress(label, done, total)
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    _draw_progress(label, done, total)
        finally:
            if progress:
                sys.stderr.write("\n")
    # http.client returns b"" when the peer closes early instead of raising, so count.
    if total is not None and done != total:
        raise MNISTError(url, f"connection closed after {done} of {total} bytes (Content-Length)")


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, MNISTError):
        return exc.problem
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _download(
    split: str, kind: str, root: Path, mirrors: Sequence[str], progress: bool, timeout: float
) -> Path:
    """Fetch one MNIST file into ``root``, trying each mirror; publish it once verified."""
    filename = _file_name(split, kind) + ".gz"
    urls = [mirror.rstrip("/") + "/" + filename for mirror in mirrors]

    def verify(raw: bytes, url: str) -> None:
        _verify_mnist(_decompress(raw, url), split, kind, url)

    return _download_verified(root / filename, urls, verify, progress, timeout,
                              MNISTDownloadError)


def _download_verified(
    target: Path,
    urls: Sequence[str],
    verify: Callable[[bytes, str], object],
    progress: bool,
    timeout: float,
    error: Callable[[str, list[tuple[str, str]]], MNISTError],
) -> Path:
    """Fetch ``target`` from each URL in turn; publish it (atomically) once ``verify`` passed."""
    root, filename = target.parent, target.name
    created = [folder for folder in (root, *root.parents) if not folder.exists()]
    root.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    for attempt, url in enumerate(urls, 1):
        # Same directory as the target so os.replace is an atomic rename; the dot
        # prefix keeps it out of casual listings should the process be killed.
        fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, filename, progress, timeout)
            verify(tmp.read_bytes(), url)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a data cache should be readable
            os.replace(tmp, target)
            return target
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append((url, _describe_failure(exc)))
            if progress and attempt < len(urls):
                print(f"{url}: {failures[-1][1]}; trying the next mirror", file=sys.stderr)
        finally:
            tmp.unlink(missing_ok=True)  # after a success it is already gone
    for folder in created:  # innermost first: leave no empty cache folder behind
        with contextlib.suppress(OSError):
            folder.rmdir()
    raise error(str(target), failures)


def _load(
    split: str,
    kind: str,
    root: StrPath | None,
    download: bool,
    mirrors: Sequence[str] | None,
    progress: bool,
    timeout: float,
) -> np.ndarray:
    filename = _file_name(split, kind) + ".gz"
    directory, why = _resolve_root(root)
    path = directory / filename
    if not path.is_file():
        mirrors = MIRRORS if mirrors is None else mirrors
        if not download:
            raise _not_found("MNIST", path, why, mirrors[0] if mirrors else "a mirror")
        path = _download(split, kind, directory, mirrors, progress, timeout)
    return _verify_mnist(_decompress(path.read_bytes(), str(path)), split, kind, str(path))


def load_mnist(
    split: Split = "train",
    root: StrPath | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one MNIST split, verified, downloading missing files if allowed.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        ``"train"`` (60,000 examples) or ``"test"`` (10,000 examples).
    root : str or os.PathLike, optional
        Directory holding the ``.gz`` files. Defaults to ``$CELIB_MNIST_DIR``,
        then ``~/.cache/celib/mnist``.
    download : bool, default True
        Whether to download files that are missing from ``root``.
    mirrors : sequence of str, optional
        Base URLs to try in order; defaults to :data:`MIRRORS`.
    progress : bool, default True
        Show a progress bar on stderr while downloading.
    timeout : float, default 30.0
        Socket timeout in seconds for each download attempt.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape ``(N, 28, 28)``; pixel 0 is background, 255 is ink.
    labels : numpy.ndarray
        int64, shape ``(N,)``, values 0..9 (class index k is the digit k).

    Raises
    ------
    MNISTError
        A file is corrupt: bad gzip stream, wrong magic number, truncated or
        with trailing bytes, wrong image size or record count, a label outside
        0..9, or a sha256 mismatch. :class:`MNISTDownloadError` (a subclass)
        if every mirror failed; it lists each mirror and why.
    FileNotFoundError
        If a file is missing and ``download`` is False.
    ValueError
        If ``split`` is not ``"train"`` or ``"test"``.

    Notes
    -----
    Every load checks the sha256 of the decompressed payload against
    :data:`CHECKSUMS`. A corrupt file already in ``root`` is reported, not
    replaced: delete it to have it downloaded again. Nothing is written to
    ``root`` when the files are present, so it may be read-only. Downloads go
    to a temporary file in ``root`` that is renamed into place only after it
    passed every check and is deleted on any failure. Explained in chapter 7 (The MNIST label-index
    question, book/07_mnist_labels.ipynb).

    Examples
    --------
    >>> images, labels = load_mnist("test")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape, labels.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'), (10000,), dtype('int64'))
    >>> labels[:10]  # doctest: +SKIP
    array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    """
    # Images first: they are the file most likely to be missing offline.
    images = _load(split, "images", root, download, mirrors, progress, timeout)
    return images, load_mnist_labels(
        split, root, download, mirrors=mirrors, progress=progress, timeout=timeout
    )


def load_mnist_labels(
    split: Split = "train",
    root: StrPath | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> np.ndarray:
    """Load only the labels of one MNIST split (no image file needed).

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        Which split.
    root, download, mirrors, progress, timeout
        As in :func:`load_mnist`.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(60000,)`` or ``(10000,)``, values 0..9.

    Raises
    ------
    MNISTError
        As in :func:`load_mnist`.
    FileNotFoundError
        If the file is missing and ``download`` is False.
    ValueError
        If ``split`` is not ``"train"`` or ``"test"``.

    Notes
    -----
    Useful offline, where the 60,000 training labels are at hand but the
    training images are not. Explained in chapter 7 (The MNIST label-index question,
    book/07_mnist_labels.ipynb).

    Examples
    --------
    >>> labels = load_mnist_labels("train")  # doctest: +SKIP
    >>> np.bincount(labels)  # doctest: +SKIP
    array([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    """
    return _load(split, "labels", root, download, mirrors, progress, timeout).astype(np.int64)


# ----------------------------------------------------------------------------- QMNIST

#: The QMNIST file that holds, for each MNIST test image, its NIST writer and series.
QMNIST_FILE = "qmnist-test-labels.tsv.gz"
#: Where it is downloaded from, in order: QMNIST's repository at a fixed commit, then its head.
QMNIST_URLS: list[str] = [
    "https://raw.githubusercontent.com/facebookresearch/qmnist/"
    "94061367ec2e099ea18c553c75727ecf849ddb9b/qmnist-test-labels.tsv.gz",
    "https://raw.githubusercontent.com/facebookresearch/qmnist/master/qmnist-test-labels.tsv.gz",
]
#: sha256 of the decompressed tab-separated payload (that of the .gz file as published is
#: fe2001449c9580376e16fad7a14cc4f525644b6ffeadc47dc249938529002904).
QMNIST_CHECKSUM = "eb655936ef35473cf5b3df22bcb474433a6211ecdffd3ff670651f3167bdf6b6"
#: Environment variable naming the directory that holds :data:`QMNIST_FILE`.
QMNIST_ENV_VAR = "CELIB_QMNIST_DIR"

_QMNIST_DEFAULT_ROOT = Path("~/.cache/celib/qmnist")
_QMNIST_SHAPE = (60_000, 8)  # QMNIST's 60,000 test digits, 8 integer columns


def _offline_hint(file: str, source: str, folder: Path, env_var: str, sibling: str) -> str:
    """What to do without a network, for a data file found beside MNIST's folder."""
    return (f"\nWithout a network, copy {file} (from {source}) into {folder}, or set {env_var} "
            f"to a folder that holds it (a folder named {sibling} beside ${ENV_VAR} is also "
            f"found)")


class QMNISTDownloadError(MNISTDownloadError):
    """No URL delivered a QMNIST file that passed the checks.

    Parameters
    ----------
    path : str
        The path the file would have been saved under.
    failures : sequence of (str, str)
        One ``(url, reason)`` pair per URL tried, in order.
    """

    def __init__(self, path: str, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        todo = _offline_hint(QMNIST_FILE, "github.com/facebookresearch/qmnist", Path(path).parent,
                             QMNIST_ENV_VAR, "qmnist")
        MNISTError.__init__(self, path,
                            _failure_message(self.failures, "URL", Path(path).parent, todo))


class QMNISTTestWriters(NamedTuple):
    """Who wrote each MNIST test image: QMNIST's columns 0-5 for the first 10,000 rows.

    Every field is an int64 array of shape ``(10000,)``, in the order of MNIST's test file.
    """

    digit: np.ndarray
    """The digit, equal to MNIST's test label (column 0)."""
    series: np.ndarray
    """The NIST HSF series, 0 or 4 here (column 1)."""
    writer: np.ndarray
    """The NIST writer ID (column 2)."""
    writer_digit: np.ndarray
    """The index of this digit among its writer's digits (column 3)."""
    nist_class: np.ndarray
    """NIST's class code, 30-39: ASCII of the digit (column 4)."""
    nist_index: np.ndarray
    """The global index of the digit in NIST (column 5)."""


def _verify_qmnist(data: bytes, where: str) -> np.ndarray:
    """Check decompressed QMNIST bytes against the checksum, then parse the table."""
    got_sha = hashlib.sha256(data).hexdigest()
    if got_sha != QMNIST_CHECKSUM:
        raise MNISTError(
            where,
            f"sha256 mismatch: expected {QMNIST_CHECKSUM}, got {got_sha} "
            f"(of the {len(data)} decompressed bytes)",
        )
    table = np.array(data.split(), dtype=np.int64)
    if table.size != math.prod(_QMNIST_SHAPE):
        raise MNISTError(where, f"{table.size} numbers, expected {_QMNIST_SHAPE[0]} rows "
                         f"of {_QMNIST_SHAPE[1]}")
    return table.reshape(_QMNIST_SHAPE)


def _resolve_beside_mnist(root: StrPath | None, env_var: str, folder: str, filename: str,
                          default: Path) -> tuple[Path, str]:
    """The directory of a data set kept beside MNIST's, and why it was chosen: ``root``, then
    ``$env_var``, then a folder named ``folder`` beside ``$CELIB_MNIST_DIR`` if it holds
    ``filename``, then ``default``."""
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"from ${env_var}"
    if os.environ.get(ENV_VAR):
        sibling = Path(os.environ[ENV_VAR]).expanduser().parent / folder
        if (sibling / filename).is_file():
            return sibling, f"the folder beside ${ENV_VAR}"
    return (default.expanduser(),
            f"the default; pass root=, set ${env_var}, or put a folder named {folder} "
            f"holding the file beside ${ENV_VAR}")


def _resolve_qmnist_root(root: StrPath | None) -> tuple[Path, str]:
    """The directory to use for QMNIST, and why it was chosen (for error messages)."""
    return _resolve_beside_mnist(root, QMNIST_ENV_VAR, "qmnist", QMNIST_FILE,
                                 _QMNIST_DEFAULT_ROOT)


def load_qmnist_test_writers(
    root: StrPath | None = None,
    download: bool = True,
    *,
    urls: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> QMNISTTestWriters:
    """Load the NIST writer and series of each MNIST test image, from QMNIST.

    QMNIST (Yadav and Bottou, "Cold Case: The Lost MNIST Digits", NeurIPS 2019) traced every
    MNIST test image back to its NIST source. Its file ``qmnist-test-labels.tsv.gz`` has one
    row per QMNIST test digit; the first 10,000 rows are MNIST's test images, in order.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Directory holding ``qmnist-test-labels.tsv.gz``. Defaults to ``$CELIB_QMNIST_DIR``,
        then a folder named ``qmnist`` beside ``$CELIB_MNIST_DIR`` if it holds the file, then
        ``~/.cache/celib/qmnist``.
    download : bool, default True
        Whether to download the file if it is missing from ``root``.
    urls : sequence of str, optional
        Full URLs of the file to try in order; defaults to :data:`QMNIST_URLS`.
    progress : bool, default True
        Show a progress bar on stderr while downloading.
    timeout : float, default 30.0
        Socket timeout in seconds for each download attempt.

    Returns
    -------
    QMNISTTestWriters
        Named int64 arrays of shape ``(10000,)``: ``digit`` (equal to MNIST's test labels),
        ``series`` (NIST HSF series), ``writer`` (NIST writer ID), ``writer_digit``,
        ``nist_class`` and ``nist_index``.

    Raises
    ------
    MNISTError
        The file is corrupt: bad gzip stream, or a sha256 mismatch of its decompressed
        payload against :data:`QMNIST_CHECKSUM`. :class:`QMNISTDownloadError` (a subclass)
        if every URL failed; it lists each URL and why, and says what to copy where.
    FileNotFoundError
        If the file is missing and ``download`` is False.

    Notes
    -----
    The checks and the download are those of :func:`load_mnist`: every load verifies the
    checksum; a download goes to a temporary file in ``root``, renamed into place only after
    it passed, and deleted on any failure (with any cache folder it created). A corrupt file
    already in ``root`` is reported, not replaced. The file is BSD-licensed by its authors.

    In MNIST's test file, rows 0-4,999 are all NIST series 4 (writers 2351-2599, high-school
    students), and rows 5,000-9,999 are 4,999 digits of series 0 and one of series 4 (writers
    326-2387): the opposite of the order given on MNIST's web page. Explained in chapter 7
    (The MNIST label-index question, book/07_mnist_labels.ipynb).

    Examples
    --------
    >>> w = load_qmnist_test_writers()  # doctest: +SKIP
    >>> w.series[:5000].tolist() == [4] * 5000  # doctest: +SKIP
    True
    >>> int(w.writer[:5000].min()), int(w.writer[:5000].max())  # doctest: +SKIP
    (2351, 2599)
    >>> np.bincount(w.series[5000:]).tolist()  # doctest: +SKIP
    [4999, 0, 0, 0, 1]
    """
    directory, why = _resolve_qmnist_root(root)
    path = directory / QMNIST_FILE
    if not path.is_file():
        urls = QMNIST_URLS if urls is None else urls
        if not download:
            raise _not_found("QMNIST", path, why, urls[0] if urls else "a URL")

        def verify(raw: bytes, url: str) -> None:
            _verify_qmnist(_decompress(raw, url), url)

        path = _download_verified(path, urls, verify, progress, timeout, QMNISTDownloadError)
    table = _verify_qmnist(_decompress(path.read_bytes(), str(path)), str(path))
    rows = table[: _RECORDS["test"]]
    return QMNISTTestWriters(*(rows[:, k].copy() for k in range(len(QMNISTTestWriters._fields))))


# ----------------------------------------------------------------------------- names

#: makemore's file of names, one a line.
NAMES_FILE = "names.txt"
#: Where it is downloaded from, in order: makemore's repository at a fixed commit, then its head.
NAMES_URLS: list[str] = [
    "https://raw.githubusercontent.com/karpathy/makemore/"
    "988aa59e4d8fefa526d06f3b453ad116258398d4/names.txt",
    "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
]
#: sha256 of ``names.txt`` as published (a plain text file, no compression).
NAMES_CHECKSUM = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
#: Environment variable naming the directory that holds :data:`NAMES_FILE`.
NAMES_ENV_VAR = "CELIB_NAMES_DIR"

_NAMES_DEFAULT_ROOT = Path("~/.cache/celib/names")
_NAMES_COUNT = 32_033


class NamesDownloadError(MNISTDownloadError):
    """No URL delivered a ``names.txt`` that passed the checksum.

    Parameters
    ----------
    path : str
        The path the file would have been saved under.
    failures : sequence of (str, str)
        One ``(url, reason)`` pair per URL tried, in order.
    """

    def __init__(self, path: str, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        todo = _offline_hint(NAMES_FILE, "github.com/karpathy/makemore", Path(path).parent,
                             NAMES_ENV_VAR, "names")
        MNISTError.__init__(self, path,
                            _failure_message(self.failures, "URL", Path(path).parent, todo))


def _verify_names(data: bytes, where: str) -> list[str]:
    """Check the bytes of ``names.txt`` against the checksum, then split them into names."""
    got_sha = hashlib.sha256(data).hexdigest()
    if got_sha != NAMES_CHECKSUM:
        raise MNISTError(where, f"sha256 mismatch: expected {NAMES_CHECKSUM}, got {got_sha} "
                                f"(of the {len(data)} bytes)")
    names = data.decode("ascii").split()
    if len(names) != _NAMES_COUNT:  # unreachable with the right checksum; a guard for edits
        raise MNISTError(where, f"{len(names)} names, expected {_NAMES_COUNT}")
    return names


def load_names(
    root: StrPath | None = None,
    download: bool = True,
    *,
    urls: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> list[str]:
    """Load makemore's 32,033 names, verified, downloading the file if allowed.

    ``names.txt`` is the data set of Karpathy's makemore (MIT licensed): the most common
    first names of the US Social Security Administration's 2018 baby-name data, one lowercase
    name (letters a-z) a line.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Directory holding ``names.txt``. Defaults to ``$CELIB_NAMES_DIR``, then a folder named
        ``names`` beside ``$CELIB_MNIST_DIR`` if it holds the file, then
        ``~/.cache/celib/names``.
    download : bool, default True
        Whether to download the file if it is missing from ``root``.
    urls : sequence of str, optional
        Full URLs of the file to try in order; defaults to :data:`NAMES_URLS`.
    progress : bool, default True
        Show a progress bar on stderr while downloading.
    timeout : float, default 30.0
        Socket timeout in seconds for each download attempt.

    Returns
    -------
    list of str
        The 32,033 names in the file's order (29,494 distinct, 2 to 15 letters).

    Raises
    ------
    MNISTError
        A sha256 mismatch against :data:`NAMES_CHECKSUM`. :class:`NamesDownloadError` (a
        subclass) if every URL failed; it lists each URL and why, and says what to copy where.
    FileNotFoundError
        If the file is missing and ``download`` is False.

    Notes
    -----
    The checks and the download are those of :func:`load_mnist`: every load verifies the
    checksum; a download goes to a temporary file in ``root``, renamed into place only after
    it passed, and deleted on any failure (with any cache folder it created). A corrupt file
    already in ``root`` is reported, not replaced. Explained in chapter 10 (Beyond one label,
    book/10_beyond_one_label.ipynb), which trains character-level language models on it.

    Examples
    --------
    >>> names = load_names()  # doctest: +SKIP
    >>> len(names), names[:3]  # doctest: +SKIP
    (32033, ['emma', 'olivia', 'ava'])
    """
    directory, why = _resolve_beside_mnist(root, NAMES_ENV_VAR, "names", NAMES_FILE,
                                           _NAMES_DEFAULT_ROOT)
    path = directory / NAMES_FILE
    if not path.is_file():
        urls = NAMES_URLS if urls is None else urls
        if not download:
            raise _not_found("names", path, why, urls[0] if urls else "a URL")
        path = _download_verified(path, urls, _verify_names, progress, timeout,
                                  NamesDownloadError)
    return _verify_names(path.read_bytes(), str(path))


def split_names(
    names: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[str], ...]:
    """Split a list of names at random into parts, by distinct name, so no name is in two parts.

    Parameters
    ----------
    names : sequence of str
        The names, repetitions allowed (``names.txt`` has 32,033 lines, 29,494 distinct).
    fractions : sequence of float, default (0.8, 0.1, 0.1)
        The share of the *distinct* names each part gets; positive, summing to 1. Each part
        but the last gets ``round(fraction * D)`` of the D distinct names, the last the rest.
    seed : int, default 0
        Seed of the shuffle, so the split is the same on every machine.

    Returns
    -------
    tuple of list of str
        One list per part, holding every occurrence of its names, in the input's order.

    Raises
    ------
    ValueError
        If a fraction is not positive or the fractions do not sum to 1.

    Notes
    -----
    Splitting the lines instead (as makemore does) puts a name listed twice into training and
    test alike, and the test loss then rewards memorising it. The distinct names are sorted
    before the seeded permutation, so the split does not depend on the input's order.
    Explained in chapter 10 (Beyond one label, book/10_beyond_one_label.ipynb).

    Examples
    --------
    >>> train, test = split_names(["ann", "bo", "ann", "cy", "di"], [0.5, 0.5], seed=0)
    >>> sorted(set(train) & set(test))
    []
    >>> len(train) + len(test)
    5
    """
    shares = [float(f) for f in fractions]
    if not shares or any(not f > 0 for f in shares) or not math.isclose(sum(shares), 1.0):
        raise ValueError(f"fractions must be positive and sum to 1, got {list(fractions)}")
    distinct = sorted(set(names))
    order = np.random.default_rng(seed).permutation(len(distinct))
    bounds = np.cumsum([round(f * len(distinct)) for f in shares[:-1]])
    part_of = np.empty(len(distinct), dtype=np.int64)
    for part, chosen in enumerate(np.split(order, bounds)):
        part_of[chosen] = part
    where = dict(zip(distinct, part_of.tolist(), strict=True))
    parts: list[list[str]] = [[] for _ in shares]
    for name in names:
        parts[where[name]].append(name)
    return tuple(parts)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (Hamilton's method)."""
    quota = total * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    # Ties are broken by the smaller class index, so the result is deterministic.
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def stratified_split(
    labels: np.ndarray, sizes: Sequence[int], seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Split example indices at random into parts with the same class proportions.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        The class index of every example.
    sizes : sequence of int
        How many examples each part gets; they may sum to less than N (the rest is unused).
    seed : int, default 0
        Seed of the shuffle, so the split is the same on every machine.

    Returns
    -------
    tuple of numpy.ndarray
        One sorted int64 index array per part, disjoint.

    Raises
    ------
    ValueError
        If ``labels`` is not a 1-d integer array, a size is negative, or the sizes add up to
        more than N.

    Notes
    -----
    Each part draws from every class in proportion to the class's share of what is left,
    rounded by largest remainder, so every part has exactly its size. The first part's class
    counts are within one example of the data's proportions, and so are both parts of a split
    in two that uses all the data; a later part of a split in three or more can miss by a little
    more, since each part rounds what the earlier ones left. Splitting by
    position instead (the first 8,000 images for training) is not a random split: the MNIST
    test file is ordered by writer population (see chapter 7: The MNIST label-index question,
    book/07_mnist_labels.ipynb).

    Examples
    --------
    >>> labels = np.repeat([0, 1, 2], [50, 30, 20])
    >>> train, test = stratified_split(labels, [80, 20], seed=0)
    >>> np.bincount(labels[test]).tolist()
    [10, 6, 4]
    >>> len(np.intersect1d(train, test))
    0
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array, got {labels.dtype} "
                         f"of shape {labels.shape}")
    sizes = [int(s) for s in sizes]
    if any(s < 0 for s in sizes) or sum(sizes) > len(labels):
        raise ValueError(f"sizes must be non-negative and add up to at most {len(labels)} "
                         f"(the number of labels), got {sizes}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    taken = np.zeros(len(classes), dtype=np.int64)
    parts = []
    for size in sizes:
        left = np.array([len(pool) for pool in pools]) - taken
        counts = _largest_remainder(size, left.astype(np.float64)) if size else 0 * left
        chosen = [pool[t:t + k] for pool, t, k in zip(pools, taken, counts, strict=True)]
        parts.append(np.sort(np.concatenate(chosen)).astype(np.int64))
        taken += counts
    return tuple(parts)
