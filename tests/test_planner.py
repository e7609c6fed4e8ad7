# Copyright © 2026 mlx-lowbit contributors.
"""The GPU planner (mlx_lowbit/planner.cpp, work_split.h): plain checks of
the dispatch plans and of the work split they imply. The per-threadgroup
segments come from the same work_split.h functions the kernels call."""

import struct
import sys
from collections import defaultdict

import mlx.core as mx
import pytest

from mlx_lowbit import _ext

KMIN = 2  # PlannerConstants::kMinItersPerGroup


def plan(m, n, k, schedule="auto", *, fmt="ternary", dtype=mx.float16, cores=4, **kw):
    opts = {"vector_size": 8, "index_bits": 5} if fmt == "codebook" else {}
    return _ext.metal_plan(
        fmt,
        32,
        opts.get("vector_size", 0),
        opts.get("index_bits", 0),
        False,
        False,
        dtype,
        m,
        n,
        k,
        schedule=schedule,
        gpu_cores=cores,
        with_work=True,
        **kw,
    )


def kernels(p):
    return [l["kernel"] for l in p["launches"]]


# Shapes x schedules x cores that give every kind of split: tiles shared by
# 2 and by 3 threadgroups, more tiles than threadgroups and fewer, one and
# several K-iterations per tile, ragged M and N.
SPLIT_CASES = [
    (20, 40, 160, "streamk", 2),
    (20, 40, 160, "streamk", 3),
    (40, 72, 160, "streamk", 2),
    (40, 72, 32, "streamk", 1),
    (100, 300, 4096, "streamk", 8),
    (20, 160, 160, "hybrid", 1),
    (330, 650, 512, "hybrid", 4),
    (20, 40, 160, "splitk", 2),
    (64, 96, 96, "dataparallel", 2),
    (200, 200, 1024, "auto", 10),
]


@pytest.mark.parametrize("m,n,k,schedule,cores", SPLIT_CASES)
def test_every_iteration_runs_exactly_once(m, n, k, schedule, cores):
    p = plan(m, n, k, schedule, cores=cores)
    prm, work = p["params"], p["work"]
    tiles, iters = prm["tiles_m"] * prm["tiles_n"], prm["iters_per_tile"]
    assert prm["tiles_m"] * p["tile"][0] >= m > (prm["tiles_m"] - 1) * p["tile"][0]
    assert prm["tiles_n"] * p["tile"][1] >= n > (prm["tiles_n"] - 1) * p["tile"][1]
    assert iters == k // 32
    runs = defaultdict(int)
    for segments in work["groups"]:
        for tile, k0, k1, _ in segments:
            assert 0 <= k0 < k1 <= iters
            for it in range(k0, k1):
                runs[(tile, it)] += 1
    assert runs == {(t, i): 1 for t in range(tiles) for i in range(iters)}
    # One GEMM threadgroup per list of segments.
    gemm = next(
        l for l in p["launches"] if "_fixup_" not in l["kernel"] and "_zero_" not in l["kernel"]
    )
    assert gemm["grid"] == (len(work["groups"]), 1, 1)


@pytest.mark.parametrize("m,n,k,schedule,cores", SPLIT_CASES)
def test_every_tile_has_one_place(m, n, k, schedule, cores):
    """The swizzled tile order (work_split.h tile_coord) puts the tiles the
    planner counts on every (tile row, tile column) once."""
    p = plan(m, n, k, schedule, cores=cores)
    prm = p["params"]
    expected = {(i, j) for i in range(prm["tiles_m"]) for j in range(prm["tiles_n"])}
    assert sorted(p["work"]["tiles"]) == sorted(expected)


def test_tile_order_walks_panels():
    """Panels of 2^s tile rows, one after another, each walked down its rows
    and then across; the last panel may be shorter. Every shape and log."""
    for tiles_m in range(1, 10):
        for tiles_n in range(1, 8):
            for log in range(0, 5):
                coords = _ext.metal_tile_coords(tiles_m, tiles_n, log)
                height = 1 << log
                expected = []
                for top in range(0, tiles_m, height):
                    rows = min(height, tiles_m - top)
                    expected += [(top + i, j) for j in range(tiles_n) for i in range(rows)]
                assert [tuple(c) for c in coords] == expected, (tiles_m, tiles_n, log)


@pytest.mark.parametrize(
    "m,n,k,cores,tile,log",
    [
        # 64 x 64 tiles, 80 groups: sqrt(80 x (64 x 2.5 / 8) / (64 x 2)) = 3.5 -> 4 rows.
        (4096, 4096, 4096, 40, 64, 2),
        # 20 groups: sqrt(20 x 20 / 128) = 1.8 -> 2 rows.
        (512, 4096, 4096, 10, 64, 1),
        # One tile row: a panel need not be taller.
        (20, 4096, 4096, 40, 32, 0),
        # 24 tiles in flight, 32 x 32: sqrt(24 x 10 / 64) = 1.9 -> 2 rows of 3.
        (96, 256, 64, 40, 32, 1),
    ],
)
def test_swizzle_follows_the_traffic_model(m, n, k, cores, tile, log):
    p = plan(m, n, k, "dataparallel", cores=cores)
    assert p["tile"][0] == tile
    assert p["params"]["swizzle_log"] == log


@pytest.mark.parametrize("m,n,k,schedule,cores", SPLIT_CASES)
def test_partial_tiles_meet_in_the_fixup(m, n, k, schedule, cores):
    """A tile run by one threadgroup is stored whole; a split tile's partials
    go to workspace slots that the fix-up sums in K order."""
    p = plan(m, n, k, schedule, cores=cores)
    work = p["work"]
    iters = p["params"]["iters_per_tile"]
    by_tile = defaultdict(list)
    for segments in work["groups"]:
        for tile, k0, k1, slot in segments:
            by_tile[tile].append((k0, k1, slot))
    written = []
    for tile, parts in by_tile.items():
        parts.sort()
        fixup_slots = work["fixups"][tile] if tile < len(work["fixups"]) else []
        if len(parts) == 1:
            assert parts[0] == (0, iters, -1)
            assert fixup_slots == []
            continue
        slots = [s for _, _, s in parts]
        assert all(0 <= s < work["workspace_slots"] for s in slots)
        assert fixup_slots == slots  # K order
        written += slots
    # No slot is written twice.
    assert len(written) == len(set(written))
    assert p["workspace_floats"] == work["workspace_slots"] * p["tile"][0] * p["tile"][1]
    has_fixup = any("_fixup_" in name for name in kernels(p))
    assert has_fixup == any(len(parts) > 1 for parts in by_tile.values())


def test_split_cases_cover_the_scenarios():
    """The cases above really contain tiles split 2 and 3 ways, and both more
    and fewer tiles than stream-K threadgroups."""
    shares, ratios = set(), set()
    for m, n, k, schedule, cores in SPLIT_CASES:
        p = plan(m, n, k, schedule, cores=cores)
        shares |= {len(slots) for slots in p["work"]["fixups"]}
        prm = p["params"]
        if prm["sk_groups"]:
            ratios.add((prm["sk_tiles"] > prm["sk_groups"]) - (prm["sk_tiles"] < prm["sk_groups"]))
    assert {2, 3} <= shares
    assert {1, -1} <= ratios


@pytest.mark.parametrize(
    "m,n,k,schedule,cores", [c for c in SPLIT_CASES if c[3] in ("streamk", "hybrid")]
)
def test_streamk_shares_are_even_and_long_enough(m, n, k, schedule, cores):
    p = plan(m, n, k, schedule, cores=cores)
    prm = p["params"]
    counts = [
        sum(k1 - k0 for _, k0, k1, _ in segs) for segs in p["work"]["groups"][: prm["sk_groups"]]
    ]
    assert max(counts) - min(counts) <= 1
    assert min(counts) >= KMIN
    assert prm["sk_groups"] <= _ext.persistent_groups(cores)
    # Asked for by name, stream-K uses the whole persistent grid when the
    # iterations allow it.
    if schedule == "streamk":
        total = prm["sk_tiles"] * prm["iters_per_tile"]
        assert prm["sk_groups"] == min(_ext.persistent_groups(cores), total // KMIN)


def test_hybrid_keeps_full_waves_data_parallel():
    # 32 x 32 tiles: 7 x 3 = 21 tiles on 8 groups = 2 full waves + 5.
    p = plan(7 * 32, 3 * 32, 256, "hybrid", cores=4, bm=32)
    prm = p["params"]
    groups = _ext.persistent_groups(4)
    assert groups == 8
    assert prm["sk_tiles"] == groups + 21 % groups
    dp = p["work"]["groups"][prm["sk_groups"] :]
    assert [segs for segs in dp] == [[(t, 0, 8, -1)] for t in range(prm["sk_tiles"], 21)]


@pytest.mark.parametrize(
    "tiles_m,tiles_n,k,expected",
    [
        (2, 4, 256, "dataparallel"),  # 8 tiles: one full wave of 8
        (4, 4, 256, "dataparallel"),  # two full waves
        (3, 5, 256, "dataparallel"),  # 15/16 = 0.94 >= 0.92
        (3, 3, 256, "hybrid"),  # 9/16: a nearly empty last wave
        (29, 1, 256, "hybrid"),  # 29/32 = 0.906 < 0.92
        (1, 2, 4096, "streamk"),  # 2 tiles, 128 K-iterations: split K
        (1, 2, 64, "dataparallel"),  # 2 tiles, 2 K-iterations: nothing to split
    ],
)
def test_auto_follows_the_wave_efficiency(tiles_m, tiles_n, k, expected):
    p = plan(32 * tiles_m, 32 * tiles_n, k, "auto", cores=4, bm=32)
    assert p["schedule"] == expected


def test_auto_uses_gemv_up_to_eight_rows():
    assert plan(1, 64, 256)["schedule"] == "gemv"
    assert plan(8, 64, 256)["schedule"] == "gemv"
    assert plan(9, 64, 256)["schedule"] != "gemv"


@pytest.mark.parametrize("m,mr", [(1, 1), (2, 2), (3, 4), (8, 4), (11, 4)])
def test_gemv_grid(m, mr):
    """MR: the smallest of 1, 2, 4 rows of x that holds M, else 4. A
    threadgroup of 8 simdgroups owns 32 ternary rows or 64 binary/codebook
    rows (x is staged once per threadgroup)."""
    p = plan(m, 37, 256, "gemv")
    (launch,) = p["launches"]
    assert launch["kernel"] == f"lowbit_gemv_ternary_float16_mr{mr}"
    assert launch["grid"] == (-(-37 // 32), -(-m // mr), 1)
    assert launch["threadgroup"] == (256, 1, 1)
    assert p["workspace_floats"] == 0


def test_large_tiles_only_when_they_fill_the_gpu():
    assert plan(512, 512, 256, cores=4)["tile"][:2] == (64, 64)
    assert plan(40, 512, 256, cores=4)["tile"][:2] == (32, 32)  # M below one large tile
    assert plan(128, 128, 256, cores=8)["tile"][:2] == (32, 32)  # 4 large tiles < 16 groups


def test_cost_model():
    # A single tile with a long K: splitting it pays despite the fix-up.
    assert _ext.choose_sk_groups(1, 256, 16) > 4
    # Four tiles of 8 iterations on 16 groups: one tile each, no fix-up.
    assert _ext.choose_sk_groups(4, 8, 16) == 4
    for tiles, iters, groups in [(3, 5, 8), (1, 2, 16), (7, 33, 20)]:
        g = _ext.choose_sk_groups(tiles, iters, groups)
        assert 1 <= g <= min(groups, max(1, tiles * iters // KMIN))


def test_atomic_fixup_is_gone_with_a_reason():
    """It ran three passes where the deterministic fix-up runs two."""
    with pytest.raises(ValueError, match="'atomic' was removed.*three passes"):
        plan(20, 40, 160, "streamk", cores=2, streamk_fixup="atomic")
    assert "_zero_" not in " ".join(kernels(plan(20, 40, 160, "streamk", cores=2)))


def test_params_struct_layout():
    """The bytes the kernels read: WeightParams then the GEMM fields, int32
    each, in kernel_params.h's order."""
    p = plan(20, 40, 160, "splitk", split_k=2)
    gemm = p["launches"][0]
    fields = struct.unpack("<17i", gemm["params"])
    n, k, group, words, index_bits, has_bias, scales_f32 = fields[:7]
    assert (n, k, group, words, index_bits, has_bias, scales_f32) == (40, 160, 32, 10, 0, 0, 0)
    m, tiles_m, tiles_n, iters, schedule, fixup, split_k, sk_tiles, sk_groups, swz = fields[7:]
    assert (m, tiles_m, tiles_n, iters, schedule, fixup, split_k, swz) == (20, 1, 2, 5, 1, 0, 2, 0)


def test_tile_overrides():
    p = plan(100, 100, 256, "dataparallel", bm=64)
    assert p["tile"] == (64, 64, 32, 2, 2)
    assert kernels(p) == ["lowbit_dataparallel_ternary_float16_bm64_bn64_bk32_wm2_wn2"]
    with pytest.raises(
        ValueError, match=r"No GPU tile .*\(48, 0, 0\).*available: \(32, 32, 32\), \(64, 64, 32\)"
    ):
        plan(100, 100, 256, bm=48)
    with pytest.raises(ValueError, match="available"):
        plan(100, 100, 256, bk=64)


def test_gpu_request_checks():
    check = _ext.validate_gpu_request
    check("ternary", 32, 0, 0, K=256, split_k=8)
    with pytest.raises(ValueError, match=r"split_k=9 exceeds the 8 K-iterations"):
        check("ternary", 32, 0, 0, K=256, split_k=9)
    with pytest.raises(ValueError, match="Unknown schedule 'fast'"):
        check("binary", 32, 0, 0, K=256, schedule="fast")
    with pytest.raises(ValueError, match="No GPU tile"):
        check("codebook", 32, 8, 5, K=256, bn=16)


def test_split_k_is_clamped_by_default_and_kept_when_asked():
    assert (
        plan(20, 40, 160, "splitk", cores=8)["params"]["split_k"] == 5
    )  # 16 groups / 2 tiles, <= 5 iters
    assert plan(20, 40, 160, "splitk", split_k=3)["params"]["split_k"] == 3


def test_gpu_cores_override(monkeypatch):
    monkeypatch.setenv("MLX_LOWBIT_GPU_CORES", "5")
    assert _ext.gpu_cores() == 5
    monkeypatch.setenv("MLX_LOWBIT_GPU_CORES", "five")
    with pytest.raises(ValueError, match="MLX_LOWBIT_GPU_CORES.*positive integer.*'five'"):
        _ext.gpu_cores()
    monkeypatch.setenv("MLX_LOWBIT_GPU_CORES", "0")
    with pytest.raises(ValueError, match="positive integer"):
        _ext.gpu_cores()
    monkeypatch.setenv("MLX_LOWBIT_GPU_CORES", "40")
    assert _ext.gpu_core_info() == {"cores": 40, "source": "MLX_LOWBIT_GPU_CORES"}
    monkeypatch.delenv("MLX_LOWBIT_GPU_CORES")
    if sys.platform == "darwin":
        info = _ext.gpu_core_info()
        assert info["cores"] >= 1 and info["source"] == "IORegistry gpu-core-count"
    else:  # no device to ask: an error naming the fix, never a guessed 8
        with pytest.raises(
            RuntimeError, match="Cannot read the GPU core count.*MLX_LOWBIT_GPU_CORES"
        ):
            _ext.gpu_cores()


def test_dequantize_plan():
    p = _ext.metal_dequantize_plan("codebook", 32, 16, 12, False, False, mx.bfloat16, N=7, K=96)
    (launch,) = p["launches"]
    assert launch["kernel"] == "lowbit_dequantize_codebook_v16_bfloat16"
    # A threadgroup per row and kDequantizeK (2048) weights, kChunk (8) per thread.
    assert tuple(launch["grid"]) == (1, 7, 1) and tuple(launch["threadgroup"]) == (256, 1, 1)
    p = _ext.metal_dequantize_plan("ternary", 32, 0, 0, False, False, mx.float16, N=3, K=4128)
    assert tuple(p["launches"][0]["grid"]) == (3, 3, 1)


def test_bad_plan_arguments():
    with pytest.raises(ValueError, match="group_size must be a positive multiple of 32"):
        _ext.metal_plan("ternary", 48, 0, 0, False, False, mx.float16, 4, 4, 96)
    with pytest.raises(ValueError, match="Unknown streamk_fixup"):
        plan(4, 4, 96, streamk_fixup="sometimes")
