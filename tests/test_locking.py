"""One writer at a time: a second writer is refused with the holder named; a killed holder frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from vixml.atomic import atomic_path, clean_stale_temps
from vixml.locking import LockedError, WriteLock, lock_path_for


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    with WriteLock(tmp_path / "run", "vixml train"):
        with pytest.raises(LockedError, match=rf"vixml train, pid {os.getpid()}"):
            WriteLock(tmp_path / "run", "vixml train").acquire()
    WriteLock(tmp_path / "run").acquire().release()  # released: free again


def test_a_killed_holder_does_not_leave_the_lock_stuck(tmp_path):
    code = (
        "import sys, time; from vixml.locking import WriteLock; "
        f"WriteLock({str(tmp_path)!r}, 'holder').acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"holder, pid {proc.pid}"):
            WriteLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while True:  # the kernel frees the flock when the process is gone
        try:
            WriteLock(tmp_path).acquire().release()
            break
        except LockedError:
            assert time.time() < deadline
            time.sleep(0.05)


def test_file_targets_lock_beside_the_file(tmp_path):
    assert lock_path_for(tmp_path / "pred.npz") == tmp_path / ".pred.npz.lock"
    assert lock_path_for(tmp_path) == tmp_path / ".vixml.lock"


def test_stale_temp_files_of_atomic_writes_are_cleaned(tmp_path):
    (tmp_path / ".hidden.npy").write_text("not ours")
    (tmp_path / "label_embeddings.npy").write_text("final")
    with atomic_path(tmp_path / "label_embeddings.npy", suffix=".npy") as tmp:
        temp_name = tmp.name  # what a kill -9 inside the block would leave behind
    orphan = tmp_path / temp_name
    orphan.write_text("half")
    assert clean_stale_temps(tmp_path) == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.npy", "label_embeddings.npy"]
