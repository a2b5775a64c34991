"""Replay buffers: per-task stores in one array, growth, ring wrap, clearing, batched sampling."""

from __future__ import annotations

import numpy as np
import pytest

from pearl_robot.pearl.buffers import Layout, MultiTaskReplayBuffer

LAYOUT = Layout(obs_dim=2, action_dim=1)


def _rows(start: int, n: int) -> np.ndarray:
    """Rows whose every column holds the transition's serial number."""
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], LAYOUT.width, axis=1)


def test_layout_columns():
    rows = LAYOUT.rows(
        np.array([[1, 2]]), np.array([[3]]), np.array([4]), np.array([5]), np.array([[6, 7]]), np.array([1])
    )
    assert rows.tolist() == [[1, 2, 3, 4, 5, 6, 7, 1]]
    assert LAYOUT.context_columns(False, False).tolist() == [0, 1, 2, 3]
    assert LAYOUT.context_columns(False, True).tolist() == [0, 1, 2, 4]
    assert LAYOUT.context_columns(True, True).tolist() == [0, 1, 2, 4, 5, 6]


def test_add_grow_sample_and_clear():
    buf = MultiTaskReplayBuffer(3, LAYOUT, capacity=100, initial_capacity=4)
    buf.add(0, _rows(0, 10))
    buf.add(2, _rows(100, 3))
    assert buf.size.tolist() == [10, 0, 3] and buf.allocated == 16
    rng = np.random.default_rng(0)
    batch = buf.sample(np.array([0, 2, 0]), 50, rng)
    assert batch.shape == (3, 50, LAYOUT.width)
    assert set(batch[0, :, 0]) <= set(range(10)) and set(batch[1, :, 0]) <= {100, 101, 102}
    assert len(set(batch[0, :, 0])) > 5  # uniform with replacement over the task's rows
    buf.clear(0)
    assert buf.size[0] == 0
    with pytest.raises(ValueError):
        buf.sample(np.array([0]), 1, rng)
    buf.add(0, _rows(50, 2))
    assert buf.task_rows(0)[:, 0].tolist() == [50, 51]


def test_ring_buffer_keeps_the_newest_rows():
    buf = MultiTaskReplayBuffer(1, LAYOUT, capacity=8, initial_capacity=2)
    buf.add(0, _rows(0, 5))
    buf.add(0, _rows(5, 6))
    assert buf.size[0] == 8 and buf.allocated == 8
    assert buf.task_rows(0)[:, 0].tolist() == list(range(3, 11))
    seq = buf.sample_sequence(np.array([0]), 4, np.random.default_rng(1))[0, :, 0]
    assert np.all(np.diff(seq) == 1) and seq[0] >= 3


def test_sequences_are_contiguous_in_insertion_order():
    buf = MultiTaskReplayBuffer(2, LAYOUT, capacity=100)
    buf.add(0, _rows(0, 30))
    buf.add(1, _rows(200, 3))
    seqs = buf.sample_sequence(np.array([0, 1]), 5, np.random.default_rng(0))
    assert np.all(np.diff(seqs[0, :, 0]) == 1)
    assert seqs[1, :, 0].tolist() == [200, 201, 202, 202, 202]  # short store: the last row repeats


def test_state_dict_round_trip():
    buf = MultiTaskReplayBuffer(2, LAYOUT, capacity=50)
    buf.add(0, _rows(0, 7))
    buf.add(1, _rows(10, 2))
    other = MultiTaskReplayBuffer(2, LAYOUT, capacity=50)
    other.load_state_dict(buf.state_dict())
    a = buf.sample(np.array([0, 1]), 20, np.random.default_rng(3))
    b = other.sample(np.array([0, 1]), 20, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
