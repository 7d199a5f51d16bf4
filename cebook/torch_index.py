"""Where pip should look for torch's CPU build: printed as pip options, for ``make venv``.

On an ordinary Linux x86-64 machine, PyPI's ``torch==2.13.0`` is the CUDA build, which pulls
several GB of nvidia packages that a CPU never uses. PyTorch's own index serves the CPU build
(``2.13.0+cpu``, about 200 MB); given as an extra index, pip prefers it to PyPI's (a local
version label sorts higher). Where that index cannot be reached within ``TIMEOUT_S`` (no
network, a firewall, a mirror of PyPI only), nothing is printed and pip installs the plain pin
as before: no long retries, no hang.

Runs with the system Python, before ``.venv`` exists (standard library only)::

    python3 -m cebook.torch_index     # prints "--extra-index-url URL" or nothing
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TIMEOUT_S = 5.0


def pip_options(index: str = CPU_INDEX, timeout: float = TIMEOUT_S) -> list[str]:
    """``["--extra-index-url", index]`` if ``index`` lists torch within ``timeout`` seconds,
    else ``[]``."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=timeout) as response:
            reachable = response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        reachable = False
    return ["--extra-index-url", index] if reachable else []


def main() -> int:
    options = pip_options()
    print(" ".join(options))
    where = f"torch's CPU build from {CPU_INDEX}" if options else (
        f"{CPU_INDEX} is not reachable: torch from the usual index")
    print(f"make venv: {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
