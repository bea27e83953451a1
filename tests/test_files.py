import os

import numpy as np
import pytest

from brainprobe._files import replace_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old")

    def half_then_crash(temporary):
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_atomically(path, half_then_crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_the_file_is_replaced_whole_with_the_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "arrays.npz"  # np.savez must not append a second .npz
    replace_atomically(path, lambda temporary: np.savez(temporary, a=np.arange(3)))
    with np.load(path) as data:
        assert data["a"].tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["arrays.npz"]
