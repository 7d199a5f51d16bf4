"""Running a function on a real gloo world of processes on 127.0.0.1 (tests, the chapter)."""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import sys
import tempfile
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from . import _arguments

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch.multiprocessing as mp

START_METHODS = ("spawn", "fork", "forkserver")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it: bind to port 0).

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb).

    Examples
    --------
    >>> from celib.parallel import free_port
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((n for n in names if n.startswith("lo")), None)


def _run_rank(rank: int, fn: Callable[..., Any], world_size: int, port: int, folder: str,
              args: tuple[Any, ...], timeout: float) -> None:
    """The body of each spawned process: join the gloo world, run ``fn``, save its result."""
    import torch
    import torch.distributed as dist

    interface = _loopback_interface()
    if interface:  # gloo must talk over loopback, not whatever the hostname resolves to
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        result = fn(rank, world_size, *args)
    except BaseException:
        # Saved with the time, so that the launcher can name the rank that failed first (the
        # others then fail too, in their next collective, with "Connection closed by peer").
        with open(os.path.join(folder, f"rank{rank}.err"), "w", encoding="utf-8") as f:
            f.write(f"{time.time():.6f}\n{traceback.format_exc()}")
        dist.destroy_process_group()
        raise
    with open(os.path.join(folder, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    # Leave only when every rank has saved its result (rank 0 hosts the group's TCP store), and
    # leave at once: tearing down gloo's threads and torch's static objects in a normal exit
    # aborted a rank now and then (SIGABRT, "terminate called without an active exception")
    # after its work was done.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _stop(context: mp.ProcessContext) -> None:
    for process in context.processes:
        if process.is_alive():
            process.terminate()
        process.join(5)


def _failure(folder: str, world_size: int,
             error: mp.ProcessRaisedException | mp.ProcessExitedException) -> str:
    """The message for a failed run: the traceback of the rank that failed first."""
    reports = []
    for rank in range(world_size):
        path = os.path.join(folder, f"rank{rank}.err")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                stamp, _, text = f.read().partition("\n")
            reports.append((float(stamp), rank, text))
    if not reports:
        return f"rank {error.error_index} of {world_size} failed: {error}"
    reports.sort()
    _, rank, text = reports[0]
    others = [r for _, r, _ in reports[1:]]
    also = f" (then rank(s) {others} failed too)" if others else ""
    return f"rank {rank} of {world_size} failed first{also}:\n{text}"


def _check_launch(fn: Any, world_size: Any, args: Any, timeout: Any,
                  start_method: Any) -> tuple[int, tuple, float]:
    """The launcher's arguments, checked before any process starts."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(rank, world_size, *args), got "
                        f"{type(fn).__name__}")
    ranks = _arguments.positive_int(world_size, "world_size")
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"args must be a tuple (or list) of fn's extra arguments, got "
                        f"{type(args).__name__}")
    seconds = _arguments.positive_seconds(timeout, "timeout")
    if not isinstance(start_method, str):
        raise TypeError(f"start_method must be one of {START_METHODS} (a string), got "
                        f"{type(start_method).__name__}")
    if start_method not in START_METHODS:
        raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
    import torch.distributed as dist

    if start_method == "fork" and dist.is_available() and dist.is_initialized():
        raise RuntimeError("launch(..., start_method='fork') from a process that has a default "
                           "process group: every child would inherit it and fail to join its "
                           "own world; destroy it first, or use start_method='spawn'")
    return ranks, tuple(args), seconds


def launch(fn: Callable[..., Any], world_size: int, args: tuple = (), *,
           timeout: float = 120.0, start_method: str = "spawn") -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` processes joined in a gloo group.

    Each process sets ``torch.set_num_threads(1)``, joins a gloo process group over
    ``tcp://127.0.0.1:PORT`` on a free port (with ``GLOO_SOCKET_IFNAME`` set to the loopback
    interface), runs ``fn`` and returns its result, which must pickle.

    Parameters
    ----------
    fn : callable
        ``fn(rank, world_size, *args)``. With the ``'spawn'`` start method it must be
        importable from a module (not defined in a notebook or a doctest).
    world_size : int
        The number of processes, at least 1.
    args : tuple
        Extra arguments for ``fn``; they must pickle.
    timeout : float, default 120.0
        Seconds for the whole run, and the process group's timeout for each collective.
    start_method : {'spawn', 'fork', 'forkserver'}
        How ``torch.multiprocessing`` starts the processes. ``'spawn'`` starts fresh
        interpreters (each imports torch: about a second); ``'fork'`` is faster on Linux.

    Returns
    -------
    list
        ``fn``'s result on each rank, in rank order.

    Raises
    ------
    RuntimeError
        With ``start_method='fork'`` in a process that has a default process group (the
        children would inherit it). As soon as one rank fails: the other ranks are stopped,
        and the message gives the number and the traceback of the rank that failed first.
    TimeoutError
        If the ranks have not finished after ``timeout`` seconds (they are stopped).
    TypeError
        If ``fn`` is not callable, ``world_size`` not an integer, ``args`` not a tuple or
        list, ``timeout`` not a number or ``start_method`` not a string.
    ValueError
        If ``world_size`` is below 1, ``timeout`` not a finite number > 0, or
        ``start_method`` not one of the three.

    Notes
    -----
    A rank that raises would leave the others blocked in their next collective; the launcher
    notices the failure within 0.1 s and terminates them, so a failing rank never hangs the
    caller.

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb), page
    *Vocab-parallel cross-entropy*.

    Examples
    --------
    ``operator.mul(rank, world_size)`` on two ranks (a function importable from a module):

    >>> import operator
    >>> from celib.parallel import launch
    >>> launch(operator.mul, 2, start_method="fork")
    [0, 2]
    """
    import torch.multiprocessing as mp

    world_size, args, timeout = _check_launch(fn, world_size, args, timeout, start_method)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="celib-parallel-") as folder:
        with warnings.catch_warnings():
            # Python 3.12+ warns that fork() in a process with threads may deadlock; the
            # children here only run torch code that starts its own threads after the fork.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            context = mp.start_processes(
                _run_rank, args=(fn, world_size, port, folder, args, timeout),
                nprocs=world_size, join=False, start_method=start_method)
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=0.1):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {world_size} ranks did not finish within "
                                       f"{timeout} s")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            _stop(context)
            raise RuntimeError(_failure(folder, world_size, e)) from None
        finally:
            _stop(context)
        results = []
        for rank in range(world_size):
            with open(os.path.join(folder, f"rank{rank}.pkl"), "rb") as f:
                results.append(pickle.load(f))
    return results
