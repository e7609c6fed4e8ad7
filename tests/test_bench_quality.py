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
    # Sorted by whole-model bits per weight.
    order = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert order.index("ternary-rtn") < order.index("mlx-affine-4bit") < order.index("float16")
    assert order.index("codebook-v8c6-gptq") < order.index("ternary-rtn")


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
    assert rows["codebook-v8c6-gptq"]["status"] == "ok"
    # Tiny layers: the codebook's own bytes weigh more than in a real model.
    assert rows["codebook-v8c6-gptq"]["bpw_layers"] < 2.0


def test_a_row_that_cannot_run_records_why(tmp_path, monkeypatch):
    def refuse(model, spec, *args):
        if spec.method == "gptq":
            raise ValueError("no such thing")
        raise RuntimeError("broke")

    monkeypatch.setattr(quality, "_quantize_ours", refuse)
    results = quality.run_quality(
        _source(),
        ["ternary-rtn", "ternary-gptq"],
        tmp_path,
        calib_samples=4,
        calib_length=64,
        eval_tokens=32,
        device="cpu",
        plots_on=False,
    )
    rtn, gptq = results["rows"]
    assert rtn["status"] == "error" and "RuntimeError: broke" in rtn["reason"]
    assert gptq["status"] == "error" and "no such thing" in gptq["reason"]
    assert "perplexity" not in rtn


def test_rows_start_from_the_float_model(ran):
    # Quantized rows ran before this one: a fresh float copy still has the
    # float16 row's perplexity.
    _, results = ran
    fresh, tokenizer, _, _ = quality.load_float(_source())
    from mlx_lowbit.lm.evaluate import encode, eval_text, perplexity

    ppl = perplexity(fresh(), encode(tokenizer, eval_text(), 96))
    assert ppl == pytest.approx(results["rows"][0]["perplexity"], rel=1e-3)


def test_distill_and_rotate_rows_and_the_loss_plot(tmp_path):
    distill = {"steps": 3, "batch_size": 2, "learning_rate": 1e-3}
    results = quality.run_quality(
        _source(),
        ["float16", "ternary-distill", "ternary-rtn+rotate"],
        tmp_path,
        calib_samples=9,
        calib_length=32,
        eval_tokens=32,
        device="cpu",
        distill=distill,
    )
    rows = {r["name"]: r for r in results["rows"]}
    for r in rows.values():
        assert r["status"] == "ok", r["reason"]
    trained = rows["ternary-distill"]["settings"]
    assert trained["steps"] == 3 and trained["batch_size"] == 2 and len(trained["loss_curve"]) == 3
    assert results["distill"]["steps"] == 3 and results["distill"]["generated"] == 0
    assert rows["ternary-rtn+rotate"]["settings"]["rotation"] == "hadamard"
    assert (tmp_path / "distill_loss.png").read_bytes()[:4] == b"\x89PNG"
    # The table says how the distill row trained; a merge keeps that per row.
    assert "| ternary-distill | 3 | 0.001 | 0 | float32 |" in (tmp_path / "quality.md").read_text()
    merged = quality.merge([tmp_path], tmp_path / "m", plots_on=False)
    assert merged["distill"]["learning_rate"] == {"ternary-distill": 1e-3}
    assert merged["distill"]["steps"] == {"ternary-distill": 3}
    assert merged["distill"]["generated"] == {"ternary-distill": 0}


def test_merge_runs_made_side_by_side(tmp_path):
    common = dict(calib_samples=4, calib_length=64, eval_tokens=32, device="cpu", plots_on=False)
    quality.run_quality(_source(), ["float16", "ternary-rtn"], tmp_path / "a", **common)
    quality.run_quality(_source(), ["mlx-affine-4bit"], tmp_path / "b", **common)
    merged = quality.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m", plots_on=False)
    assert [r["name"] for r in merged["rows"]] == ["float16", "mlx-affine-4bit", "ternary-rtn"]
    assert merged["rows"][1]["ppl_ratio"] == pytest.approx(
        merged["rows"][1]["perplexity"] / merged["rows"][0]["perplexity"]
    )
    assert len(merged["merged_from"]) == 2 and (tmp_path / "m" / "quality.md").is_file()
    with pytest.raises(ValueError, match="more than one run: float16"):
        quality.merge([tmp_path / "a", tmp_path / "a"], tmp_path / "x")
    # --replace: a newer measurement of a row wins, and the result says so.
    quality.run_quality(_source(), ["ternary-rtn"], tmp_path / "t", **common)
    newer = json.loads((tmp_path / "t" / "quality.json").read_text())["rows"][0]
    merged = quality.merge(
        [tmp_path / "a", tmp_path / "t"], tmp_path / "r", plots_on=False, replace=True
    )
    assert [r["name"] for r in merged["rows"]] == ["float16", "ternary-rtn"]
    assert merged["rows"][1]["quantize_s"] == newer["quantize_s"]
    assert merged["replaced"] == [
        {"row": "ternary-rtn", "dir": str(tmp_path / "t"), "over": str(tmp_path / "a")}
    ]
    assert "replacing the row of" in (tmp_path / "r" / "quality.md").read_text()
    # A run of uncalibrated rows read no calibration text and merges with one that did.
    quality.run_quality(_source(), ["ternary-gptq"], tmp_path / "g", **common)
    merged = quality.merge([tmp_path / "a", tmp_path / "g"], tmp_path / "m2", plots_on=False)
    assert merged["calibration"]["tokens"] == 4 * 64
    assert [r["name"] for r in merged["rows"]] == ["float16", "ternary-rtn", "ternary-gptq"]
    other = dict(common, eval_tokens=16)
    quality.run_quality(_source(), ["mlx-affine-3bit"], tmp_path / "c", **other)
    with pytest.raises(ValueError, match="differs from .* in 'eval_tokens'"):
        quality.merge([tmp_path / "a", tmp_path / "c"], tmp_path / "x")
    data = json.loads((tmp_path / "b" / "quality.json").read_text())
    # Runs may train for different steps, time limits and micro-batches (each
    # row records its own), nothing else.
    steps = dict(data["distill"], steps=data["distill"]["steps"] + 1, time_limit=9, micro_batch=2)
    (tmp_path / "b" / "quality.json").write_text(json.dumps({**data, "distill": steps}))
    # ... learning rates and sampled windows too: each distill row records its own.
    steps.update(learning_rate=1.0, generated=7)
    (tmp_path / "b" / "quality.json").write_text(json.dumps({**data, "distill": steps}))
    merged = quality.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m", plots_on=False)
    assert merged["distill"]["steps"] == {} and merged["distill"]["learning_rate"] == {}
    temp = dict(data["distill"], temperature=3.0)
    (tmp_path / "b" / "quality.json").write_text(json.dumps({**data, "distill": temp}))
    with pytest.raises(ValueError, match="differs from .* in 'distill'"):
        quality.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "x")
    (tmp_path / "b" / "quality.json").write_text(json.dumps({**data, "partial": True}))
    with pytest.raises(ValueError, match="did not finish"):
        quality.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "x")
    with pytest.raises(ValueError, match="does not exist"):
        quality.merge([tmp_path / "nope"], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_sequential_rows_record_it_and_do_not_merge_with_one_pass_runs(tmp_path):
    common = dict(calib_samples=4, calib_length=64, eval_tokens=32, device="cpu", plots_on=False)
    seq = quality.run_quality(
        _source(), ["float16", "ternary-gptq"], tmp_path / "s", sequential=True, **common
    )
    assert seq["sequential"] is True
    gptq = next(r for r in seq["rows"] if r["name"] == "ternary-gptq")
    assert gptq["status"] == "ok" and gptq["settings"]["sequential"] is True
    assert "block by block" in (tmp_path / "s" / "quality.md").read_text()
    # A one-pass run gives a different model: its rows are not the same rows.
    quality.run_quality(_source(), ["ternary-rtn"], tmp_path / "o", **common)
    with pytest.raises(ValueError, match="differs from .* in 'sequential'"):
        quality.merge([tmp_path / "s", tmp_path / "o"], tmp_path / "x")
    # Results from before the option existed were one-pass.
    data = json.loads((tmp_path / "o" / "quality.json").read_text())
    data.pop("sequential")
    (tmp_path / "o" / "quality.json").write_text(json.dumps(data))
    quality.run_quality(_source(), ["mlx-affine-4bit"], tmp_path / "p", **common)
    merged = quality.merge([tmp_path / "o", tmp_path / "p"], tmp_path / "m", plots_on=False)
    assert [r["name"] for r in merged["rows"]] == ["mlx-affine-4bit", "ternary-rtn"]


def test_targets_need_the_bits_and_the_answer():
    def row(name, family, ppl, bpw, answer=""):
        return {
            "name": name,
            "family": family,
            "status": "ok",
            "perplexity": ppl,
            "ppl_ratio": ppl / 10,
            "bpw_layers": bpw,
            "answer_question": answer,
        }

    records = [
        row("float16", "float", 10, None),
        row("ternary-gptq", "ours", 50, 2.25, "Paris."),
        row("ternary-distill", "ours", 20, 2.5, "Paris."),  # over the bit limit: not counted
        row("binary+bias-distill", "ours", 400, 1.5),
        # A rotated row's 8-byte seeds (1.3e-4 bits) pass at the tables'
        # precision; packed signs (1.4e-3) do not.
        row("binary+bias-distill+rotate", "ours", 250, 1.50013),
        row("binary+bias-gptq+rotate", "ours", 200, 1.5014),
        row("codebook-v8c6-distill", "ours", 500, 0.86),
        row("mlx-lm-awq-2bit", "mlx-lm", 60, 2.5),
    ]
    got = dict(zip(["ternary", "binary+bias", "codebook"], quality.targets(records)))
    assert got["ternary"]["best"] == "ternary-gptq" and got["ternary"]["verdict"] == "met"
    assert got["binary+bias"]["verdict"] == "met"  # 25x at 1.50013 bits
    assert got["binary+bias"]["best"] == "binary+bias-distill+rotate"
    assert got["codebook"]["verdict"] == "met"  # 50x < 100x at 0.86 bits
    assert got["ternary"]["verdict"] == "met" and got["ternary"]["ratio"] == 5
    versus = quality.targets(records)[-1]
    assert versus["verdict"] == "met" and versus["against"] == "mlx-lm-awq-2bit"
    # Without "Paris" the ternary target is missed whatever the perplexity.
    records[1]["answer_question"] = "or or or"
    assert quality.targets(records)[0]["verdict"] == "missed"


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


def test_a_non_finite_perplexity_is_a_failed_row(ran, tmp_path):
    _, results = ran
    results = json.loads(json.dumps(results))  # a copy
    broken = results["rows"][1]
    broken["perplexity"] = float("nan")
    results = quality.finish(results, tmp_path, plots_on=False)
    assert results["rows"][1]["status"] == "failed" and "nan" in results["rows"][1]["reason"]
    assert "failed" in (tmp_path / "quality.md").read_text()
