"""Extra peak memory of one block of code on Linux CPU: the peak resident set size over the block
minus the RSS before it.

The kernel's high-water mark ``VmHWM`` (``/proc/self/status``) is reset to the current RSS by
writing ``5`` to ``/proc/self/clear_refs``, so the peak of the block alone is read afterwards. Run
it in a fresh process whose environment holds :data:`MALLOC_ENV`: glibc then serves every block of
1 MiB or more with its own mmap and returns it at free, so a freed tensor leaves the RSS and the
figure is the block's live peak, not what the allocator kept.

The CPU memory benchmarks (``bench_loss_head.py``, ``bench_distill_head.py``) and the test that
holds the loss head to its bound (``tests/train/test_chunked_head_memory.py``) measure with it.
Imports nothing beyond the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "0"}
"""Environment of a measuring process: blocks >= 1 MiB are mmapped (and so unmapped at free), and
the heap is trimmed at every free."""

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``), in KiB."""
    return int(re.search(rf"{field}:\s+(\d+)", STATUS.read_text()).group(1))


def unavailable() -> str | None:
    """Why this process cannot measure its peak RSS (not Linux, no ``VmHWM``, a ``clear_refs``
    it may not write), or None when it can."""
    try:
        vm_kib("VmHWM")
        with CLEAR_REFS.open("w") as f:
            f.write("5")
    except (OSError, AttributeError) as error:  # AttributeError: no VmHWM line
        return f"no resettable peak RSS here (/proc/self/status VmHWM, clear_refs): {error}"
    return None


def extra_peak_bytes(run: Callable[[], object]) -> int:
    """Peak RSS while ``run()`` runs minus the RSS before it, in bytes."""
    with CLEAR_REFS.open("w") as f:
        f.write("5")  # VmHWM := the current RSS
    base = vm_kib("VmRSS")
    run()
    return (vm_kib("VmHWM") - base) * 1024
