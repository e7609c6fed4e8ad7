# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit convert``: quantize an mlx-lm model (or a GGUF file) to a
low-bit format and save it as an mlx-lm model directory."""

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .. import nn as lbnn
from ..nn import LowBitLayer, Predicate
from ..quant.gptq import CODEBOOK_OPTIONS
from ..quant.gptq import DAMP as GPTQ_DAMP
from ..quant.gptq import FORMATS as GPTQ_FORMATS
from ..rotation import DEFAULT_MAX_BLOCK, check_max_block
from ..rotation import KIND as ROTATION_KIND
from ..stats import model_bytes, parameter_count
from .gguf import from_gguf
from .load import load

# Written as the top-level entry of config["quantization"]: mlx-lm requires
# a built-in mode there. It applies to no layer of our files, since every
# quantized layer has its own entry (and mlx-lm only uses the default for
# layers that have a ``scales`` tensor, which ours do not).
METHODS = ("rtn", "gptq", "distill")
# The settings method="distill" takes (distill=...), with their defaults.
DISTILL_DEFAULTS = {
    "init": None,  # gptq where it exists for the format, else rtn
    "steps": 200,
    "batch_size": 8,
    "learning_rate": 1e-4,
    "temperature": 1.0,
    "train_weights": True,
    "generated": 0,  # calibration windows the float model samples (data-free)
    "micro_batch": None,  # rows per forward/backward pass (None: the whole batch)
    "time_limit": None,  # seconds of training at most (None: all the steps)
    "compute_dtype": "float32",  # of the training passes (bfloat16: a GPU's tensor cores)
}
_COMPUTE_DTYPES = ("float32", "bfloat16", "float16")

_TOP_LEVEL_QUANTIZATION = {"group_size": 64, "bits": 4, "mode": "affine"}


def load_source(
    source: Union[str, Path], dtype: Optional[mx.Dtype] = None
) -> Tuple[nn.Module, Any, Dict[str, Any]]:
    """``(model, tokenizer, config)`` from a ``.gguf`` file, a local mlx-lm
    model directory or a Hugging Face repository."""
    if str(source).endswith(".gguf"):
        model, tokenizer, config = from_gguf(source, dtype or mx.float16)
        if config["model_type"] == "bitnet" and config["hidden_act"] != "relu2":
            # mlx-lm's bitnet model computes relu² whatever config.json says,
            # so the directory would load there as another model.
            raise ValueError(
                f"[mlx_lowbit.lm.convert] {source}: a bitnet model with a "
                f"{config['hidden_act']!r} feed-forward has no mlx-lm architecture (mlx-lm's "
                "bitnet computes relu2); load it with lm.from_gguf instead."
            )
        return model, tokenizer, config
    model, tokenizer, config = load(source, return_config=True)
    if dtype is not None:
        lbnn.set_dtype(model, dtype)
    return model, tokenizer, config


def quantization_entries(model: nn.Module) -> Dict[str, Dict[str, Any]]:
    """Per-layer entries for ``config["quantization"]``, keyed by module path
    (ours and MLX's own quantized layers)."""
    entries = {}
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, LowBitLayer):
            entries[path] = module.quantization_config()
        elif isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            entries[path] = {
                "group_size": module.group_size,
                "bits": module.bits,
                "mode": module.mode,
            }
    return entries


def save_model_dir(
    out_dir: Union[str, Path], model: nn.Module, tokenizer: Any, config: Dict[str, Any]
) -> Path:
    """Save an mlx-lm model directory atomically: everything is written into
    a temporary directory next to ``out_dir``, which is renamed into place
    only when complete.

    Raises:
        FileExistsError: ``out_dir`` exists.
    """
    from mlx_lm.utils import save_config, save_model

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"[mlx_lowbit.lm.convert] {out_dir} already exists.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        config = dict(config)
        entries = quantization_entries(model)
        if entries:
            config["quantization"] = {**_TOP_LEVEL_QUANTIZATION, **entries}
        else:
            config.pop("quantization", None)
            config.pop("quantization_config", None)
        try:
            save_model(tmp, model)
            _fix_parameter_count(tmp, model)
            save_config(config, config_path=tmp / "config.json")
            tokenizer.save_pretrained(str(tmp))
        except RuntimeError as e:
            # MLX's "[write] ..." (a full or read-only disk) names no file.
            raise OSError(f"[mlx_lowbit.lm.convert] writing {out_dir} failed ({e}).") from e
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _fix_parameter_count(path: Path, model: nn.Module) -> None:
    # mlx-lm counts stored words for layers without a ``bits`` attribute.
    index = path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["metadata"]["total_parameters"] = parameter_count(model)
    index.write_text(json.dumps(data, indent=4))


def check_method(
    method: str, calib: Any, fmt_options: Dict[str, Any], distill: Optional[Dict[str, Any]] = None
) -> None:
    """Refuse a method, calibration or option combination that cannot run."""
    if method not in METHODS:
        raise ValueError(
            f"[mlx_lowbit.lm.convert] Unknown method {method!r}; expected one of {', '.join(METHODS)}."
        )
    if method == "rtn" and calib is not None:
        raise ValueError("[mlx_lowbit.lm.convert] calib applies to calibrated methods only.")
    extra = set(fmt_options) - {"biases", *CODEBOOK_OPTIONS}
    if method != "rtn" and extra:
        raise ValueError(
            f"[mlx_lowbit.lm.convert] method={method!r} takes the options biases, "
            f"{', '.join(CODEBOOK_OPTIONS)}; got {', '.join(sorted(extra))}."
        )
    if distill is not None and method != "distill":
        raise ValueError(
            "[mlx_lowbit.lm.convert] distill= settings apply to method='distill' only."
        )
    unknown = set(distill or {}) - set(DISTILL_DEFAULTS)
    if unknown:
        raise ValueError(
            f"[mlx_lowbit.lm.convert] Unknown distill setting(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(DISTILL_DEFAULTS)}."
        )
    init = (distill or {}).get("init")
    if init not in (None, "rtn", "gptq"):
        raise ValueError(
            f"[mlx_lowbit.lm.convert] distill init must be 'rtn' or 'gptq', got {init!r}."
        )
    # Checked here, before the (slow) calibration and init.
    from ..quant.distill import check_micro_batch

    settings = {**DISTILL_DEFAULTS, **(distill or {})}
    check_micro_batch(settings["micro_batch"], settings["batch_size"])
    if settings["compute_dtype"] not in _COMPUTE_DTYPES:
        raise ValueError(
            f"[mlx_lowbit.lm.convert] distill compute_dtype must be one of "
            f"{', '.join(_COMPUTE_DTYPES)}, got {settings['compute_dtype']!r}."
        )
    limit = settings["time_limit"]
    if limit is not None and not (isinstance(limit, (int, float)) and limit > 0):
        raise ValueError(
            f"[mlx_lowbit.lm.convert] distill time_limit must be > 0 seconds, got {limit!r}."
        )


def check_damp(damp: float, method: str) -> None:
    """GPTQ's damping: positive, and only where GPTQ runs."""
    if not damp > 0:
        raise ValueError(f"[mlx_lowbit.lm.convert] damp must be > 0, got {damp!r}.")
    if damp != GPTQ_DAMP and method == "rtn":
        raise ValueError("[mlx_lowbit.lm.convert] damp applies to method='gptq' or 'distill'.")


def check_sequential(sequential: bool, method: str) -> None:
    """Sequential calibration is GPTQ's (and distill's GPTQ start)."""
    if sequential and method == "rtn":
        raise ValueError(
            "[mlx_lowbit.lm.convert] sequential applies to method='gptq' or 'distill'."
        )


def quantize_model(
    model: nn.Module,
    tokenizer: Any,
    fmt: str = "ternary",
    group_size: int = 128,
    *,
    method: str = "rtn",
    class_predicate: Optional[Predicate] = None,
    scale_dtype: Union[str, mx.Dtype] = "float16",
    calib: Optional[Union[str, Path]] = None,
    calib_samples: int = 64,
    calib_length: int = 256,
    distill: Optional[Dict[str, Any]] = None,
    progress: bool = True,
    rotate: bool = False,
    rotation_block: int = DEFAULT_MAX_BLOCK,
    damp: float = GPTQ_DAMP,
    sequential: bool = False,
    **fmt_options: Any,
) -> Dict[str, Any]:
    """Quantize ``model``'s layers in place with one of :data:`METHODS`
    (``rotate``, ``rotation_block``: as in :func:`mlx_lowbit.nn.quantize`;
    ``damp``: GPTQ's, as in :func:`mlx_lowbit.quant.gptq_model`).

    Returns:
        dict: what was done, as recorded in config.json under ``"mlx_lowbit"``
        (method, ``"rotation": "hadamard"`` if rotated, and for calibrated
        methods the calibration source and token count).
    """
    check_method(method, calib, fmt_options, distill)
    check_damp(damp, method)
    check_sequential(sequential, method)
    rotation = {"rotate": rotate, "rotation_block": rotation_block}
    done = {"rotation": ROTATION_KIND} if rotate else {}
    if method == "rtn":
        lbnn.quantize(
            model,
            fmt,
            group_size,
            class_predicate=class_predicate,
            scale_dtype=scale_dtype,
            progress=progress,
            **rotation,
            **fmt_options,
        )
        return {"method": "rtn", **done}

    from ..quant import DEFAULT_CORPUS, calibration_batches, gptq_model
    from .evaluate import eval_text

    batches = calibration_batches(
        tokenizer,
        calib,
        num_samples=calib_samples,
        sequence_length=calib_length,
        held_out=eval_text(),
    )
    record = {
        "method": method,
        **done,
        "calibration": str(calib) if calib is not None else DEFAULT_CORPUS,
        "calibration_tokens": int(batches.size),
    }
    if damp != GPTQ_DAMP:
        record["damp"] = damp
    if sequential:
        record["sequential"] = True
    if method == "distill":
        settings = {**DISTILL_DEFAULTS, **(distill or {})}
        init = settings["init"] or ("gptq" if fmt in GPTQ_FORMATS else "rtn")
        options = {
            "class_predicate": class_predicate,
            "scale_dtype": scale_dtype,
            "damp": damp,
            "sequential": sequential,
            **rotation,
        }
        record.update(
            _distill(
                model,
                tokenizer,
                batches,
                fmt,
                group_size,
                init,
                settings,
                progress,
                options,
                fmt_options,
            )
        )
        return record
    gptq_model(
        model,
        batches,
        fmt,
        group_size,
        class_predicate=class_predicate,
        scale_dtype=lbnn._scale_dtype(scale_dtype),
        progress=progress,
        damp=damp,
        sequential=sequential,
        **rotation,
        **fmt_options,
    )
    return record


def _distill(
    model: nn.Module,
    tokenizer: Any,
    batches: mx.array,
    fmt: str,
    group_size: int,
    init: str,
    settings: Dict[str, Any],
    progress: bool,
    options: Dict[str, Any],
    fmt_options: Dict[str, Any],
) -> Dict[str, Any]:
    """method="distill": quantize with ``init``, then train against a float copy."""
    import copy

    from ..quant import chat_prefix, gptq_model
    from ..quant.distill import distill_model, sample_text

    teacher = copy.deepcopy(model)
    if init == "gptq":
        gptq_model(
            model,
            batches,
            fmt,
            group_size,
            class_predicate=options["class_predicate"],
            scale_dtype=lbnn._scale_dtype(options["scale_dtype"]),
            progress=progress,
            rotate=options["rotate"],
            rotation_block=options["rotation_block"],
            damp=options["damp"],
            sequential=options["sequential"],
            **fmt_options,
        )
    else:
        rtn = {k: v for k, v in options.items() if k not in ("damp", "sequential")}
        lbnn.quantize(model, fmt, group_size, progress=progress, **rtn, **fmt_options)
    # An eighth of the windows (at least one) is held out for the KL before / after.
    n_held = max(1, batches.shape[0] // 8)
    train = batches[:-n_held] if batches.shape[0] > n_held else batches
    held = batches[-n_held:]
    generated = int(settings["generated"])
    # With a chat template, half the sampled windows open a chat (the float
    # model writes both turns); the others continue calibration text.
    chat = chat_prefix(tokenizer) if generated else None
    n_chat = generated // 2 if chat and len(chat) < train.shape[1] else 0
    n_text = generated - n_chat
    if n_text:
        prompts = mx.concatenate([train] * (n_text // train.shape[0] + 1))[:n_text, :8]
        train = mx.concatenate([train, sample_text(teacher, prompts, train.shape[1])])
    if n_chat:
        prompts = mx.broadcast_to(mx.array(chat)[None], (n_chat, len(chat)))
        train = mx.concatenate([train, sample_text(teacher, prompts, train.shape[1], seed=1)])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=settings["steps"], desc=f"distill {fmt}", unit="step")

    def report(step: int, loss: float) -> None:
        if bar:
            bar.update(1)
            bar.set_postfix(kl=f"{loss:.4f}")

    result = distill_model(
        model,
        teacher,
        train,
        held_out=held,
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        temperature=settings["temperature"],
        train_weights=settings["train_weights"],
        micro_batch=settings["micro_batch"],
        time_limit=settings["time_limit"],
        compute_dtype=getattr(mx, settings["compute_dtype"]),
        progress=report,
    )
    if bar:
        bar.close()
    return {
        "init": init,
        "generated_tokens": generated * batches.shape[1],
        "generated_chat_windows": n_chat,
        "learning_rate": settings["learning_rate"],
        "batch_size": settings["batch_size"],
        "temperature": settings["temperature"],
        "train_weights": settings["train_weights"],
        "micro_batch": settings["micro_batch"],
        "compute_dtype": settings["compute_dtype"],
        "steps_asked": settings["steps"],
        **result.record(),
        "loss_curve": [round(x, 5) for x in result.losses[:: max(1, len(result.losses) // 50)]],
    }


def convert(
    source: Union[str, Path],
    out_dir: Union[str, Path],
    fmt: str = "ternary",
    group_size: int = 128,
    *,
    class_predicate: Optional[Predicate] = None,
    scale_dtype: Union[str, mx.Dtype] = "float16",
    dtype: Optional[mx.Dtype] = None,
    method: str = "rtn",
    calib: Optional[Union[str, Path]] = None,
    calib_samples: int = 64,
    calib_length: int = 256,
    distill: Optional[Dict[str, Any]] = None,
    rotate: bool = False,
    rotation_block: int = DEFAULT_MAX_BLOCK,
    damp: float = GPTQ_DAMP,
    sequential: bool = False,
    **fmt_options: Any,
) -> Path:
    """Quantize a model with :func:`quantize_model` and save it as an
    mlx-lm model directory (safetensors, config.json with one quantization
    entry per low-bit layer, tokenizer files).

    The directory loads with :func:`mlx_lowbit.lm.load`, or with plain
    ``mlx_lm.load`` after ``import mlx_lowbit``. Nothing is left at
    ``out_dir`` if conversion fails.

    Args:
        source: A ``.gguf`` file, a local mlx-lm model directory or a Hugging
          Face repository.
        out_dir: The directory to create; it must not exist.
        fmt, group_size, class_predicate, scale_dtype, **fmt_options: As in
          :func:`mlx_lowbit.nn.quantize`.
        dtype (mx.Dtype, optional): Cast the unquantized parameters (norms,
          embeddings, biases) to this dtype first. Default: keep (GGUF: float16).
        method (str): ``"rtn"`` (round to nearest, default) or ``"gptq"``
          (error feedback against calibration activations, ternary and binary;
          docs/QUANTIZERS.md). Recorded in config.json under ``"mlx_lowbit"``.
        calib: ``gptq``: a ``.txt``/``.jsonl`` calibration file; default: the
          standard library's ``pydoc_data.topics``. Never the evaluation text.
        calib_samples, calib_length: ``gptq``: how many windows of how many tokens.
        rotate (bool): Rotate every quantized linear layer's input by a
          randomized block Hadamard transform (docs/QUANTIZERS.md, "Rotation").
          Recorded in config.json as ``"rotation": "hadamard"``.
        rotation_block (int): The largest Hadamard block. Default: ``256``.
        damp (float): GPTQ's damping, relative to the Hessian's mean diagonal
          (``gptq`` and ``distill``'s gptq start; docs/QUANTIZERS.md measures
          it). Default: ``0.01``.
        sequential (bool): GPTQ calibrates each block on the blocks before it
          already quantized (:func:`mlx_lowbit.quant.gptq_model`). Recorded.
          Default: ``False``.

    Returns:
        Path: ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"[mlx_lowbit.lm.convert] {out_dir} already exists.")
    check_method(method, calib, fmt_options, distill)  # before the (slow) load
    check_damp(damp, method)
    check_sequential(sequential, method)
    if rotate:
        check_max_block(rotation_block)
    model, tokenizer, config = load_source(source, dtype)
    config = dict(config)
    config["mlx_lowbit"] = quantize_model(
        model,
        tokenizer,
        fmt,
        group_size,
        method=method,
        class_predicate=class_predicate,
        scale_dtype=scale_dtype,
        calib=calib,
        calib_samples=calib_samples,
        calib_length=calib_length,
        distill=distill,
        rotate=rotate,
        rotation_block=rotation_block,
        damp=damp,
        sequential=sequential,
        **fmt_options,
    )
    save_model_dir(out_dir, model, tokenizer, config)
    bpw = 8 * model_bytes(model) / parameter_count(model)
    print(f"[INFO] Saved {out_dir}: {bpw:.3f} bits per weight over the whole model.")
    return out_dir


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-lowbit convert", description=__doc__)
    p.add_argument("source", help="A .gguf file, an mlx-lm model directory or a Hugging Face repo.")
    p.add_argument("out_dir", help="The model directory to create.")
    p.add_argument("--fmt", choices=["ternary", "binary", "codebook"], default="ternary")
    p.add_argument("--group-size", type=int, default=128, help="Weights per scale along K.")
    p.add_argument("--scale-dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--biases", action="store_true", help="binary: a bias per group.")
    p.add_argument("--vector-size", type=int, default=16, help="codebook: weights per index.")
    p.add_argument("--index-bits", type=int, default=12, help="codebook: bits per index.")
    p.add_argument("--seed", type=int, default=0, help="codebook: clustering seed.")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="rtn",
        help="rtn, gptq (calibrated) or distill (calibrated and trained; docs/QUANTIZERS.md).",
    )
    p.add_argument(
        "--calib", help="A .txt or .jsonl calibration file (default: pydoc_data.topics)."
    )
    p.add_argument("--calib-samples", type=int, default=64, help="Calibration windows.")
    p.add_argument("--calib-length", type=int, default=256, help="Tokens per window.")
    d = p.add_argument_group("distill", "method distill: training against the float model")
    d.add_argument(
        "--init",
        choices=["rtn", "gptq"],
        help="Starting codes (default: gptq if it exists for the format).",
    )
    d.add_argument("--steps", type=int, help=f"Default: {DISTILL_DEFAULTS['steps']}.")
    d.add_argument(
        "--batch-size",
        type=int,
        help=f"Windows per step. Default: {DISTILL_DEFAULTS['batch_size']}.",
    )
    d.add_argument(
        "--learning-rate", type=float, help=f"Default: {DISTILL_DEFAULTS['learning_rate']}."
    )
    d.add_argument(
        "--temperature", type=float, help=f"Of the KL. Default: {DISTILL_DEFAULTS['temperature']}."
    )
    d.add_argument(
        "--scales-only", action="store_true", help="Keep the codes; train scales, biases and norms."
    )
    d.add_argument(
        "--micro-batch",
        type=int,
        help="Rows per forward/backward pass (less memory, the same steps). Default: the batch.",
    )
    d.add_argument(
        "--time-limit",
        type=float,
        help="Seconds of training at most (stops early; the steps done are recorded).",
    )
    d.add_argument(
        "--generated",
        type=int,
        help="Extra windows sampled from the float model (data-free).",
    )
    d.add_argument(
        "--compute-dtype",
        choices=_COMPUTE_DTYPES,
        help="Of the training passes; the trained parameters stay float32. Default: float32.",
    )
    p.add_argument(
        "--rotate", action="store_true", help="Rotate layer inputs (randomized Hadamard)."
    )
    p.add_argument(
        "--damp",
        type=float,
        default=GPTQ_DAMP,
        help=f"GPTQ's damping, relative to the Hessian's mean diagonal. Default: {GPTQ_DAMP}.",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="GPTQ: calibrate each block on the quantized blocks before it.",
    )
    p.add_argument(
        "--recipe",
        help="A JSON file of module-path globs -> per-layer settings (or true/false): "
        'e.g. {"model.layers.*.mlp.down_proj": {"fmt": "binary", "biases": true}}.',
    )
    p.add_argument(
        "--rotation-block", type=int, default=DEFAULT_MAX_BLOCK, help="Largest Hadamard block."
    )
    return p


def recipe_predicate(recipe: Union[str, Path, Dict[str, Any]]) -> Predicate:
    """A ``class_predicate`` from a recipe: a JSON object (or its file) that
    maps module-path globs (``fnmatch``, e.g. ``"model.layers.*.mlp.down_proj"``)
    to ``true`` (the call's settings), ``false`` (keep the layer as it is)
    or a dict of per-layer settings (as :func:`mlx_lowbit.nn.quantize`
    takes). The first matching glob wins; layers that match none get the
    default choice (every linear layer but the output head).

    Raises:
        ValueError: a missing or malformed file, or an entry that is not
          true, false or an object.
    """
    import fnmatch

    where = "[mlx_lowbit.lm.convert] recipe"
    if not isinstance(recipe, dict):
        path = Path(recipe)
        try:
            recipe = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{where} {path} does not exist.") from None
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{where} {path} is not valid JSON ({e.msg}, line {e.lineno})."
            ) from None
        if not isinstance(recipe, dict):
            raise ValueError(f"{where} {path} must hold a JSON object of glob -> settings.")
    for glob, value in recipe.items():
        if not isinstance(value, (bool, dict)):
            raise ValueError(
                f"{where}: {glob!r} maps to {value!r}; expected true, false or an object."
            )
    rules = list(recipe.items())

    def predicate(path: str, module: nn.Module) -> Union[bool, Dict[str, Any]]:
        for glob, value in rules:
            if fnmatch.fnmatchcase(path, glob):
                return dict(value) if isinstance(value, dict) else value
        return lbnn._default_predicate(path, module)

    return predicate


def main(argv=None) -> None:
    args = setup_arg_parser().parse_args(argv)
    options: Dict[str, Any] = {}
    if args.fmt == "binary":
        options["biases"] = args.biases
    elif args.fmt == "codebook":
        options = {
            "vector_size": args.vector_size,
            "index_bits": args.index_bits,
            "seed": args.seed,
        }
    convert(
        args.source,
        args.out_dir,
        args.fmt,
        args.group_size,
        scale_dtype=args.scale_dtype,
        method=args.method,
        calib=args.calib,
        calib_samples=args.calib_samples,
        calib_length=args.calib_length,
        distill=_distill_settings(args),
        rotate=args.rotate,
        rotation_block=args.rotation_block,
        class_predicate=recipe_predicate(args.recipe) if args.recipe else None,
        damp=args.damp,
        sequential=args.sequential,
        **options,
    )


def _distill_settings(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """The distill flags given (None if none), checked against --method."""
    given = {
        "init": args.init,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "temperature": args.temperature,
        "train_weights": False if args.scales_only else None,
        "generated": args.generated,
        "micro_batch": args.micro_batch,
        "time_limit": args.time_limit,
        "compute_dtype": args.compute_dtype,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given and args.method != "distill":
        raise SystemExit("mlx-lowbit convert: the distill options need --method distill.")
    return given if args.method == "distill" else None
