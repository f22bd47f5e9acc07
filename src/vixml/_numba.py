"""numba, configured so that its parallel kernels never change torch's thread settings.

numba's default OpenMP threading layer shares the OpenMP runtime with torch and sets its thread count on
first use (``OMP_NUM_THREADS=1``: torch went from 1 to 2 threads after the first metrics call, so a resumed
run trained with other threads than an uninterrupted one). Every kernel module imports numba from here:
numba's own ``workqueue`` layer (unless ``NUMBA_THREADING_LAYER`` says otherwise), and the user's
``OMP_NUM_THREADS`` as numba's thread count too (unless ``NUMBA_NUM_THREADS`` is set).
"""

from __future__ import annotations

import os

import numba

__all__ = ["numba"]

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
if "NUMBA_NUM_THREADS" not in os.environ and os.environ.get("OMP_NUM_THREADS", "").isdigit():
    numba.set_num_threads(max(1, min(int(os.environ["OMP_NUM_THREADS"]), numba.config.NUMBA_NUM_THREADS)))
