# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit bench quality``: perplexity against whole-model bits per
weight for every quantizer (float16, MLX affine, mlx-lm's learned ones, ours),
one fresh copy of the float model per row, one table, JSON and plot."""

import argparse
import fnmatch
import json
import math
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from .. import nn as lbnn
from ..lm.convert import DISTILL_DEFAULTS
from ..stats import QUANTIZED_LAYERS, layer_bits, model_bytes, parameter_count

QUESTION = "What is the capital of France?"
# A plain-text prompt (no chat template) for a second, longer greedy answer.
CONTINUATION = (
    "The old lighthouse stood at the edge of the cliff for two hundred years. "
    "Every evening the keeper climbed its stairs and"
)
NEW_TOKENS = 16

# The must targets: (row label, perplexity bar as a multiple of
# float16's, most bits per weight of the quantized layers, word the answer to
# QUESTION must hold or None).
# Bits are held to a target's limit at the tables' precision (three
# decimals): a rotated layer's 8-byte seed adds ~1e-4 bits per weight.
BITS_SLACK = 5e-4
TARGETS = [
    ("ternary", 10.0, 2.25, "Paris"),
    ("binary+bias", 30.0, 1.5, None),
    ("codebook", 100.0, 1.0, None),
]

# Our formats: (label, format, wanted group size, options). The group is
# the largest multiple of 32 at most the wanted one that divides every
# quantized layer's K (SmolLM2: 576 and 1536, so 64 and 192 are kept).
# Codebook settings stay under about 1 bit per weight of the large layers
# (indices, per-group scales and the per-layer codebook; the table gives the
# measured figure over all layers).
OURS = [
    ("ternary", "ternary", 64, {}),
    ("binary", "binary", 64, {}),
    ("binary+bias", "binary", 64, {"biases": True}),
    ("codebook-v16c12", "codebook", 192, {"vector_size": 16, "index_bits": 12}),
    ("codebook-v8c6", "codebook", 192, {"vector_size": 8, "index_bits": 6}),
]
OUR_METHODS = ("rtn", "gptq", "distill")
MLX_BITS = (4, 3, 2)
MLX_GROUP = 64
MLX_LM_BITS = 2
# DWQ at mlx-lm's own defaults (quant/dwq.py main): Adam, this learning
# rate, this batch size, one pass over the calibration windows.
DWQ_LEARNING_RATE = 1e-6
DWQ_BATCH = 4

QUICK_ROWS = ["float16", "mlx-affine-4bit", "ternary-rtn", "ternary-gptq"]
QUICK_SIZES = {"calib_samples": 4, "calib_length": 64, "eval_tokens": 128}
FULL_SIZES = {"calib_samples": 64, "calib_length": 256, "eval_tokens": None}


@dataclass(frozen=True)
class Spec:
    name: str
    family: str  # float, mlx, mlx-lm or ours
    method: str  # none, rtn, gptq, awq, dwq, distill
    fmt: str  # float16, affine, ternary, binary or codebook
    settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return self.method not in ("none", "rtn")


def row_specs() -> List[Spec]:
    """Every row the bench knows, in table order before sorting."""
    specs = [Spec("float16", "float", "none", "float16")]
    for bits in MLX_BITS:
        specs.append(
            Spec(
                f"mlx-affine-{bits}bit",
                "mlx",
                "rtn",
                "affine",
                {"bits": bits, "group_size": MLX_GROUP},
            )
        )
    for method in ("gptq", "awq", "dwq"):
        settings: Dict[str, Any] = {"bits": MLX_LM_BITS, "group_size": MLX_GROUP}
        if method == "dwq":
            settings.update(learning_rate=DWQ_LEARNING_RATE, batch_size=DWQ_BATCH)
        specs.append(
            Spec(f"mlx-lm-{method}-{MLX_LM_BITS}bit", "mlx-lm", method, "affine", settings)
        )
    for label, fmt, group, options in OURS:
        for rotate in (False, True):
            for method in OUR_METHODS:
                settings = {"group_size": group, **options}
                if rotate:
                    settings["rotate"] = True
                name = f"{label}-{method}" + ("+rotate" if rotate else "")
                specs.append(Spec(name, "ours", method, fmt, settings))
    return specs


def select_rows(patterns: List[str], specs: Optional[List[Spec]] = None) -> List[Spec]:
    """The rows whose names match any of ``patterns`` (fnmatch globs), in
    table order.

    Raises:
        ValueError: a pattern that matches no row.
    """
    specs = row_specs() if specs is None else specs
    names = [s.name for s in specs]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise ValueError(
                f"[bench quality] --rows pattern {p!r} matches no row; rows: {', '.join(names)}."
            )
    return [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]


# ---------------------------------------------------------------- model


def _picked(path: str, module: nn.Module) -> bool:
    # One layer set for every row: our default (every linear layer but the
    # output head; embeddings stay as they are).
    return isinstance(module, nn.Linear) and lbnn._default_predicate(path, module)


def load_float(
    source: Union[None, str, Path, Tuple[nn.Module, Any, Dict[str, Any]]],
) -> Tuple[Callable[[], nn.Module], Any, Dict[str, Any], str]:
    """``(fresh, tokenizer, config, name)``: ``fresh()`` builds a new float16
    copy of the model (new modules over the same immutable weight arrays).

    Args:
        source: A ``.gguf`` file, an mlx-lm model directory, an in-memory
          ``(model, tokenizer, config)``, or None for SmolLM2-135M-Instruct.

    Raises:
        ValueError: the model already has quantized layers.
    """
    from mlx_lm.utils import _get_classes

    from ..lm.convert import load_source
    from ..lm.gguf import smollm2_path

    if isinstance(source, tuple):
        model, tokenizer, config = source
        name = config.get("_name_or_path", config.get("model_type", "in-memory model"))
    else:
        path = smollm2_path() if source is None else source
        model, tokenizer, config = load_source(path, mx.float16)
        name = str(path)
    leaves = tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
    if any(isinstance(m, QUANTIZED_LAYERS) for _, m in leaves):
        raise ValueError("[bench quality] The model is already quantized; pass a float model.")
    lbnn.set_dtype(model, mx.float16)
    weights = tree_flatten(model.parameters())
    model_class, args_class = _get_classes(config)

    def fresh() -> nn.Module:
        m = model_class(args_class.from_dict(config))
        m.load_weights(weights)
        m.eval()
        return m

    return fresh, tokenizer, config, name


def _fit_group(model: nn.Module, wanted: int) -> int:
    ks = [m.weight.shape[1] for p, m in _linear_layers(model)]
    for g in range(wanted, 31, -32):
        if all(k % g == 0 for k in ks):
            return g
    raise ValueError(
        f"[bench quality] No group size <= {wanted} divides every K ({sorted(set(ks))})."
    )


def _linear_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    leaves = tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
    return [(p, m) for p, m in leaves if _picked(p, m)]


def _restore_unpicked(model: nn.Module, before: Dict[str, nn.Module]) -> List[str]:
    # mlx-lm's quantizers also quantize embeddings and the head: put back the
    # float modules of every layer our layer set leaves out.
    restored = []
    for path, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        original = before.get(path)
        if original is not None and isinstance(m, QUANTIZED_LAYERS) and not _picked(path, original):
            restored.append((path, original))
    model.update_modules(tree_unflatten(restored))
    return [path for path, _ in restored]


@contextmanager
def _default_device(device: mx.Device) -> Iterator[None]:
    old = mx.default_device()
    mx.set_default_device(device)
    try:
        yield
    finally:
        mx.set_default_device(old)


# ---------------------------------------------------------------- quantizers


class Skip(Exception):
    """A row that cannot run: ``status`` is "not supported" or "not available"."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def _quantize_mlx(model: nn.Module, spec: Spec) -> Dict[str, Any]:
    nn.quantize(model, spec.settings["group_size"], spec.settings["bits"], class_predicate=_picked)
    return {}


def _quantize_mlx_lm(
    model: nn.Module,
    spec: Spec,
    batches: mx.array,
    fresh: Callable[[], nn.Module],
    config: Dict[str, Any],
    work_dtype: mx.Dtype,
) -> Dict[str, Any]:
    bits, group = spec.settings["bits"], spec.settings["group_size"]
    before = dict(tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module))
    if spec.method == "gptq":
        from mlx_lm.quant.gptq import gptq_quantize

        # The fallback (8-bit) only touches layers put back to float below.
        gptq_quantize(model, batches, bits, group, fallback_bits=8, fallback_group_size=group)
    elif spec.method == "awq":
        from mlx_lm.quant.awq import AWQ_MODEL_CONFIGS, awq_quantize

        awq_config = AWQ_MODEL_CONFIGS.get(config.get("model_type"))
        if awq_config is None:
            raise Skip(
                "not supported",
                f"mlx-lm's AWQ has no config for model type {config.get('model_type')!r}.",
            )
        # AWQ quantizes the embedding first (8 bits here, so the blocks see
        # near-float inputs); it is put back to float below.
        awq_quantize(
            model,
            batches,
            awq_config,
            group_size=group,
            bits=bits,
            embed_group_size=group,
            embed_bits=8,
        )
    elif spec.method == "dwq":
        import mlx.optimizers as optimizers
        from mlx_lm.quant.dwq import dwq_quantize

        n_valid = max(DWQ_BATCH, batches.shape[0] // 8)
        if batches.shape[0] < n_valid + DWQ_BATCH:
            raise Skip(
                "not supported",
                f"DWQ needs at least {n_valid + DWQ_BATCH} calibration samples "
                f"(batch {DWQ_BATCH} for training and for validation), got {batches.shape[0]}.",
            )
        windows = [(row, 0) for row in batches.tolist()]
        teacher = fresh()
        lbnn.set_dtype(teacher, work_dtype)
        nn.quantize(model, group, bits, class_predicate=_picked)
        model.freeze()  # dwq_quantize unfreezes the scales and biases
        dwq_quantize(
            model,
            lambda batch, i, split: teacher(batch),
            optimizers.Adam(learning_rate=DWQ_LEARNING_RATE, bias_correction=True),
            windows[n_valid:],
            windows[:n_valid],
            batch_size=DWQ_BATCH,
            max_seq_length=batches.shape[1],
            seed=0,
            dtype=work_dtype,
        )
        model.eval()
    return {"kept_float": _restore_unpicked(model, before)}


def _quantize_ours(
    model: nn.Module,
    spec: Spec,
    tokenizer: Any,
    calib: Dict[str, Any],
    distill: Optional[Dict[str, Any]] = None,
    sequential: bool = False,
) -> Dict[str, Any]:
    from ..lm.convert import quantize_model

    settings = dict(spec.settings)
    group = _fit_group(model, settings.pop("group_size"))
    kwargs: Dict[str, Any] = {}
    if spec.calibrated:
        kwargs = {
            "calib": calib["file"],
            "calib_samples": calib["samples"],
            "calib_length": calib["length"],
        }
    if spec.method == "distill" and distill:
        kwargs["distill"] = dict(distill)
    if sequential and spec.calibrated:
        kwargs["sequential"] = True
    rotate = settings.get("rotate", False)
    try:
        record = quantize_model(
            model,
            tokenizer,
            spec.fmt,
            group,
            method=spec.method,
            progress=False,
            **kwargs,
            **settings,
        )
    except (TypeError, ValueError) as e:
        msg = str(e)
        if "Unknown method" in msg:
            raise Skip("not available", f"quantize_model has no method {spec.method!r} yet: {msg}")
        if rotate and (isinstance(e, TypeError) or "rotate" in msg):
            raise Skip("not available", f"quantize_model does not take rotate=True yet: {msg}")
        if isinstance(e, TypeError):
            raise
        raise Skip("not supported", msg)
    return {"group_size": group, **record}


# ---------------------------------------------------------------- rows


def _measure(
    model: nn.Module,
    tokenizer: Any,
    eval_ids: List[int],
    prompts: Dict[str, Any],
    device: mx.Device,
    run_dtype: mx.Dtype,
) -> Dict[str, Any]:
    from ..lm.evaluate import greedy_completion, perplexity

    stored = {
        "bpw_model": 8 * model_bytes(model) / parameter_count(model),
        "bpw_layers": layer_bits(model),
        "megabytes": model_bytes(model) / 1e6,
    }
    start = time.perf_counter()
    with _default_device(device):
        if run_dtype != mx.float16:
            lbnn.set_dtype(model, run_dtype)
        mx.eval(model.parameters())
        ppl = perplexity(model, eval_ids)
        answers = {
            key: greedy_completion(model, tokenizer, prompt, NEW_TOKENS, stream=device).text
            for key, prompt in prompts.items()
        }
    return {
        **stored,
        "perplexity": ppl,
        "answer_question": answers["question"],
        "answer_continuation": answers["continuation"],
        "eval_s": time.perf_counter() - start,
        "activations": str(run_dtype).split(".")[-1],
    }


def run_row(
    spec: Spec,
    fresh: Callable[[], nn.Module],
    tokenizer: Any,
    config: Dict[str, Any],
    batches: Optional[mx.array],
    calib: Dict[str, Any],
    eval_ids: List[int],
    prompts: Dict[str, Any],
    device: mx.Device,
    distill: Optional[Dict[str, Any]] = None,
    sequential: bool = False,
) -> Dict[str, Any]:
    """One row's record; a row that cannot run records why (status, reason)."""
    record: Dict[str, Any] = {
        "name": spec.name,
        "family": spec.family,
        "method": spec.method,
        "fmt": spec.fmt,
        "settings": dict(spec.settings),
        "status": "ok",
        "reason": None,
    }
    # Our low-bit primitive runs on the CPU only: our rows quantize and run
    # there. MLX's CPU matmuls are very slow with float16 activations
    # (quantized_matmul most of all), so on the CPU every row, float16's
    # too, runs in float32 (the weights stay as stored).
    # Quantizers run on the run device (distillation trains there); only the
    # measurement of our rows moves to the CPU.
    row_device = mx.cpu if spec.family == "ours" else device
    on_cpu = row_device == mx.cpu
    run_dtype = mx.float32 if on_cpu else mx.float16
    # Calibrated quantizers run their model in float32 on the CPU for the
    # same reason; the model goes back to float16 before it is measured.
    work_dtype = mx.float32 if device == mx.cpu and spec.calibrated else mx.float16
    record["device"] = "cpu" if on_cpu else "gpu"
    record["quantize_dtype"] = str(work_dtype).split(".")[-1]
    model = fresh()
    start = time.perf_counter()
    try:
        with _default_device(device):
            lbnn.set_dtype(model, work_dtype)
            if spec.family == "mlx":
                extra = _quantize_mlx(model, spec)
            elif spec.family == "mlx-lm":
                extra = _quantize_mlx_lm(model, spec, batches, fresh, config, work_dtype)
            elif spec.family == "ours":
                extra = _quantize_ours(model, spec, tokenizer, calib, distill, sequential)
            else:
                extra = {}
            lbnn.set_dtype(model, mx.float16)  # sizes as stored
            mx.eval(model.parameters())
        record["quantize_s"] = time.perf_counter() - start
        record["settings"].update(extra)
        record.update(_measure(model, tokenizer, eval_ids, prompts, row_device, run_dtype))
    except Skip as e:
        record.update(status=e.status, reason=str(e))
    except Exception as e:  # a row that fails records it; the others still run
        record.update(status="error", reason=f"{type(e).__name__}: {e}")
    if record["status"] != "ok":
        record["quantize_s"] = time.perf_counter() - start
    return record


# ---------------------------------------------------------------- driver


def host_info() -> Dict[str, Any]:
    """CPU model (from /proc/cpuinfo where there is one) and GPU name."""
    cpu: Dict[str, Any] = {"machine": platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in cpu:
                    cpu[key] = value.strip()
    except OSError:
        cpu["model name"] = platform.processor() or "?"
    gpu = None
    if mx.is_available(mx.gpu):
        gpu = mx.device_info(mx.gpu).get("device_name")
    return {"cpu": cpu, "gpu": gpu}


def _write(path: Path, data: Union[str, bytes]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def targets(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The issue's must targets: the best ratio to float16 among our rows of
    each format that keep its bits-per-weight limit (and answer the question
    where the target says so), and ternary against mlx-lm's best 2-bit row."""
    ok = [r for r in records if r["status"] == "ok" and r.get("ppl_ratio") is not None]
    out = []
    best_ternary = None
    for label, bar, bits, word in TARGETS:
        rows = [
            r
            for r in ok
            if r["family"] == "ours"
            and r["name"].rsplit("-", 1)[0].split("-")[0] == label.split("-")[0]
            and r["name"].startswith(label + "-")
            and r["bpw_layers"] <= bits + BITS_SLACK
        ]
        if word:
            rows = [r for r in rows if word in r["answer_question"]] or rows
        best = min(rows, key=lambda r: r["ppl_ratio"]) if rows else None
        met = (
            best is not None
            and best["ppl_ratio"] < bar
            and (not word or word in best["answer_question"])
        )
        text = f"{label} (<= {bits:g} bits/w) perplexity < {bar:g}x float16"
        out.append(
            {
                "target": text + (f' and "{word}" in the answer' if word else ""),
                "best": best["name"] if best else None,
                "ratio": best["ppl_ratio"] if best else None,
                "verdict": "not measured" if best is None else ("met" if met else "missed"),
            }
        )
        if label == "ternary":
            best_ternary = best
    theirs = [r for r in ok if r["family"] == "mlx-lm"]
    best_theirs = min(theirs, key=lambda r: r["perplexity"]) if theirs else None
    verdict = "not measured"
    if best_ternary and best_theirs:
        verdict = "met" if best_ternary["perplexity"] < best_theirs["perplexity"] else "missed"
    out.append(
        {
            "target": "ternary better than mlx-lm's best 2-bit quantizer",
            "best": best_ternary["name"] if best_ternary else None,
            "ratio": (
                best_ternary["perplexity"] / best_theirs["perplexity"]
                if best_ternary and best_theirs
                else None
            ),
            "verdict": verdict,
            "against": best_theirs["name"] if best_theirs else None,
        }
    )
    return out


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _distill_lines(results: Dict[str, Any]) -> List[str]:
    """How each distill row trained (merged runs may differ), and which rows
    a merge took from a newer run."""
    rows = [r for r in results["rows"] if r["method"] == "distill" and r["status"] == "ok"]
    length = results["calibration"]["length"]
    lines = (
        [
            "",
            "| distill row | steps | peak lr | sampled windows | dtype "
            "| held-out KL before -> after | train s |",
            "|---|--:|--:|--:|---|---|--:|",
        ]
        if rows
        else []
    )
    for r in rows:
        s = r["settings"]
        kl = (
            f"{s['kl_before']:.3g} -> {s['kl_after']:.3g}" if s.get("kl_after") is not None else "-"
        )
        lines.append(
            f"| {r['name']} | {s.get('steps')} | {s.get('learning_rate'):g} | "
            f"{s.get('generated_tokens', 0) // length} | {s.get('compute_dtype', 'float32')} "
            f"| {kl} | {s.get('seconds', 0):.0f} |"
        )
    replaced = results.get("replaced") or []
    if replaced:
        lines.append("")
    for x in replaced:
        lines.append(f"{x['row']}: from {x['dir']}, replacing the row of {x['over']}.  ")
    return lines


def markdown(results: Dict[str, Any]) -> str:
    """The table (sorted by whole-model bits per weight) and the targets."""
    calib = results["calibration"]
    lines = [
        f"# Quality: {Path(results['model']).name}",
        "",
        f"{results['date']}, {results['host']['cpu'].get('model name', '?')}"
        + (f", GPU {results['host']['gpu']}" if results["host"]["gpu"] else "")
        + f"; MLX {results['mlx']}, mlx-lm {results['mlx_lm']}; device {results['device']}.",
        f"Perplexity over {results['eval_tokens']} tokens of the held-out evaluation text; "
        f"calibration: {calib['source']}, {calib['samples']} x {calib['length']} = "
        f"{calib['tokens']} tokens (the same for every calibrated row)"
        + (
            "; our gptq and distill rows calibrated block by block (sequential)."
            if results.get("sequential")
            else "."
        ),
        "",
        "| row | family | method | bits/w model | bits/w layers | ppl | x float16 | quantize s "
        f"| {QUESTION} | continuation | status |",
        "|---|---|---|--:|--:|--:|--:|--:|---|---|---|",
    ]
    rows = sorted(
        results["rows"], key=lambda r: (r.get("bpw_model") is None, r.get("bpw_model") or 0)
    )
    for r in rows:
        ok = r["status"] == "ok"
        layers = r.get("bpw_layers")
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    r["name"],
                    r["family"],
                    r["method"],
                    f"{r['bpw_model']:.3f}" if ok else "-",
                    f"{layers:.3f}" if ok and layers is not None else "-",
                    f"{r['perplexity']:.4g}" if ok else "-",
                    f"{r['ppl_ratio']:.3g}" if ok and r.get("ppl_ratio") is not None else "-",
                    f"{r['quantize_s']:.1f}",
                    repr(r["answer_question"]) if ok else "",
                    repr(r["answer_continuation"]) if ok else "",
                    "ok" if ok else f"{r['status']}: {r['reason']}",
                )
            )
            + " |"
        )
    lines += _distill_lines(results)
    lines += ["", "| target | best row | x float16 | verdict |", "|---|---|--:|---|"]
    for t in results["targets"]:
        ratio = f"{t['ratio']:.3g}" if t["ratio"] is not None else "-"
        lines.append(f"| {t['target']} | {t['best'] or '-'} | {ratio} | {t['verdict']} |")
    return "\n".join(lines) + "\n"


FAMILY_MARKERS = {"float": "*", "mlx": "s", "mlx-lm": "D", "ours": "o"}


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, path: Path) -> None:
    """Write a figure as PNG atomically (tmp file, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def plot(path: Path, results: Dict[str, Any]) -> bool:
    """Perplexity (log) against whole-model bits per weight; False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    ok = [r for r in results["rows"] if r["status"] == "ok"]
    base = next((r["perplexity"] for r in ok if r["family"] == "float"), None)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for family, marker in FAMILY_MARKERS.items():
        pts = [r for r in ok if r["family"] == family]
        if pts:
            ax.scatter(
                [r["bpw_model"] for r in pts],
                [r["perplexity"] for r in pts],
                marker=marker,
                label=family,
            )
            for r in pts:
                ax.annotate(r["name"], (r["bpw_model"], r["perplexity"]), fontsize=6, alpha=0.8)
    if base is not None:
        ax.axhline(base, color="k", lw=1, label=f"float16 ({base:.3g})")
        for (label, bar, _, _), color in zip(TARGETS, ("C3", "C4", "C5")):
            ax.axhline(base * bar, color=color, ls="--", lw=1, label=f"{label} target ({bar:g}x)")
    ax.set(
        yscale="log",
        xlabel="bits per weight, whole model (every stored byte)",
        ylabel="perplexity",
        title=f"{Path(results['model']).name}: perplexity vs bits per weight",
    )
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def plot_losses(path: Path, results: Dict[str, Any]) -> bool:
    """The distill rows' training KL per step; False without matplotlib or
    without such rows."""
    curves = [r for r in results["rows"] if r["status"] == "ok" and r["settings"].get("loss_curve")]
    plt = _pyplot()
    if plt is None:
        return False
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in curves:
        ys = r["settings"]["loss_curve"]
        step = max(1, r["settings"]["steps"] // len(ys))
        ax.plot([i * step + 1 for i in range(len(ys))], ys, label=r["name"])
    ax.set(
        yscale="log",
        xlabel="step",
        ylabel="KL(float || quantized), training batch",
        title="distillation loss",
    )
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def run_quality(
    source: Union[None, str, Path, Tuple[nn.Module, Any, Dict[str, Any]]] = None,
    rows: Optional[List[str]] = None,
    out: Optional[Union[str, Path]] = None,
    *,
    quick: bool = False,
    calib: Optional[Union[str, Path]] = None,
    calib_samples: Optional[int] = None,
    calib_length: Optional[int] = None,
    eval_tokens: Optional[int] = None,
    device: str = "auto",
    plots_on: bool = True,
    distill: Optional[Dict[str, Any]] = None,
    sequential: bool = False,
) -> Dict[str, Any]:
    """Run the selected rows and write quality.json, quality.md and quality.png
    (quality.json also after every row, marked ``"partial"``).

    Args:
        source: The float model (see :func:`load_float`); default SmolLM2-135M-Instruct.
        rows: fnmatch patterns of row names; default every row (``--quick``: :data:`QUICK_ROWS`).
        out: Output directory; default ``benchmarks/results/quality-<date>``.
        quick: The small plan (:data:`QUICK_ROWS`, :data:`QUICK_SIZES`).
        calib: A ``.txt``/``.jsonl`` calibration file; default ``pydoc_data.topics``.
        calib_samples, calib_length: Calibration windows and their length.
        eval_tokens: Evaluation tokens (first ones of the text); default all.
        device: ``"cpu"``, ``"gpu"`` or ``"auto"`` (the GPU where there is
          one). Our rows are measured on the CPU.
        distill: Settings for the distill rows (see ``DISTILL_DEFAULTS`` in
          :mod:`mlx_lowbit.lm.convert`).
        sequential: Our gptq and distill rows calibrate block by block
          (``gptq_model(sequential=True)``).

    Returns:
        dict: Everything written to quality.json.

    Raises:
        ValueError: a row pattern that matches nothing, or an unusable calibration.
    """
    from mlx_lm import __version__ as mlx_lm_version

    from ..lm.evaluate import chat_prompt, encode, eval_text
    from ..quant import DEFAULT_CORPUS, calibration_batches

    sizes = QUICK_SIZES if quick else FULL_SIZES
    calib_samples = calib_samples or sizes["calib_samples"]
    calib_length = calib_length or sizes["calib_length"]
    eval_tokens = eval_tokens or sizes["eval_tokens"]
    specs = select_rows(rows or (QUICK_ROWS if quick else ["*"]))
    if device == "auto":
        device = "gpu" if mx.is_available(mx.gpu) else "cpu"
    if device == "gpu" and not mx.is_available(mx.gpu):
        raise ValueError("[bench quality] --device gpu: MLX has no GPU here.")
    run_device = mx.gpu if device == "gpu" else mx.cpu
    date = time.strftime("%Y-%m-%d", time.gmtime())
    outdir = Path(out or f"benchmarks/results/quality-{date}")
    outdir.mkdir(parents=True, exist_ok=True)

    started = time.time()
    fresh, tokenizer, config, name = load_float(source)
    eval_ids = encode(tokenizer, eval_text(), eval_tokens)
    batches = None
    if any(s.calibrated for s in specs):
        batches = calibration_batches(
            tokenizer,
            calib,
            num_samples=calib_samples,
            sequence_length=calib_length,
            held_out=eval_text(),
        )
    calib_info = {
        "source": str(calib) if calib is not None else DEFAULT_CORPUS,
        "file": calib,
        "samples": calib_samples,
        "length": calib_length,
        "tokens": int(batches.size) if batches is not None else 0,
    }
    has_template = getattr(tokenizer, "chat_template", None) is not None
    prompts = {
        "question": chat_prompt(tokenizer, QUESTION) if has_template else QUESTION,
        "continuation": CONTINUATION,
    }
    print(
        f"mlx-lowbit bench quality: {len(specs)} rows of {name} on {device}, "
        f"{len(eval_ids)} eval tokens, {calib_info['tokens']} calibration tokens; writing {outdir}/",
        flush=True,
    )

    def meta() -> Dict[str, Any]:
        return {
            "model": name,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
            "host": host_info(),
            "mlx": mx.__version__,
            "mlx_lm": mlx_lm_version,
            "device": device,
            "quick": quick,
            "calibration": {k: v for k, v in calib_info.items() if k != "file"},
            "eval_tokens": len(eval_ids),
            "new_tokens": NEW_TOKENS,
            "prompts": {"question": QUESTION, "continuation": CONTINUATION},
            "distill": {**DISTILL_DEFAULTS, **(distill or {})},
            "sequential": sequential,
            "notes": [
                "bpw_model: every stored byte of the whole model (embeddings included) per weight; "
                "bpw_layers: the quantized linear layers alone.",
                "Every quantized row uses one layer set: every linear layer but the output head; "
                "embeddings stay float16 (mlx-lm's quantizers also quantize them: they are put back).",
                "Our rows are quantized on the run device (distillation trains there) and measured "
                "on the CPU (the low-bit primitive has no GPU implementation here); on the CPU every "
                "row runs with float32 activations (weights as stored).",
            ],
            "duration_s": time.time() - started,
        }

    records = []
    with _default_device(run_device):
        for i, spec in enumerate(specs, 1):
            print(f"[{i}/{len(specs)}] {spec.name} ...", flush=True)
            r = run_row(
                spec,
                fresh,
                tokenizer,
                config,
                batches,
                calib_info,
                eval_ids,
                prompts,
                run_device,
                distill,
                sequential,
            )
            records.append(r)
            partial = {**meta(), "rows": records, "partial": True}
            _write(outdir / "quality.json", json.dumps(partial, indent=1, default=str))
            elapsed = time.strftime("%M:%S", time.gmtime(time.time() - started))
            if r["status"] == "ok":
                print(
                    f"    ppl {r['perplexity']:.4g}, {r['bpw_model']:.3f} bits/w, quantized in "
                    f"{r['quantize_s']:.1f} s, evaluated in {r['eval_s']:.1f} s  [{elapsed}]",
                    flush=True,
                )
            else:
                print(f"    {r['status']}: {r['reason']}  [{elapsed}]", flush=True)
    results = {**meta(), "rows": records}
    return finish(results, outdir, plots_on)


def finish(results: Dict[str, Any], outdir: Path, plots_on: bool = True) -> Dict[str, Any]:
    """Ratios to float16, the targets, then quality.json/md/png in ``outdir``."""
    records = results["rows"]
    for r in records:
        # A quantizer that ran but left a model with NaN/Inf logits failed.
        if r["status"] == "ok" and not math.isfinite(r["perplexity"]):
            r.update(status="failed", reason=f"perplexity is {r['perplexity']}")
    base = next(
        (r["perplexity"] for r in records if r["family"] == "float" and r["status"] == "ok"), None
    )
    for r in records:
        if r["status"] == "ok":
            r["ppl_ratio"] = r["perplexity"] / base if base else None
    results["targets"] = targets(records)
    png = outdir / "quality.png"
    results["plot"] = png.name if plots_on and plot(png, results) else None
    if plots_on and plot_losses(outdir / "distill_loss.png", results):
        results["loss_plot"] = "distill_loss.png"
    _write(outdir / "quality.json", json.dumps(results, indent=1, default=str))
    report = markdown(results)
    _write(outdir / "quality.md", report)
    print("\n" + report)
    print(f"Wrote {outdir}/quality.md, quality.json" + (" and plots" if results["plot"] else ""))
    return results


# Fields every merged run must agree on: the same model, text and calibration,
# and the distill settings but for how long and in what pieces each run trains
# (steps, time limit, micro-batches: each row records its own).
# (A run of uncalibrated rows only read no calibration text: it agrees with any.)
_SAME = ("model", "mlx", "mlx_lm", "calibration", "eval_tokens", "prompts", "sequential")
# What a run from before a field existed did.
_BEFORE = {"sequential": False}


# Settings each distill row records itself: merged runs may differ in them.
_PER_ROW = ("steps", "time_limit", "micro_batch", "learning_rate", "generated", "compute_dtype")


def _distill_but_steps(run: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in (run.get("distill") or {}).items() if k not in _PER_ROW}


def merge(
    dirs: List[Union[str, Path]],
    out: Union[str, Path],
    plots_on: bool = True,
    allow_partial: bool = False,
    replace: bool = False,
):
    """One table from runs made side by side (e.g. parallel processes on one
    machine, each with its own rows): their quality.json files must agree on
    the model, texts, calibration and settings; rows keep the bench's order.
    With ``allow_partial``, a run that did not finish gives the rows it
    finished, and the result names it under ``"partial_runs"``. With
    ``replace``, a row in several runs is taken from the last of them (a
    newer measurement of it), and the result names each under ``"replaced"``.

    Raises:
        ValueError: a missing, partial or mismatched run, or (without
            ``replace``) a row twice.
    """
    runs = []
    for d in dirs:
        path = Path(d) / "quality.json"
        if not path.is_file():
            raise ValueError(f"[bench quality] {path} does not exist.")
        run = json.loads(path.read_text())
        if run.get("partial") and not allow_partial:
            raise ValueError(f"[bench quality] {path} is from a run that did not finish.")
        runs.append(run)
    # The run that sets the standard: the first that read calibration text.
    first = next((r for r in runs if r["calibration"]["tokens"]), runs[0])
    head = dirs[runs.index(first)]
    for d, run in zip(dirs, runs):
        for key in _SAME:
            if key == "calibration" and not run["calibration"]["tokens"]:
                continue
            if run.get(key, _BEFORE.get(key)) != first.get(key, _BEFORE.get(key)):
                raise ValueError(f"[bench quality] {d} differs from {head} in {key!r}.")
        if _distill_but_steps(run) != _distill_but_steps(first):
            raise ValueError(f"[bench quality] {d} differs from {head} in 'distill'.")
    source = {}  # row name -> (dir, row), the last run's when replacing
    replaced = []
    for d, run in zip(dirs, runs):
        for r in run["rows"]:
            if r["name"] in source:
                if not replace:
                    raise ValueError(
                        f"[bench quality] Rows in more than one run: {r['name']} "
                        f"({source[r['name']][0]} and {d}); --replace takes the last run's."
                    )
                replaced.append(
                    {"row": r["name"], "dir": str(d), "over": str(source[r["name"]][0])}
                )
            source[r["name"]] = (d, r)
    order = {s.name: i for i, s in enumerate(row_specs())}
    rows = sorted((r for _, r in source.values()), key=lambda r: order.get(r["name"], len(order)))
    distilled = [r for r in rows if r["method"] == "distill"]
    length = first["calibration"]["length"]
    results = {
        **first,
        "date": min(run["date"] for run in runs),
        "rows": rows,
        # Each distill row's own training, as the row recorded it.
        "distill": {
            **_distill_but_steps(first),
            "steps": {r["name"]: r["settings"].get("steps") for r in distilled},
            "learning_rate": {r["name"]: r["settings"].get("learning_rate") for r in distilled},
            "compute_dtype": {
                r["name"]: r["settings"].get("compute_dtype", "float32") for r in distilled
            },
            "generated": {
                r["name"]: r["settings"].get("generated_tokens", 0) // length for r in distilled
            },
        },
        "replaced": replaced,
        "merged_from": [
            {"dir": str(d), "date": run["date"], "duration_s": run["duration_s"]}
            for d, run in zip(dirs, runs)
        ],
        "duration_s": max(run["duration_s"] for run in runs),
        "partial_runs": [str(d) for d, run in zip(dirs, runs) if run.get("partial")],
    }
    results.pop("partial", None)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    return finish(results, outdir, plots_on)


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-lowbit bench quality", description=__doc__)
    p.add_argument(
        "--model",
        help="A .gguf file or an mlx-lm model directory (default: SmolLM2-135M-Instruct).",
    )
    p.add_argument(
        "--rows",
        help="Comma-separated row names or globs (e.g. 'float16,ternary-*'); default all. "
        "--list-rows shows them.",
    )
    p.add_argument("--list-rows", action="store_true", help="Print the row names and exit.")
    p.add_argument("--out", help="Output directory (default: benchmarks/results/quality-<date>).")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"Rows {', '.join(QUICK_ROWS)}; {QUICK_SIZES['calib_samples']} x "
        f"{QUICK_SIZES['calib_length']} calibration tokens, {QUICK_SIZES['eval_tokens']} eval tokens.",
    )
    p.add_argument(
        "--calib", help="A .txt or .jsonl calibration file (default: pydoc_data.topics)."
    )
    p.add_argument("--calib-samples", type=int, help="Calibration windows (default 64).")
    p.add_argument("--calib-length", type=int, help="Tokens per window (default 256).")
    p.add_argument("--eval-tokens", type=int, help="Evaluation tokens (default: the whole text).")
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="auto")
    p.add_argument("--no-plots", action="store_true", help="Skip the PNG plot.")
    d = p.add_argument_group("distill rows")
    d.add_argument("--distill-steps", type=int, help="Training steps.")
    d.add_argument("--distill-batch", type=int, help="Windows per step.")
    d.add_argument("--distill-lr", type=float, help="Learning rate.")
    d.add_argument("--distill-generated", type=int, help="Windows the float model samples.")
    d.add_argument(
        "--distill-micro-batch", type=int, help="Rows per forward/backward pass (less memory)."
    )
    d.add_argument(
        "--distill-dtype",
        choices=["float32", "bfloat16", "float16"],
        help="Of the training passes (bfloat16: a GPU's tensor cores); parameters stay float32.",
    )
    d.add_argument(
        "--distill-time-limit",
        type=float,
        help="Seconds of training at most per row (a row records the steps it did).",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="Our gptq and distill rows calibrate block by block on the already quantized blocks.",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="Merge finished runs made side by side into one table in --out, and exit.",
    )
    p.add_argument(
        "--allow-partial", action="store_true", help="--merge: take unfinished runs' rows too."
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="--merge: a row in several runs comes from the last run named (a newer measurement).",
    )
    return p


def main(argv=None) -> None:
    args = setup_arg_parser().parse_args(argv)
    if args.list_rows:
        print("\n".join(s.name for s in row_specs()))
        return
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    distill = {
        "steps": args.distill_steps,
        "batch_size": args.distill_batch,
        "learning_rate": args.distill_lr,
        "generated": args.distill_generated,
        "micro_batch": args.distill_micro_batch,
        "time_limit": args.distill_time_limit,
        "compute_dtype": args.distill_dtype,
    }
    distill = {k: v for k, v in distill.items() if v is not None}
    try:
        if args.merge:
            if not args.out:
                raise ValueError("--merge needs --out.")
            merge(args.merge, args.out, not args.no_plots, args.allow_partial, args.replace)
            return
        run_quality(
            args.model,
            rows,
            args.out,
            quick=args.quick,
            calib=args.calib,
            calib_samples=args.calib_samples,
            calib_length=args.calib_length,
            eval_tokens=args.eval_tokens,
            device=args.device,
            plots_on=not args.no_plots,
            distill=distill,
            sequential=args.sequential,
        )
    except ValueError as e:
        raise SystemExit(f"mlx-lowbit bench quality: {e}") from None


if __name__ == "__main__":
    main()
