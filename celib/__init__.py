"""celib: cross-entropy from first principles, with torch.nn.functional's exact semantics.

The library behind the course book *Cross-Entropy, Executed*. One module per idea:

- :mod:`celib.info` — entropy, cross-entropy and KL divergence of distributions (chapter 1: Entropy,
  book/01_entropy.ipynb);
- :mod:`celib.functional` — softmax, log-softmax and the losses, like ``torch.nn.functional``
  (chapters 2 to 5);
- :mod:`celib.grad` — their gradients, written out, and a finite-difference checker (chapter 6:
  Gradients, book/06_gradients.ipynb);
- :mod:`celib.naive` — the textbook formulas, unstable on purpose (chapter 5: Numerical stability,
  book/05_numerical_stability.ipynb);
- :mod:`celib.targets` — ``check_targets``, a diagnostic for labels before training (chapter 7: The
  MNIST label-index question, book/07_mnist_labels.ipynb);
- :mod:`celib.datasets` — an MNIST loader that checks every byte (chapter 7: The MNIST label-index
  question, book/07_mnist_labels.ipynb);
- :mod:`celib.calibration` — calibration error, Brier score, temperature scaling and the focal
  loss (chapter 8: Probabilities you can trust, book/08_calibration.ipynb);
- :mod:`celib.parallel` — vocab-parallel cross-entropy over ``torch.distributed``, the one
  module that needs torch, which it imports inside its functions (chapter 9.1: Vocab-parallel
  cross-entropy, book/09b_vocab_parallel.ipynb);
- :mod:`celib.testing` — errors in ulps against exact mpmath references, and the peak memory
  of a call: the helpers behind the book's accuracy and memory claims (chapters 5 and 9).

:func:`get_num_threads` and :func:`set_num_threads` control the threads celib's row kernels
share their blocks among (by default ``CELIB_NUM_THREADS``, else the CPUs this process may
use); the results are the same bit for bit whatever the count.

Only numpy is needed at import time. Typical use::

    import celib.functional as cf
    loss = cf.cross_entropy(logits, target)
"""

from . import calibration, datasets, functional, grad, info, naive, parallel, targets, testing
from ._kernels import get_num_threads, set_num_threads

__version__ = "0.1.0"
__all__ = ["calibration", "datasets", "functional", "grad", "info", "naive", "parallel",
           "targets", "testing", "get_num_threads", "set_num_threads", "__version__"]
