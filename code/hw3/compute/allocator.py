"""Keep freed memory in the process, so that each training step does not page-fault its activations back in.

With glibc's default malloc, the few-MB activations a step frees are handed back to the kernel
(the top of the heap is trimmed, or the block was its own mmap), and the next step's allocations
of the same sizes fault in every 4 KiB page again. For the Part 2 CNN on CPU (batch 64, 1 thread)
that was about 3,000 page faults per step, and elementwise kernels on 3 MB tensors (ReLU, its
backward, max-pool backward's zero-fill) then ran several times slower than memory allows:
torch.profiler showed them taking more time than the convolutions. Raising the mmap and trim
thresholds cut the faults 6× and made a one-thread CNN step about 1.4× faster in a probe;
`make bench` prints its effect on the machine's threads (on our two-thread runs: within noise for
the CNN, 1.2–1.3× for the MLP and the MultiMNIST net). The arithmetic is untouched, so results
are bit-identical with or without it.

It is process setup, like the thread count: `hw3.runner` applies it in each worker, and
`benchmarks/bench.py` applies it to our engine's measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
KEEP_BYTES = 256 * 2**20  # blocks below this come from (and return to) the heap; freed memory below it is kept


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds to `keep_bytes`. False (and nothing changed) where
    the C library has no `mallopt` (macOS, musl) or refuses the value."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, keep_bytes))
