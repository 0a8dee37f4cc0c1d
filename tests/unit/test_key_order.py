"""Map rows sorted by key: the radix order is exactly the order ``np.argsort`` gave, and
``table()``'s frames keep their rows, columns and dtypes."""
from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from ebpf_nb import frames
from ebpf_nb import program as prog
from ebpf_nb.constants import MapType
from ebpf_nb.kernel import maps as kmaps
from ebpf_nb.key_order import key_order

RNG = np.random.default_rng(20261202)
INTS = ["u1", "i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8"]


@pytest.mark.parametrize("n", [1, 2, 1000, 100_000])
def test_unique_hash_keys_keep_the_argsort_order(n):
    keys = RNG.choice(2**32 - 1, size=n, replace=False).astype(np.uint32)
    assert np.array_equal(key_order(keys), np.argsort(keys))


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("spread", ["full range", "small", "few, repeated", "all equal"])
def test_every_integer_key_is_sorted_as_a_stable_argsort(dtype, spread):
    info = np.iinfo(dtype)
    n = 5000
    if spread == "full range":
        keys = RNG.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    elif spread == "small":  # high digits equal in every key: those passes are skipped
        keys = RNG.integers(0, min(info.max, 300), size=n).astype(dtype)
    elif spread == "few, repeated":
        keys = RNG.integers(-3 if info.min < 0 else 0, 3, size=n).astype(dtype)
    else:
        keys = np.full(n, info.max, dtype=dtype)
    assert np.array_equal(key_order(keys), np.argsort(keys, kind="stable"))


def test_signed_keys_put_negative_ones_first():
    keys = np.array([5, -1, 0, -70000, 70000, np.iinfo(np.int32).min], dtype=np.int32)
    assert keys[key_order(keys)].tolist() == sorted(keys.tolist())


def test_a_struct_field_read_in_place_sorts_too():
    rows = np.zeros(3000, dtype=[("a", "<u4"), ("b", "<u8")])
    rows["b"] = RNG.integers(0, 2**64 - 1, size=3000, dtype=np.uint64)
    assert np.array_equal(key_order(rows["b"]), np.argsort(rows["b"], kind="stable"))


@pytest.mark.parametrize("shape", [(6,), (16,), (2, 3)])
def test_array_keys_sort_element_by_element(shape):
    keys = RNG.integers(0, 4, size=(4000, *shape)).astype(np.uint8)
    flat = keys.reshape(len(keys), -1)
    assert np.array_equal(key_order(keys), np.lexsort(flat.T[::-1]))


def test_other_keys_fall_back_to_argsort():
    strings = np.array([b"b", b"a", b"ab", b"", b"a"], dtype="S4")
    assert np.array_equal(key_order(strings), np.argsort(strings, kind="stable"))
    assert len(key_order(np.empty(0, dtype=np.uint32))) == 0


# --- map_frame: what table() shows ------------------------------------------------------------

FLOW = np.dtype([("packets", "<u8"), ("bytes", "<u8")])


def _raw(keys: np.ndarray, values: np.ndarray, map_type: int = MapType.HASH) -> kmaps.RawMap:
    n = len(keys)
    return kmaps.RawMap(keys=np.ascontiguousarray(keys).view(np.uint8).reshape(n, -1),
                        values=np.ascontiguousarray(values).view(np.uint8).reshape(n, -1),
                        map_type=map_type, key_size=keys.dtype.itemsize,
                        value_size=values.dtype.itemsize, max_entries=max(n, 1), ncpus=1)


def _layout(key_dtype, value_dtype, map_type: int = MapType.HASH) -> prog.MapLayout:
    return prog.MapLayout("m", map_type, -1, key_dtype, value_dtype, 1)


def test_hash_frame_rows_are_sorted_by_key_with_their_values():
    keys = RNG.choice(2**32 - 1, size=20_000, replace=False).astype(np.uint32)
    values = np.zeros(len(keys), FLOW)
    values["packets"], values["bytes"] = keys // 3, keys.astype(np.uint64) * 1500
    df = frames.map_frame(_raw(keys, values), _layout(np.dtype(np.uint32), FLOW))
    order = np.argsort(keys)  # the order table() has always shown
    expected = pd.DataFrame({"key": keys[order], "packets": values["packets"][order],
                             "bytes": values["bytes"][order]})
    pd.testing.assert_frame_equal(df, expected)
    assert isinstance(df.index, pd.RangeIndex)
    assert df.dtypes.tolist() == [np.dtype(np.uint32), np.dtype(np.uint64), np.dtype(np.uint64)]


def test_hash_frame_columns_are_its_own():
    keys = np.array([3, 1, 2], dtype=np.uint32)
    values = np.array([30, 10, 20], dtype=np.uint64)
    raw = _raw(keys, values)
    df = frames.map_frame(raw, _layout(np.dtype(np.uint32), np.dtype(np.uint64)))
    raw.values[:] = 0  # a reused or freed read buffer must not change a frame already shown
    raw.keys[:] = 0
    assert df["key"].tolist() == [1, 2, 3] and df["value"].tolist() == [10, 20, 30]


def test_struct_keys_stay_in_the_kernel_order():
    key = np.dtype([("pid", "<u4"), ("cpu", "<u4")])
    keys = np.zeros(4, key)
    keys["pid"], keys["cpu"] = [9, 2, 7, 2], [0, 1, 0, 0]
    values = np.array([1, 2, 3, 4], dtype=np.uint64)
    df = frames.map_frame(_raw(keys, values), _layout(key, np.dtype(np.uint64)))
    assert df["pid"].tolist() == [9, 2, 7, 2] and df["value"].tolist() == [1, 2, 3, 4]


def test_a_hash_with_array_keys_is_read_sorted_by_its_bytes():
    # An array key (e.g. ``typedef u8 mac_t[6]``, or raw bytes when the key type is unknown)
    # made table() fail with TypeError: argsort sorted inside each key.
    keys = np.array([[3, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 2], [1, 0, 0, 0, 0, 0]], np.uint8)
    values = np.array([30, 12, 10], dtype=np.uint64)
    for key_dtype in (np.dtype((np.uint8, (6,))), None):
        df = frames.map_frame(_raw(keys.view("V6").ravel(), values),
                            _layout(key_dtype, np.dtype(np.uint64)))
        assert [list(k) for k in df["key"]] == [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 2],
                                                [3, 0, 0, 0, 0, 1]]
        assert df["value"].tolist() == [10, 12, 30]


def _frame_as_before(raw: kmaps.RawMap, layout: prog.MapLayout) -> pd.DataFrame:
    """map_frame as it was before the radix order: decode every column, then argsort + take."""
    from ebpf_nb import decode
    keys = kmaps.to_structured(raw.keys, layout.key_dtype)
    data = decode.columns(keys, "key")
    if raw.map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH):
        per_cpu = kmaps.to_structured(raw.values, kmaps.percpu_dtype(layout.value_dtype,
                                                                     raw.ncpus))
        data.update(frames._percpu_columns(per_cpu["v"], layout.value_dtype))
    else:
        for col, vals in decode.columns(kmaps.to_structured(raw.values, layout.value_dtype),
                                        "value").items():
            data[col if col not in data else f"value_{col}"] = vals
    order = np.argsort(keys)
    return pd.DataFrame({c: v[order] if isinstance(v, np.ndarray) else [v[i] for i in order]
                         for c, v in data.items()})


TASK = np.dtype([("count", "<u8"), ("pid", "<u4"), ("comm", "S12"), ("hist", "<u2", (3,))])


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH])
@pytest.mark.parametrize("key", ["<u8", "<i4", "S8"])
def test_hash_frames_are_what_they_were(map_type, key):
    n, ncpus = 3000, 2
    keys = RNG.choice(10**7, size=n, replace=False)  # unique, also as "k%d" in 8 bytes
    keys = np.array([f"k{k}".encode() for k in keys], "S8") if key == "S8" else keys.astype(key)
    values = np.zeros(n, TASK)
    values["count"], values["pid"] = RNG.integers(0, 2**40, n), RNG.integers(0, 2**22, n)
    values["comm"] = [f"task{i % 7}".encode() for i in range(n)]
    values["hist"] = RNG.integers(0, 1000, (n, 3))
    raw = _raw(keys, values, map_type)
    if map_type == MapType.PERCPU_HASH:  # ncpus slots of round_up(size, 8) bytes per row
        slot = -(-TASK.itemsize // 8) * 8
        rows = np.zeros((n, ncpus * slot), np.uint8)
        for cpu in range(ncpus):
            rows[:, cpu * slot:cpu * slot + TASK.itemsize] = raw.values
            rows[:, cpu * slot] += cpu  # a different count on each CPU
        raw.values, raw.ncpus = rows, ncpus
    layout = _layout(np.dtype(key), TASK, map_type)
    pd.testing.assert_frame_equal(frames.map_frame(raw, layout), _frame_as_before(raw, layout))


def test_a_percpu_hash_with_a_char_array_field_shows_a_string_per_cpu():
    # A BPF_PERCPU_HASH whose value has a char[] field made table() fail: numpy cannot add
    # up bytes ("the resolved dtypes are not compatible with add.reduce").
    value = np.dtype([("count", "<u8"), ("comm", "S8")])
    keys = np.array([7, 3], dtype=np.uint32)
    rows = np.zeros(2, np.dtype([("cpu0", value), ("cpu1", value)]))  # 16-byte slots
    rows["cpu0"]["count"], rows["cpu1"]["count"] = [70, 30], [1, 2]
    rows["cpu0"]["comm"], rows["cpu1"]["comm"] = [b"sshd", b"bash"], [b"", b"bash"]
    raw = _raw(keys, rows, MapType.PERCPU_HASH)
    raw.value_size, raw.ncpus = value.itemsize, 2
    df = frames.map_frame(raw, _layout(np.dtype(np.uint32), value, MapType.PERCPU_HASH))
    assert list(df.columns) == ["key", "count_cpu0", "count_cpu1", "count_total", "comm_cpu0",
                                "comm_cpu1"]
    assert df["key"].tolist() == [3, 7] and df["count_total"].tolist() == [32, 71]
    assert df["comm_cpu0"].tolist() == ["bash", "sshd"] and df["comm_cpu1"].tolist() == ["bash", ""]


def test_large_frames_reuse_freed_blocks_but_never_share_them():
    from ebpf_nb.kernel.blockpool import POOL
    n = 200_000  # 3.2 MB of value rows: pool-sized
    keys = RNG.choice(2**32 - 1, size=n, replace=False).astype(np.uint32)
    layout = _layout(np.dtype(np.uint32), FLOW)

    def frame(scale: int) -> pd.DataFrame:
        values = np.zeros(n, FLOW)
        values["packets"], values["bytes"] = keys * scale, keys.astype(np.uint64) * scale
        return frames.map_frame(_raw(keys, values), layout)

    first = frame(1)
    expected = first.copy(deep=True)
    second = frame(2)  # the first frame is alive: its blocks are not handed out again
    pd.testing.assert_frame_equal(first, expected)
    for col in first.columns:
        assert not np.shares_memory(first[col].to_numpy(), second[col].to_numpy())
    reused = POOL.reused
    del first
    gc.collect()
    third = frame(3)  # now the first frame's rows can be written again, without a page fault
    assert POOL.reused > reused
    assert third["bytes"].tolist() == (np.sort(keys).astype(np.uint64) * 3).tolist()
    assert (second["bytes"].to_numpy() == np.sort(keys).astype(np.uint64) * 2).all()
