# Copyright © 2026 mlx-lowbit contributors.
"""`mlx-lowbit bench --quick`: runs in CI; checks the files it writes and that
its numbers are sane (never how fast anything is)."""

import json
import math

import pytest

from mlx_lowbit import bench, cli


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results = bench.bench(quick=True, out=str(out), device="cpu", sections=bench.SECTIONS)
    return out, results


def test_writes_every_output(quick):
    out, results = quick
    for name in (
        "report.md",
        "results.json",
        "results.csv",
        "roofline.png",
        "time_vs_m_square_4096x4096.png",
    ):
        assert (out / name).stat().st_size > 0, name
    for png in results["plots"]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["plan"] == "quick" and on_disk["kernels"]
    csv_lines = (out / "results.csv").read_text().splitlines()
    n_rows = sum(len(results.get(k, [])) for k in bench.SECTIONS)
    assert len(csv_lines) == 1 + n_rows


def test_device_and_peaks_are_described(quick):
    _, results = quick
    info = results["device"]
    assert info["cpu_cores"] >= 1 and info["cpu_model"]
    assert info["cpu_path"] in info["cpu_paths_available"]
    assert info["peak_gflops_per_core"] > 0 and info["copy_bandwidth_gbps_1thread"] > 0
    assert "peak" in info["peak_note"]


def test_kernel_rows_are_consistent(quick):
    _, results = quick
    kernels = [r for r in results["kernels"] if r["kind"] == "kernel"]
    labels = {label for label, _, _ in bench.FORMATS}
    # Every format, both activation paths, every M of the plan.
    assert {(r["name"], r["activation_bits"], r["M"]) for r in kernels} == {
        (label, bits, m) for label in labels for bits in (0, 8) for m in bench.QUICK.ms
    }
    for r in kernels:
        assert 0 < r["p10_s"] <= r["median_s"] <= r["p90_s"] < 60
        assert math.isclose(r["gflops"], 2 * r["M"] * r["N"] * r["K"] / r["median_s"] / 1e9)
        assert 0.5 < r["bits_per_weight"] < 2.5
        assert r["repeats"] >= 3
    # Ratios exist exactly where the baseline was measured, and are time ratios.
    base = {
        (r["name"], r["M"]): r["median_s"] for r in results["kernels"] if r["kind"] == "baseline"
    }
    assert ("dense f32", 1) in base and base[("dense f32", 1)]
    for r in kernels:
        b = base.get(("dense f32", r["M"]))
        if b:
            assert math.isclose(r["x dense f32"], b / r["median_s"])
        else:
            assert r["x dense f32"] is None
    skipped = [r for r in results["kernels"] if r["kind"] == "baseline" and r["median_s"] is None]
    assert all(r["note"].startswith("skipped") for r in skipped)


def test_ablations_are_sane(quick):
    _, results = quick
    for r in results["activations"]:
        # int8 rounding of x changes the result a little, never a lot.
        assert 1e-5 < r["int8_err_vs_float"] < 0.05
        assert r["float_err_vs_exact"] < 1e-3
    acc = results["accumulation"]
    for r in acc:
        for metric in ("err / output RMS", "err / sum abs(xw)"):
            assert r[f"fp32 sequential {metric}"] < r[f"fp16 32 lanes {metric}"] / 10
            assert r[f"fp32 sequential {metric}"] < r[f"fp16 sequential {metric}"] / 10
    # Relative to the output, fp16 accumulation gets worse with K.
    seq16 = [r["fp16 sequential err / output RMS"] for r in sorted(acc, key=lambda r: r["K"])]
    assert seq16[-1] > seq16[0]
    by_format = {}
    for r in results["group_size"]:
        by_format.setdefault(r["name"], []).append((r["group_size"], r["bits_per_weight"]))
    for rows in by_format.values():
        bpws = [b for _, b in sorted(rows)]
        assert bpws == sorted(bpws, reverse=True)  # larger groups, fewer bits
    for r in results["codebook"]:
        if r["vector_size"]:
            n, k = bench.QUICK.ablation_shape
            idx_words = math.ceil(k // r["vector_size"] * r["index_bits"] / 32)
            cb_bytes = (1 << r["index_bits"]) * r["vector_size"] // 8
            expect = (n * idx_words * 32 + n * (k // 128) * 16 + 8 * cb_bytes) / (n * k)
            assert math.isclose(r["bits_per_weight"], expect, rel_tol=1e-9)
            assert 0 < r["output_err"] < 1.5
    # On the CPU every schedule runs the same kernel: identical results.
    assert results["schedule"] and all(r["max_diff_vs_auto"] == 0.0 for r in results["schedule"])
    e2e = results["e2e"]
    assert e2e and (e2e[0].get("skipped") or all(r["decode_tok_s"] > 0 for r in e2e))


def test_report_states_targets_and_same_run_comparisons(quick):
    out, results = quick
    report = (out / "report.md").read_text()
    assert "## CPU targets" in report
    # No fixed ggml figures: without --ggml the report says how to get same-run ones.
    assert "## ggml, same run" in report and "--ggml PATH" in report
    assert "TQ2_0 0.27" not in report and "not re-measured" not in report
    assert "square 4096x4096" in report
    assert (
        "family" in results["device"]["cpu_family_model"]
        or not results["device"]["cpu_family_model"]
    )
    # numpy's BLAS is quieted before anything is timed.
    assert any("1 thread" in n for n in results["notes"])
    # M = 1 against the machine's read bandwidth, resident and streaming.
    assert "## M = 1: achieved bandwidth" in report
    assert results["device"]["read_bandwidth_streaming_gbps_1thread"] > 0
    m1 = [r for r in results["kernels"] if r["kind"] == "kernel" and r["M"] == 1]
    assert m1 and all(r["read_bandwidth_resident_gbps_1thread"] > 0 for r in m1)
    # MLX dense float32 with OpenBLAS preloaded, next to MLX's own (reference BLAS) row.
    if bench.kernels.OPENBLAS and __import__("os").path.isfile(bench.kernels.OPENBLAS):
        names = {r["name"] for r in results["kernels"] if r["kind"] == "baseline"}
        assert {"dense f32", bench.kernels.OPENBLAS_DENSE} <= names
        assert bench.kernels.OPENBLAS_DENSE in report
    verdicts = {v for _, _, v in results["targets"]}
    assert verdicts <= {"met", "missed", "missed by wall time, met by CPU time", "-"}


def test_cli_dispatches_bench(tmp_path, capsys):
    cli.main(["bench", "--quick", "--sections", "accumulation", "--out", str(tmp_path)])
    assert "Accumulation precision vs K" in (tmp_path / "report.md").read_text()
    with pytest.raises(SystemExit, match="unknown section"):
        cli.main(["bench", "--sections", "kernels,warp", "--out", str(tmp_path)])


def test_ggml_needs_a_build(tmp_path):
    with pytest.raises(SystemExit, match="ggml-mm-bench"):
        cli.main(["bench", "--ggml", str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_ggml_targets_from_a_ggml_bench_run(tmp_path):
    """Issue 13's targets judged on ggml-bench's per-round ratios: a
    synthetic run where ternary int8 takes 0.5x TQ2_0's time in one round
    and 0.9x in the other (median 0.7: met), binary int8 0.6x Q1_0 (missed)."""
    from mlx_lowbit.bench import ggml

    try:
        tool = ggml.find_tool()
    except SystemExit:
        pytest.skip("ggml-bench (../shared/tools/ggml-bench) is not beside this checkout")
    results = []
    for rnd, tern in ((0, 0.5), (1, 0.9)):
        for side, name, t in (
            ("ggml", "tq2_0", 1.0),
            ("ggml", "q1_0", 1.0),
            ("lowbit", "ternary", tern),
            ("lowbit", "binary", 0.6),
        ):
            r = {"side": side, "threads": 1, "M": 1, "round": rnd, "median_s": t}
            r.update(cpu_s=t, rel_err=0.1)
            if side == "ggml":
                r["type"] = name
            else:
                r.update(fmt=name, dtype="float32", bits=8)
            results.append(r)
    got = {t[0]: t for t in ggml.targets(tool, {"meta": {"rounds": 2}, "results": results})}
    assert got["M=1: ternary int8 / TQ2_0 <= 0.7"][2] == "met"
    assert "0.70 [0.50-0.90]" in got["M=1: ternary int8 / TQ2_0 <= 0.7"][1]
    assert got["M=1: binary int8 / Q1_0 <= 0.5"][2] == "missed"
    assert got["M=8: ternary int8 / TQ2_0 <= 0.6"][1:] == ("not measured", "-")
