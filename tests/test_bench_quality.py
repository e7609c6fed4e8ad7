# Copyright © 2026 mlx-lowbit contributors.
"""`mlx-lowbit bench quality` on a tiny random llama (no SmolLM2, no
network): the files it writes, the records' fields and that their numbers
are plausible (never what the perplexities are)."""

import json
import math

import mlx.core as mx
import pytest
from lm_models import llama_config, tiny_model, tiny_tokenizer

from mlx_lowbit.bench import quality
from mlx_lowbit.bench import run as bench_run

ROWS = ["float16", "mlx-affine-4bit", "ternary-rtn", "ternary-gptq", "codebook-v8c6-gptq"]


def _source():
    config = llama_config()
    return tiny_model(config), tiny_tokenizer(), config


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    results = quality.run_quality(
        _source(), ROWS, out, calib_samples=4, calib_length=64, eval_tokens=96, device="cpu"
    )
    return out, results


def test_writes_json_table_and_plot(ran):
    out, results = ran
    on_disk = json.loads((out / "quality.json").read_text())
    assert [r["name"] for r in on_disk["rows"]] == ROWS
    for key in ("host", "mlx", "mlx_lm", "date", "calibration", "eval_tokens", "targets"):
        assert key in on_disk, key
    assert on_disk["host"]["cpu"]["cores"] >= 1
    assert on_disk["calibration"] == {
        "source": "pydoc_data.topics",
        "samples": 4,
        "length": 64,
        "tokens": 256,
    }
    assert on_disk["eval_tokens"] == 96
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp*"))  # written atomically, nothing left over
    table = (out / "quality.md").read_text()
    assert table == quality.markdown(results)
    for name in ROWS:
        assert f"| {name} |" in table
    # Sorted by whole-model bits per weight; rows that did not run last.
    order = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert order.index("ternary-rtn") < order.index("mlx-affine-4bit") < order.index("float16")
    assert order.index("float16") < order.index("codebook-v8c6-gptq")


def test_records_are_plausible(ran):
    _, results = ran
    rows = {r["name"]: r for r in results["rows"]}
    base = rows["float16"]
    assert base["status"] == "ok" and math.isfinite(base["perplexity"]) and base["perplexity"] > 1
    assert base["bpw_model"] == 16 and base["bpw_layers"] is None and base["ppl_ratio"] == 1
    for name in ("mlx-affine-4bit", "ternary-rtn", "ternary-gptq"):
        r = rows[name]
        assert r["status"] == "ok", r["reason"]
        assert 1 < r["bpw_model"] < 16 and r["bpw_layers"] < r["bpw_model"]
        assert math.isfinite(r["perplexity"])
        assert r["ppl_ratio"] == pytest.approx(r["perplexity"] / base["perplexity"])
        assert isinstance(r["answer_question"], str) and isinstance(r["answer_continuation"], str)
        assert r["quantize_s"] >= 0 and r["eval_s"] > 0
    assert rows["ternary-rtn"]["bpw_model"] < rows["mlx-affine-4bit"]["bpw_model"]
    assert (
        rows["ternary-rtn"]["device"] == "cpu" and rows["ternary-rtn"]["activations"] == "float32"
    )
    assert rows["ternary-gptq"]["settings"]["calibration_tokens"] == 256
    assert rows["ternary-rtn"]["settings"]["group_size"] == 64
    failed = rows["codebook-v8c6-gptq"]
    assert failed["status"] == "not supported" and failed["reason"]
    assert "perplexity" not in failed


def test_rows_start_from_the_float_model(ran):
    # Quantized rows ran before this one: a fresh float copy still has the
    # float16 row's perplexity.
    _, results = ran
    fresh, tokenizer, _, _ = quality.load_float(_source())
    from mlx_lowbit.lm.evaluate import encode, eval_text, perplexity

    ppl = perplexity(fresh(), encode(tokenizer, eval_text(), 96))
    assert ppl == pytest.approx(results["rows"][0]["perplexity"], rel=1e-3)


def test_missing_methods_and_options_are_rows_not_crashes(tmp_path):
    results = quality.run_quality(
        _source(),
        ["ternary-distill", "ternary-rtn+rotate"],
        tmp_path,
        calib_samples=4,
        calib_length=64,
        eval_tokens=32,
        device="cpu",
        plots_on=False,
    )
    for r in results["rows"]:
        assert r["status"] in ("ok", "not available"), r
        assert r["status"] == "ok" or r["reason"]
    assert results["plot"] is None and (tmp_path / "quality.json").is_file()


def test_bad_rows_pattern_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="'nope-\\*' matches no row"):
        quality.select_rows(["float16", "nope-*"])
    with pytest.raises(SystemExit, match="matches no row"):
        bench_run.main(["quality", "--rows", "nope", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_row_names_and_quick_plan():
    names = [s.name for s in quality.row_specs()]
    assert len(names) == len(set(names))
    assert {"float16", "mlx-lm-dwq-2bit", "codebook-v16c12-gptq+rotate"} <= set(names)
    assert [s.name for s in quality.select_rows(quality.QUICK_ROWS)] == quality.QUICK_ROWS
    assert [s.name for s in quality.select_rows(["binary*-rtn"])] == [
        "binary-rtn",
        "binary+bias-rtn",
    ]


def test_mlx_lm_quantizers_run_offline(tmp_path):
    # mlx-lm's GPTQ, AWQ and DWQ fed our calibration tokens (about 6 s together here).
    results = quality.run_quality(
        _source(),
        ["float16", "mlx-lm-*"],
        tmp_path,
        calib_samples=8,
        calib_length=64,
        eval_tokens=64,
        device="cpu",
    )
    rows = {r["name"]: r for r in results["rows"]}
    for name in ("mlx-lm-gptq-2bit", "mlx-lm-awq-2bit", "mlx-lm-dwq-2bit"):
        r = rows[name]
        assert r["status"] == "ok", r["reason"]
        assert r["bpw_layers"] == pytest.approx(2.5) and math.isfinite(r["perplexity"])
    assert mx.default_device() == mx.cpu
