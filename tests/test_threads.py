"""vixml never changes the user's thread settings as a side effect (a resumed run must train with the same)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_numba_kernels_leave_torch_threads_alone(tmp_path):
    code = (
        "import torch, numpy as np, scipy.sparse as sp; n0 = torch.get_num_threads(); "
        "from vixml.metrics import evaluate; from vixml.search import topk; "
        "y = sp.random(50, 30, density=0.1, format='csr', random_state=0); y.data[:] = 1; "
        "evaluate(y, sp.random(50, 30, density=0.3, format='csr', random_state=1), train=y); "
        "topk(np.ones((8, 4), np.float32), np.ones((20, 4), np.float32), 3); "
        "print(n0, torch.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "1"]
