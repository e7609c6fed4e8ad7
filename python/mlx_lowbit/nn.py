# Copyright © 2026 mlx-lowbit contributors.
"""Low-bit layers for mlx.nn models: LowBitLinear, LowBitEmbedding, quantize."""

from typing import Any, Callable, Dict, Optional, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ._checks import check_activation_bits
from .experts import QuantizedExperts, dequantize_experts, gather_matmul, quantize_experts
from .ops import dequantize, matmul
from .ops import quantize as quantize_weight
from .quantized_weight import QuantizedWeight
from .rotation import DEFAULT_MAX_BLOCK, Rotation
from .rotation import KIND as ROTATION_KIND

# The stored forms of a layer's rotation (rotation.py): a seed or packed signs.
_ROTATION_TENSORS = ("rotation_seed", "rotation_signs")

# The ``mode`` under which mlx-lm's per-layer quantization entries name our
# layers (see mlx_lowbit.lm.hook).
MODE = "lowbit"

SCALE_DTYPES = {"float16": mx.float16, "float32": mx.float32}

# Layers that nn.quantize leaves alone unless the predicate asks for them:
# the output head is as sensitive as the embedding it is often tied to.
OUTPUT_HEADS = ("lm_head",)
# MoE routers (mlx-lm names them so in every MoE architecture): they pick the
# experts, are tiny, and stay in float (or MLX 8-bit) unless asked for.
ROUTERS = ("gate", "router", "shared_expert_gate")

Predicate = Callable[[str, nn.Module], Union[bool, Dict[str, Any]]]


def _dtype_name(dtype: mx.Dtype) -> str:
    for name, d in SCALE_DTYPES.items():
        if d == dtype:
            return name
    raise ValueError(f"[mlx_lowbit.nn] Scales must be float16 or float32, not {dtype}.")


# The dtypes an embedding's lookups may come out in (``output_dtype``).
OUTPUT_DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}


def _output_dtype(value: Union[None, str, mx.Dtype]) -> Optional[mx.Dtype]:
    if value is None:
        return None
    for name, d in OUTPUT_DTYPES.items():
        if value == name or value == d:
            return d
    raise ValueError(
        f"[mlx_lowbit.nn] output_dtype must be one of {', '.join(OUTPUT_DTYPES)} or None, "
        f"got {value!r}."
    )


def _scale_dtype(value: Union[str, mx.Dtype]) -> mx.Dtype:
    if isinstance(value, str):
        if value not in SCALE_DTYPES:
            raise ValueError(
                f"[mlx_lowbit.nn] Unknown scale dtype {value!r}; use one of "
                f"{', '.join(SCALE_DTYPES)}."
            )
        return SCALE_DTYPES[value]
    _dtype_name(value)
    return value


class LowBitLayer(nn.Module):
    """The base of the low-bit layers: a QuantizedWeight held as module
    parameters (so parameters(), load_weights, save_weights, mx.eval and
    freezing work) plus its metadata as plain attributes.

    The arrays are named ``packed``, ``group_scales``, ``group_biases`` and
    ``codebook`` (docs/FORMATS.md calls them packed, scales, biases,
    codebook): mlx-lm takes a layer with a ``scales`` tensor for one of its
    own affine layers.
    """

    def _set_qweight(self, qw: QuantizedWeight) -> None:
        self.fmt = qw.fmt
        self.group_size = qw.group_size
        self.vector_size = qw.vector_size
        self.index_bits = qw.index_bits
        self.packed = qw.packed
        self.group_scales = qw.scales
        if qw.biases is not None:
            self.group_biases = qw.biases
        if qw.codebook is not None:
            self.codebook = qw.codebook

    @property
    def qweight(self) -> QuantizedWeight:
        """The weight as a QuantizedWeight (checked against the metadata)."""
        return QuantizedWeight(
            fmt=self.fmt,
            group_size=self.group_size,
            packed=self.packed,
            scales=self.group_scales,
            biases=self.get("group_biases"),
            codebook=self.get("codebook"),
            vector_size=self.vector_size,
            index_bits=self.index_bits,
            # Rebuilt at every call: the values were checked when the layer
            # got them (lm.load's check_layers for a model directory).
            check=False,
        )

    @property
    def nbytes(self) -> int:
        """Every stored byte of the weight: codes, scales, biases, codebook
        (and a linear layer's rotation signs); not a bias vector."""
        return self.qweight.nbytes

    @property
    def bits_per_weight(self) -> float:
        """:attr:`nbytes` per weight."""
        n, k = self.qweight.shape
        return 8.0 * self.nbytes / (n * k)

    def quantization_config(self) -> Dict[str, Any]:
        """The per-layer entry for mlx-lm's ``config["quantization"]``: the
        keyword arguments of ``to_quantized`` that rebuild this layer."""
        entry = {
            "mode": MODE,
            "fmt": self.fmt,
            "group_size": self.group_size,
            "scale_dtype": _dtype_name(self.group_scales.dtype),
        }
        if self.fmt == "binary":
            entry["biases"] = "group_biases" in self
        if self.fmt == "codebook":
            entry["vector_size"] = self.vector_size
            entry["index_bits"] = self.index_bits
        return entry

    def _weight_repr(self) -> str:
        extra = f", vector_size={self.vector_size}, index_bits={self.index_bits}"
        return (
            f"fmt={self.fmt}, group_size={self.group_size}"
            + (extra if self.fmt == "codebook" else "")
            + (", biases=True" if "group_biases" in self else "")
            + f", bits_per_weight={self.bits_per_weight:.3f}"
        )


def _shell(
    n: int,
    k: int,
    fmt: str,
    group_size: int,
    scale_dtype: Union[str, mx.Dtype],
    biases: bool,
    vector_size: int,
    index_bits: int,
) -> QuantizedWeight:
    """A zero weight of shape (n, k) with the arrays of the given format, to be
    filled by ``load_weights``. The array shapes come from quantizing one row,
    so no layout rule is restated here (docs/FORMATS.md)."""
    opts: Dict[str, Any] = {}
    if fmt == "binary":
        opts["biases"] = biases
    elif fmt == "codebook":
        opts = {"vector_size": vector_size, "index_bits": index_bits, "max_iters": 1}
    row = quantize_weight(
        mx.ones((1, k)), fmt, group_size, scale_dtype=_scale_dtype(scale_dtype), **opts
    )
    arrays = {
        name: mx.zeros((n, *a.shape[1:]), a.dtype)
        for name, a in row.arrays().items()
        if name != "codebook"
    }
    return QuantizedWeight(
        fmt=fmt,
        group_size=group_size,
        codebook=row.codebook,
        vector_size=row.vector_size,
        index_bits=row.index_bits,
        check=False,  # zeros, replaced by the checkpoint's arrays
        **arrays,
    )


def quantizer_options(fmt: str, **options: Any) -> Dict[str, Any]:
    """The options of a per-layer quantization entry (``biases``,
    ``vector_size``, ``index_bits``, ...) as :func:`mlx_lowbit.quantize`
    options: settings of other formats are dropped (an entry may carry them
    all), and ``biases=True`` on a format without biases is an error."""
    if fmt != "binary" and "biases" in options:
        if options.pop("biases"):
            raise ValueError(f"[mlx_lowbit.nn] Format {fmt!r} stores no biases.")
    if fmt != "codebook":
        for name in ("vector_size", "index_bits"):
            if options.get(name, 0) in (0, None):
                options.pop(name, None)
    return options


def _lookup_dtype(embedding: nn.Module) -> Optional[mx.Dtype]:
    """The dtype an embedding's lookups come out in: its weight's, or for
    MLX's quantized embedding its scales'; None for one of ours (keep)."""
    if isinstance(embedding, LowBitEmbedding):
        return embedding.output_dtype
    if isinstance(embedding, nn.QuantizedEmbedding):
        return embedding.scales.dtype
    dtype = embedding.weight.dtype
    return dtype if dtype in OUTPUT_DTYPES.values() else None


def dense_weight(module: nn.Module) -> mx.array:
    """The (out, in) float32 weight of a linear layer: ``nn.Linear``,
    ``nn.QuantizedLinear`` (dequantized) or a low-bit layer.

    Raises:
        ValueError: any other module.
    """
    if isinstance(module, LowBitLinear) and module.rotation is not None:
        return module.rotation.unrotate(dequantize(module.qweight))
    if isinstance(module, LowBitLayer):
        return dequantize(module.qweight)
    if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
        return mx.dequantize(
            module.weight,
            module.scales,
            module.get("biases"),
            group_size=module.group_size,
            bits=module.bits,
            mode=module.mode,
        ).astype(mx.float32)
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return module.weight.astype(mx.float32)
    raise ValueError(
        f"[mlx_lowbit.nn] Cannot take the weight of a {type(module).__name__}; "
        "expected Linear, QuantizedLinear, Embedding or a low-bit layer."
    )


class LowBitLinear(LowBitLayer):
    """``y = x @ W.T + b`` with W in a low-bit format, computed by
    :func:`mlx_lowbit.matmul` (fp32 accumulation, output in x's dtype).

    The constructor makes a zero weight of the right shapes (for
    ``load_weights`` to fill); :meth:`from_linear` quantizes an existing layer.

    Args:
        input_dims (int): K, a multiple of 32.
        output_dims (int): N.
        bias (bool): Add a bias vector. Default: ``True``.
        fmt (str): ``"ternary"``, ``"binary"`` or ``"codebook"``.
        group_size (int): Weights per scale along K. Default: ``128``.
        scale_dtype: ``"float16"``/``mx.float16`` (default) or float32.
        biases (bool): Binary only: a bias per group. Default: ``False``.
        vector_size (int): Codebook only: weights per index. Default: ``16``.
        index_bits (int): Codebook only: bits per index. Default: ``12``.
        activation_bits (int): 0 (default) or 8 (int8 activations, as
          BitNet b1.58 was trained; see :func:`mlx_lowbit.matmul`).
        rotation_block (int): 0 (default): none. Otherwise the block of a
          Hadamard rotation of the input (:mod:`mlx_lowbit.rotation`) whose
          signs ``load_weights`` fills in: drawn from the ``rotation_seed``
          tensor with ``rotation_seeded``, else the ``rotation_signs`` tensor.
        rotation_seeded (bool): See ``rotation_block``. Default: ``False``.

    With a rotation R the stored weight is ``W @ R``, and the layer computes
    ``(x @ R) @ (W @ R).T``; :func:`dense_weight` and :meth:`to_linear` give
    the unrotated W.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        biases: bool = False,
        vector_size: int = 16,
        index_bits: int = 12,
        activation_bits: int = 0,
        rotation_block: int = 0,
        rotation_seeded: bool = False,
    ):
        super().__init__()
        qw = _shell(
            output_dims, input_dims, fmt, group_size, scale_dtype, biases, vector_size, index_bits
        )
        self._set_qweight(qw)
        self.activation_bits = check_activation_bits(activation_bits, "LowBitLinear")
        entry = {"kind": ROTATION_KIND, "block": rotation_block, "seeded": rotation_seeded}
        self._set_rotation(Rotation.from_config(entry, input_dims) if rotation_block else None)
        if bias:
            self.bias = mx.zeros((output_dims,), _scale_dtype(scale_dtype))
        self.freeze()

    @classmethod
    def from_qweight(
        cls,
        qw: QuantizedWeight,
        bias: Optional[mx.array] = None,
        activation_bits: int = 0,
        rotation: Optional[Rotation] = None,
    ) -> "LowBitLinear":
        """A layer around an existing QuantizedWeight (and bias); with a
        ``rotation``, ``qw`` holds the rotated weight ``W @ R``."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._set_qweight(qw)
        layer.activation_bits = check_activation_bits(activation_bits, "LowBitLinear")
        layer._set_rotation(rotation)
        if bias is not None:
            layer.bias = bias
        layer.freeze()
        return layer

    @classmethod
    def from_linear(
        cls,
        linear: nn.Module,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        activation_bits: int = 0,
        lazy: bool = False,
        rotation: Optional[Rotation] = None,
        **fmt_options: Any,
    ) -> "LowBitLinear":
        """Quantize a linear layer (round to nearest, :func:`mlx_lowbit.quantize`).

        Args:
            linear: ``nn.Linear``, ``nn.QuantizedLinear`` (dequantized first) or
              a ``LowBitLinear`` (re-quantized from its dequantized weight).
            fmt, group_size, scale_dtype: As in :func:`mlx_lowbit.quantize`.
            activation_bits (int): See the class.
            lazy (bool): Quantize when the arrays are first evaluated, as
              ``mx.quantize`` does (see :func:`mlx_lowbit.quantize`).
            rotation (Rotation, optional): Quantize ``W @ R`` and rotate the
              inputs at run time (:mod:`mlx_lowbit.rotation`).
            **fmt_options: The format's quantizer options (binary: ``biases``;
              codebook: ``vector_size``, ``index_bits``, ``seed``, ``max_iters``).
        """
        w = dense_weight(linear)
        if rotation is not None:
            w = rotation.rotate_weight(w)
        qw = quantize_weight(
            w,
            fmt,
            group_size,
            scale_dtype=_scale_dtype(scale_dtype),
            lazy=lazy,
            **fmt_options,
        )
        return cls.from_qweight(qw, linear.get("bias"), activation_bits, rotation)

    def _set_rotation(self, rotation: Optional[Rotation]) -> None:
        if rotation is None:
            self.rotation_block = 0
            return
        k = self.qweight.shape[1]
        if rotation.k != k:
            raise ValueError(
                f"[LowBitLinear] The rotation is over K={rotation.k}; the weight has K={k}."
            )
        self.rotation_block = rotation.block
        for key in _ROTATION_TENSORS:
            if key in self:
                del self[key]
        # A seeded rotation stores its seed (8 bytes), any other its signs.
        if rotation.seed is not None:
            self.rotation_seed = rotation.seed_tensor()
        else:
            self.rotation_signs = rotation.sign_bits

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key in _ROTATION_TENSORS:  # load_weights / update set parameters this way
            self._cache_rotation()

    def _cache_rotation(self) -> None:
        """Keep the Rotation of the current signs with its unpacked signs, so
        calls reuse them. Built here, when the tensor is set, and never
        during a call, which may be traced by mx.compile; ``rotation``
        checks that the cache still belongs to the layer's tensor."""
        object.__setattr__(self, "_rotation", None)
        try:
            rotation = self.rotation
        except ValueError:
            return  # the call reports it
        if rotation is not None:
            rotation.signs()
            object.__setattr__(self, "_rotation", rotation)

    @property
    def rotation(self) -> Optional[Rotation]:
        """The input rotation, or None; checked against the weight, so a
        layer whose ``rotation_signs`` are missing or malformed raises
        ``ValueError`` instead of running unrotated."""
        if not self.rotation_block:
            return None
        cached = self.__dict__.get("_rotation")
        k = self.qweight.shape[1]
        if "rotation_seed" in self:
            # The cache is rebuilt whenever the tensor is set (__setitem__),
            # so it is the current one; reading the seed needs an eval, which
            # a traced call (mx.compile of the model state) cannot do.
            if cached is not None and cached.seed is not None:
                return cached
            rotation = Rotation.from_seed_tensor(self.rotation_seed, k)
            if rotation.block != self.rotation_block:
                raise ValueError(
                    f"[LowBitLinear] rotation_seed names block {rotation.block}; the layer's "
                    f"config says {self.rotation_block}."
                )
            return rotation
        if cached is not None and cached.sign_bits is self.get("rotation_signs"):
            return cached
        if "rotation_signs" not in self:
            raise ValueError(
                f"[LowBitLinear] The layer is rotated (block {self.rotation_block}) but has no "
                "rotation_signs tensor."
            )
        signs, block = self.rotation_signs, self.rotation_block
        if signs.shape != (k // block, block // 32):
            raise ValueError(
                f"[LowBitLinear] rotation_signs has shape {tuple(signs.shape)}; K={k} in blocks "
                f"of {block} needs ({k // block}, {block // 32}) (one bit per input feature)."
            )
        return Rotation(signs)

    @property
    def nbytes(self) -> int:
        rotation = self.rotation
        return super().nbytes + (rotation.nbytes if rotation is not None else 0)

    def to_linear(self, dtype: Optional[mx.Dtype] = None) -> nn.Linear:
        """An ``nn.Linear`` holding the dequantized (and unrotated) weight,
        in ``dtype`` (default: the scales' dtype)."""
        dtype = dtype or self.group_scales.dtype
        n, k = self.qweight.shape
        linear = nn.Linear(k, n, bias="bias" in self)
        if self.rotation is not None:
            linear.weight = dense_weight(self).astype(dtype)
        else:
            linear.weight = dequantize(self.qweight, dtype)
        if "bias" in self:
            linear.bias = self.bias
        return linear

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs,
    ) -> nn.Module:
        """Re-quantize from the dequantized weight, as ``nn.Linear.to_quantized``
        does (any MLX mode, or ``mode="lowbit"`` for another low-bit format)."""
        return self.to_linear().to_quantized(group_size, bits, mode=mode, **kwargs)

    def to_lora(self, r: int = 8, scale: float = 20.0, dropout: float = 0.0) -> nn.Module:
        """This layer, frozen, with a trainable LoRA adapter
        (:class:`mlx_lowbit.lora.LoRALowBitLinear`); mlx-lm's LoRA tools
        (``mlx_lm lora``, ``load_adapters``) call it for layers that have it."""
        from .lora import LoRALowBitLinear

        return LoRALowBitLinear.from_base(self, r=r, dropout=dropout, scale=scale)

    def quantization_config(self) -> Dict[str, Any]:
        entry = super().quantization_config()
        if self.activation_bits:
            entry["activation_bits"] = self.activation_bits
        rotation = self.rotation
        if rotation is not None:
            entry["rotation"] = rotation.config()
        return entry

    def _extra_repr(self) -> str:
        n, k = self.qweight.shape
        return (
            f"input_dims={k}, output_dims={n}, bias={'bias' in self}, "
            + self._weight_repr()
            + (f", activation_bits={self.activation_bits}" if self.activation_bits else "")
            + (
                f", rotation={ROTATION_KIND}(block={self.rotation_block})"
                if self.rotation_block
                else ""
            )
        )

    def __call__(self, x: mx.array) -> mx.array:
        rotation = self.rotation
        if rotation is not None:
            x = rotation.rotate(x)
        y = matmul(x, self.qweight, activation_bits=self.activation_bits)
        if "bias" in self:
            y = y + self.bias.astype(y.dtype)  # the output keeps x's dtype
        return y


class LowBitEmbedding(LowBitLayer):
    """An embedding table in a low-bit format: a lookup dequantizes only the
    rows it gathers, and :meth:`as_linear` (a tied output head) runs on the
    low-bit kernels.

    Args:
        num_embeddings (int): Rows (vocabulary size).
        dims (int): Columns, a multiple of 32.
        fmt, group_size, scale_dtype, biases, vector_size, index_bits: As in
          :class:`LowBitLinear`.
        output_dtype (str or mx.Dtype, optional): The dtype of lookups (the
          model's activations start here): ``"float16"``, ``"bfloat16"`` or
          ``"float32"``. Default: the scales' dtype.
    """

    def __init__(
        self,
        num_embeddings: int,
        dims: int,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        biases: bool = False,
        vector_size: int = 16,
        index_bits: int = 12,
        output_dtype: Union[None, str, mx.Dtype] = None,
    ):
        super().__init__()
        qw = _shell(
            num_embeddings, dims, fmt, group_size, scale_dtype, biases, vector_size, index_bits
        )
        self._set_qweight(qw)
        self.output_dtype = _output_dtype(output_dtype)
        self.freeze()

    @classmethod
    def from_qweight(
        cls, qw: QuantizedWeight, output_dtype: Union[None, str, mx.Dtype] = None
    ) -> "LowBitEmbedding":
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._set_qweight(qw)
        layer.output_dtype = _output_dtype(output_dtype)
        layer.freeze()
        return layer

    @classmethod
    def from_embedding(
        cls,
        embedding: nn.Module,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        lazy: bool = False,
        output_dtype: Union[None, str, mx.Dtype] = "source",
        **fmt_options: Any,
    ) -> "LowBitEmbedding":
        """Quantize an ``nn.Embedding`` or ``nn.QuantizedEmbedding`` (options
        as :meth:`LowBitLinear.from_linear`). Lookups come out in the dtype
        the embedding's own lookups had (``output_dtype="source"``, as MLX's
        quantized embedding keeps it), so quantizing a bfloat16 model leaves
        its activations bfloat16; or in ``output_dtype``."""
        if isinstance(output_dtype, str) and output_dtype == "source":
            output_dtype = _lookup_dtype(embedding)
        out = _output_dtype(output_dtype)
        qw = quantize_weight(
            dense_weight(embedding),
            fmt,
            group_size,
            scale_dtype=_scale_dtype(scale_dtype),
            lazy=lazy,
            **fmt_options,
        )
        return cls.from_qweight(qw, None if out == qw.scales.dtype else out)

    def to_embedding(self, dtype: Optional[mx.Dtype] = None) -> nn.Embedding:
        """An ``nn.Embedding`` holding the dequantized table."""
        n, k = self.qweight.shape
        embedding = nn.Embedding(n, k)
        embedding.weight = dequantize(self.qweight, dtype or self.group_scales.dtype)
        return embedding

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs,
    ) -> nn.Module:
        return self.to_embedding().to_quantized(group_size, bits, mode=mode, **kwargs)

    def _extra_repr(self) -> str:
        n, k = self.qweight.shape
        return f"{n}, {k}, " + self._weight_repr()

    def _rows(self, rows: mx.array) -> QuantizedWeight:
        """The weight restricted to some rows (the codebook is shared)."""
        return QuantizedWeight(
            fmt=self.fmt,
            group_size=self.group_size,
            packed=self.packed[rows],
            scales=self.group_scales[rows],
            biases=self["group_biases"][rows] if "group_biases" in self else None,
            codebook=self.get("codebook"),
            vector_size=self.vector_size,
            index_bits=self.index_bits,
            check=False,  # rows of the layer's checked weight, at every lookup
        )

    def __call__(self, x: mx.array) -> mx.array:
        qw = self._rows(x.reshape(-1))
        out = dequantize(qw, self.output_dtype or qw.scales.dtype)
        return out.reshape(*x.shape, out.shape[-1])

    def quantization_config(self) -> Dict[str, Any]:
        entry = super().quantization_config()
        if self.output_dtype is not None:
            entry["output_dtype"] = next(
                n for n, d in OUTPUT_DTYPES.items() if d == self.output_dtype
            )
        return entry

    def as_linear(self, x: mx.array) -> mx.array:
        """``x @ W.T``: the tied output head."""
        return matmul(x, self.qweight)


def switch_classes() -> tuple:
    """mlx-lm's ``SwitchLinear`` and ``QuantizedSwitchLinear``, or ``()`` when
    mlx-lm has not loaded them (then no model holds one): mlx_lowbit does not
    import mlx-lm itself."""
    import sys

    layers = sys.modules.get("mlx_lm.models.switch_layers")
    return (layers.SwitchLinear, layers.QuantizedSwitchLinear) if layers else ()


def dense_experts(module: nn.Module) -> mx.array:
    """The (E, out, in) float32 weights of a switch layer: mlx-lm's
    ``SwitchLinear``, ``QuantizedSwitchLinear`` (dequantized) or ours."""
    if isinstance(module, LowBitSwitchLinear):
        return dequantize_experts(module.qweight)
    if "scales" in module:  # QuantizedSwitchLinear
        if module.get("global_scale") is not None:
            raise ValueError("nvfp4 experts with a global scale cannot be dequantized here.")
        return mx.dequantize(
            module.weight,
            module.scales,
            module.get("biases"),
            group_size=module.group_size,
            bits=module.bits,
            mode=module.mode,
        ).astype(mx.float32)
    return module.weight.astype(mx.float32)


class LowBitSwitchLinear(LowBitLayer):
    """mlx-lm's ``SwitchLinear`` (the experts of a mixture-of-experts layer)
    with each expert's (out, in) weight in a low-bit format, computed by
    :func:`mlx_lowbit.experts.gather_matmul`. Called as mlx-lm calls its
    switch layers: ``layer(x, indices, sorted_indices=False)``.

    Args:
        input_dims (int): K, a multiple of 32.
        output_dims (int): N.
        num_experts (int): E.
        bias (bool): A bias vector per expert. Default: ``True`` (as mlx-lm).
        fmt, group_size, scale_dtype, biases, vector_size, index_bits: As in
          :class:`LowBitLinear`; a codebook is clustered per expert.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        num_experts: int,
        bias: bool = True,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        biases: bool = False,
        vector_size: int = 16,
        index_bits: int = 12,
    ):
        super().__init__()
        one = _shell(
            output_dims, input_dims, fmt, group_size, scale_dtype, biases, vector_size, index_bits
        )
        self._set_qweight(QuantizedExperts.stack([one] * num_experts))
        if bias:
            self.bias = mx.zeros((num_experts, output_dims), _scale_dtype(scale_dtype))
        self.freeze()

    @classmethod
    def from_qweight(
        cls, qe: QuantizedExperts, bias: Optional[mx.array] = None
    ) -> "LowBitSwitchLinear":
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._set_qweight(qe)
        if bias is not None:
            layer.bias = bias
        layer.freeze()
        return layer

    @classmethod
    def from_switch_linear(
        cls,
        switch: nn.Module,
        fmt: str = "ternary",
        group_size: int = 128,
        *,
        scale_dtype: Union[str, mx.Dtype] = mx.float16,
        lazy: bool = False,
        **fmt_options: Any,
    ) -> "LowBitSwitchLinear":
        """Quantize a switch layer expert by expert (round to nearest; options
        as :meth:`LowBitLinear.from_linear`)."""
        qe = quantize_experts(
            dense_experts(switch),
            fmt,
            group_size,
            scale_dtype=_scale_dtype(scale_dtype),
            lazy=lazy,
            **fmt_options,
        )
        return cls.from_qweight(qe, switch.get("bias"))

    @property
    def qweight(self) -> QuantizedExperts:
        """The experts as a QuantizedExperts (checked against the metadata)."""
        return QuantizedExperts(
            fmt=self.fmt,
            group_size=self.group_size,
            packed=self.packed,
            scales=self.group_scales,
            biases=self.get("group_biases"),
            codebook=self.get("codebook"),
            vector_size=self.vector_size,
            index_bits=self.index_bits,
        )

    @property
    def bits_per_weight(self) -> float:
        return self.qweight.bits_per_weight

    @property
    def input_dims(self) -> int:
        return self.qweight.shape[2]

    @property
    def output_dims(self) -> int:
        return self.qweight.shape[1]

    @property
    def num_experts(self) -> int:
        return self.qweight.shape[0]

    def to_switch_linear(self, dtype: Optional[mx.Dtype] = None) -> nn.Module:
        """mlx-lm's ``SwitchLinear`` holding the dequantized experts, in
        ``dtype`` (default: the scales' dtype)."""
        from mlx_lm.models.switch_layers import SwitchLinear

        e, n, k = self.qweight.shape
        switch = SwitchLinear(k, n, e, bias="bias" in self)
        switch.weight = dequantize_experts(self.qweight, dtype or self.group_scales.dtype)
        if "bias" in self:
            switch.bias = self.bias
        return switch

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs,
    ) -> nn.Module:
        """Re-quantize from the dequantized experts (any MLX mode, or
        ``mode="lowbit"``), as ``SwitchLinear.to_quantized`` does."""
        return self.to_switch_linear().to_quantized(group_size, bits, mode=mode, **kwargs)

    def _extra_repr(self) -> str:
        e, n, k = self.qweight.shape
        return (
            f"input_dims={k}, output_dims={n}, num_experts={e}, bias={'bias' in self}, "
            + self._weight_repr()
        )

    def __call__(self, x: mx.array, indices: mx.array, sorted_indices: bool = False) -> mx.array:
        y = gather_matmul(x, self.qweight, rhs_indices=indices, sorted_indices=sorted_indices)
        if "bias" in self:
            y = y + mx.expand_dims(self.bias[indices], -2).astype(y.dtype)
        return y


def set_dtype(model: nn.Module, dtype: mx.Dtype) -> None:
    """``model.set_dtype(dtype)`` except for the low-bit layers, whose scales
    keep their float16/float32 storage (the formats allow no other; e.g.
    bfloat16 scales would be refused at the next call)."""
    for _, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, LowBitLayer):
            if "bias" in module:
                module.bias = module.bias.astype(dtype)
        else:
            module.set_dtype(dtype)


def _default_predicate(path: str, module: nn.Module) -> bool:
    # Layers that are already low-bit (e.g. a repacked BitNet checkpoint)
    # are kept as they are; so are output heads and MoE routers.
    if isinstance(module, switch_classes()):
        return True
    return isinstance(module, (nn.Linear, nn.QuantizedLinear)) and (
        path.rsplit(".", 1)[-1] not in OUTPUT_HEADS + ROUTERS
    )


def _layer_options(
    result: Union[bool, Dict[str, Any]],
    fmt: str,
    group_size: int,
    scale_dtype: Union[str, mx.Dtype],
    fmt_options: Dict[str, Any],
) -> Dict[str, Any]:
    """The call's settings overridden by the predicate's dict. A dict that
    switches format starts from that format's defaults, not the call's
    format options."""
    opts = {"fmt": fmt, "group_size": group_size, "scale_dtype": scale_dtype, **fmt_options}
    if isinstance(result, dict):
        if result.get("fmt", fmt) != fmt:
            opts = {"group_size": group_size, "scale_dtype": scale_dtype}
        opts.update(result)
    return opts


def quantize(
    model: nn.Module,
    fmt: str = "ternary",
    group_size: int = 128,
    *,
    class_predicate: Optional[Predicate] = None,
    scale_dtype: Union[str, mx.Dtype] = mx.float16,
    progress: bool = False,
    rotate: bool = False,
    rotation_block: int = DEFAULT_MAX_BLOCK,
    **fmt_options: Any,
) -> None:
    """Replace a model's layers by low-bit ones in place, like ``mlx.nn.quantize``.

    Args:
        model (nn.Module): The model.
        fmt (str): ``"ternary"``, ``"binary"`` or ``"codebook"``. Default: ``"ternary"``.
        group_size (int): Weights per scale along K. Default: ``128``.
        class_predicate (callable, optional): ``(path, module) -> bool | dict``.
          ``True`` quantizes with the call's settings; a dict overrides them
          for that layer (keys: ``fmt``, ``group_size``, ``scale_dtype``,
          ``activation_bits``, ``rotate``, ``rotation_block`` and the format's
          quantizer options), so mixed recipes are one call. Linear layers (``nn.Linear``,
          ``nn.QuantizedLinear``, ``LowBitLinear``) become :class:`LowBitLinear`,
          embeddings :class:`LowBitEmbedding`, mlx-lm's ``SwitchLinear`` /
          ``QuantizedSwitchLinear`` (MoE experts) :class:`LowBitSwitchLinear`.
          Default: every ``nn.Linear``, ``nn.QuantizedLinear`` and switch
          layer except the output head (``lm_head``) and MoE routers
          (:data:`ROUTERS`); embeddings and layers that are already low-bit
          stay as they are.
        scale_dtype: ``mx.float16`` (default) or ``mx.float32``.
        progress (bool): Show a tqdm progress bar over the layers.
        rotate (bool): Give every linear layer a randomized Hadamard rotation
          of its input (:mod:`mlx_lowbit.rotation`) and quantize the rotated
          weight; switch (expert) layers are not rotated. Default: ``False``.
        rotation_block (int): The largest Hadamard block; each layer uses the
          largest power of two up to this that divides its K. Default: ``256``.
        **fmt_options: The format's quantizer options, as in
          :func:`mlx_lowbit.quantize`.

    Raises:
        ValueError: naming the layer, e.g. a group size that does not divide
          its input dimension, an unknown option, or a predicate that selects
          a module that is neither linear nor an embedding.
    """
    predicate = class_predicate or _default_predicate
    chosen = []
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        result = predicate(path, module)
        if result:
            chosen.append((path, module, result))
    if progress:
        from tqdm import tqdm

        chosen = tqdm(chosen, desc=f"quantizing to {fmt}", unit="layer")
    replaced = []
    for path, module, result in chosen:
        opts = _layer_options(result, fmt, group_size, scale_dtype, fmt_options)
        opts = {"rotate": rotate, "rotation_block": rotation_block, **opts}
        try:
            replaced.append((path, _quantize_module(module, **opts)))
        except ValueError as e:
            raise ValueError(f"[mlx_lowbit.nn.quantize] Layer {path!r}: {e}") from e
    model.update_modules(tree_unflatten(replaced))


def _quantize_module(
    module: nn.Module,
    fmt: str,
    group_size: int,
    activation_bits: int = 0,
    rotate: bool = False,
    rotation_block: int = DEFAULT_MAX_BLOCK,
    **options: Any,
) -> nn.Module:
    if isinstance(module, (nn.Embedding, nn.QuantizedEmbedding, LowBitEmbedding)):
        if activation_bits or rotate:
            raise ValueError("Embeddings take no activation_bits and no rotation.")
        return LowBitEmbedding.from_embedding(module, fmt, group_size, **options)
    if isinstance(module, (LowBitSwitchLinear, *switch_classes())):
        # rotate (a whole-model setting) applies to linear layers only.
        if activation_bits:
            raise ValueError("Switch (expert) layers take no activation_bits.")
        return LowBitSwitchLinear.from_switch_linear(module, fmt, group_size, **options)
    if isinstance(module, (nn.Linear, nn.QuantizedLinear, LowBitLinear)):
        rotation = None
        if rotate:
            k = dense_weight(module).shape[1]  # lazy: only the shape is read
            rotation = Rotation.random(k, max_block=rotation_block)
        return LowBitLinear.from_linear(
            module, fmt, group_size, activation_bits=activation_bits, rotation=rotation, **options
        )
    raise ValueError(
        f"A {type(module).__name__} cannot be quantized; the predicate may select "
        "linear layers, embeddings and mlx-lm's switch (expert) layers."
    )
