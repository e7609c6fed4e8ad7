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


def test_report_states_targets_and_reference_figures(quick):
    out, results = quick
    report = (out / "report.md").read_text()
    assert "## CPU targets" in report
    assert "not re-measured" in report and "ggml TQ2_0" in report
    assert "square 4096x4096" in report
    verdicts = {v for _, _, v in results["targets"]}
    assert verdicts <= {"met", "missed", "missed by wall time, met by CPU time", "-"}


def test_cli_dispatches_bench(tmp_path, capsys):
    cli.main(["bench", "--quick", "--sections", "accumulation", "--out", str(tmp_path)])
    assert "Accumulation precision vs K" in (tmp_path / "report.md").read_text()
    with pytest.raises(SystemExit, match="unknown section"):
        cli.main(["bench", "--sections", "kernels,warp", "--out", str(tmp_path)])
