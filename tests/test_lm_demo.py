# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit demo --quick`` on the CPU: it runs, and its numbers say what
they should (about a minute and a half on a 2-core machine)."""

import math

import pytest

from mlx_lowbit import demo
from mlx_lowbit.cli import main


@pytest.fixture(scope="module")
def demo_run():
    """(rows, printed output) of one ``mlx-lowbit demo --quick --device cpu``."""
    captured = {}
    run = demo.run_demo

    def spy(*args, **kwargs):
        captured["result"] = run(*args, **kwargs)
        return captured["result"]

    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "run_demo", spy)
    import contextlib
    import io

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main(["demo", "--quick", "--device", "cpu"])
    finally:
        mp.undo()
    rows, _ = captured["result"]
    return {r.label: r for r in rows}, out.getvalue()


def test_table_and_honest_note_are_printed(demo_run):
    rows, text = demo_run
    for label in rows:
        assert label in text
    assert "destroys a 135M model" in text and "max|dlogit|" in text


def test_rows(demo_run):
    rows, _ = demo_run
    expected = ["float16 (dense)", "MLX 4-bit g32"] + [label for label, *_ in demo.RECIPES]
    assert list(rows) == expected
    fp16, q4 = rows["float16 (dense)"], rows["MLX 4-bit g32"]
    assert fp16.bits_model == 16.0 and "Paris" in fp16.completion
    assert 1 < fp16.perplexity < 100
    assert q4.perplexity < 1.5 * fp16.perplexity  # 4-bit RTN keeps the model
    assert q4.bits_layers == pytest.approx(5.0)  # 4 bits + fp16 scale and bias per 32
    assert "Paris" in q4.completion
    assert q4.activations == "float32"
    for r in rows.values():
        assert r.prefill_tps > 0 and r.decode_tps > 0 and math.isfinite(r.perplexity)


def test_low_bit_rows_match_their_formats(demo_run):
    rows, _ = demo_run
    assert rows["ternary g64"].bits_layers == pytest.approx(2 + 16 / 64)
    assert rows["binary+bias g64"].bits_layers == pytest.approx(1 + 32 / 64)
    assert rows["codebook v8 c6 g192"].bits_layers < 1.0
    for label, *_ in demo.RECIPES:
        r = rows[label]
        assert r.activations == "float32"  # as the MLX 4-bit row, on the CPU
        # The kernels compute what the format stores: fp32 rounding only.
        assert r.max_logit_diff < 1e-2, (label, r.max_logit_diff)
        assert r.bits_model < rows["MLX 4-bit g32"].bits_model


def test_reference_rows_are_the_committed_result(demo_run):
    import json
    from pathlib import Path

    _, text = demo_run
    assert "Calibrated quantizers, NOT run by this demo" in text
    ref = json.loads((Path(demo.__file__).parent / "data" / demo.REFERENCE).read_text())
    # One source: the shipped rows are copied from the committed bench result.
    result = json.loads((Path(__file__).parents[1] / ref["source"]).read_text())
    committed = {r["name"]: r for r in result["rows"]}
    for row in ref["rows"]:
        assert row["name"] in text
        for key, value in row.items():
            assert committed[row["name"]][key] == value, (row["name"], key)
    assert result["date"] == ref["date"] and result["eval_tokens"] == ref["eval_tokens"]
