# Copyright © 2026 mlx-lowbit contributors.
"""The emulator's cost model on the shipped kernels (mlx_lowbit.bench.
metal_model): the GEMV's design targets, and docs/KERNELS.md holding the
model's current output."""

from pathlib import Path

import pytest

from mlx_lowbit.bench import metal_model as mm

DOCS = Path(__file__).resolve().parents[1] / "docs" / "KERNELS.md"


@pytest.fixture(scope="module")
def result():
    return mm.model()


def rows(result, schedule, m):
    return {r["format"]: r for r in result["rows"] if r["schedule"] == schedule and r["M"] == m}


def test_gemv_meets_its_targets(result):
    gemv = rows(result, "gemv", 1)
    assert set(gemv) == {label for label, _, _ in mm.FORMATS}
    for label, r in gemv.items():
        assert r["x coalescing"] >= 0.9, label
        assert r["x / weight traffic"] <= 0.25, label
        assert r["bank conflict factor"] == 1.0, label
        assert r["decode ops / weight"] <= result["mlx_qdot_ops_per_weight"], label
        assert r["packed coalescing"] >= 0.9, label
    for label in ["codebook v16 c12", "codebook v8 c5"]:
        # The patterns are looked up in the threadgroup's copy of the
        # codebook (random reads: their bank conflicts are not a target).
        assert gemv[label]["table bank conflict factor"] is not None, label


def test_gemm_tiles_load_whole_lines_without_bank_conflicts(result):
    gemms = [
        r
        for r in result["rows"]
        if r["schedule"] not in ("gemv", "dequantize") and "_fixup_" not in r["kernel"]
    ]
    # Every format, both tile element types (half; float for bfloat16 x), every schedule.
    assert len(gemms) == len(mm.FORMATS) * 4
    for r in gemms:
        assert r["x coalescing"] >= 0.9, r["kernel"]
        assert r["bank conflict factor"] == 1.0, r["kernel"]
        # The staged packed words: whole lines where a tile's K range covers
        # whole lines of its rows (ternary and binary rows at K = 256 are one
        # line or half of one; split-K's halves, and codebook rows of 20-24
        # bytes, are not: docs/KERNELS.md).
        if r["format"] in ("ternary", "binary") and r["schedule"] != "splitk":
            assert r["packed coalescing"] >= 0.9, r["kernel"]


def test_every_kernel_family_is_modelled(result):
    kernels = {r["kernel"] for r in result["rows"]}
    for family in ["_mr1", "_mr2", "_mr4", "dataparallel", "splitk", "streamk", "fixup"]:
        assert any(family in k for k in kernels), family
    for label, _, _ in mm.FORMATS:
        assert any(r["format"] == label and "_dequantize_" in r["kernel"] for r in result["rows"])


def test_dequantize_reads_and_writes_whole_lines(result):
    deq = rows(result, "dequantize", None)
    assert set(deq) == {label for label, _, _ in mm.FORMATS}
    for label, r in deq.items():
        assert r["out coalescing"] >= 0.9, label
        assert r["scales coalescing"] >= 0.9, label
        assert r["bank conflict factor"] == 1.0, label
        # A threadgroup's range of v8 c5 is 160 bytes of a row: 3 lines at best.
        assert r["packed coalescing"] >= (0.8 if label == "codebook v8 c5" else 0.9), label


def test_gemv_mr_rows_share_the_decode(result):
    # MR = 4 stages 4 rows of x per threadgroup for the same weights.
    one, four = rows(result, "gemv", 1), rows(result, "gemv", 4)
    for label in one:
        assert four[label]["x / weight traffic"] == pytest.approx(
            4 * one[label]["x / weight traffic"], rel=0.05
        )


def test_docs_hold_the_current_model(result):
    table = mm.markdown(result)
    assert table in DOCS.read_text(), (
        "docs/KERNELS.md's cost-model table is stale: paste the output of "
        "`mlx-lowbit bench --device metal-model`"
    )
