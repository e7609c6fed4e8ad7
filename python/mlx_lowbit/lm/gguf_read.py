# Copyright © 2026 mlx-lowbit contributors.
"""Read GGUF files with the ``gguf`` package (llama.cpp's reader): metadata,
dense tensors, and TQ1_0 / TQ2_0 tensors as lossless ternary weights.

``gguf`` is imported inside the functions, as mlx-lm is elsewhere in
:mod:`mlx_lowbit.lm`.
"""

from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

import mlx.core as mx
import numpy as np

from .. import _ext
from ..quantized_weight import QuantizedWeight

# Weights per TQ1_0 / TQ2_0 block; each block ends with its fp16 scale d.
TERNARY_BLOCK = 256


def open_gguf(path: Union[str, Path], where: str) -> Any:
    """A ``gguf.GGUFReader`` on the file; a truncated or corrupt file raises
    ValueError (the reader itself fails with whatever numpy raises)."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except FileNotFoundError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OSError) as e:
        raise ValueError(f"{where}: not a readable GGUF file, truncated or corrupt ({e}).") from e
    if reader.byte_order != "I":
        # The block decoders read multi-byte fields in host order.
        raise ValueError(f"{where}: GGUF files in the other byte order are not supported.")
    return reader


def gguf_metadata(reader: Any) -> Dict[str, Any]:
    """The key-value metadata in the form ``mx.load`` returns it: strings as
    ``str``, string arrays as ``list``, numbers and number arrays as
    ``mx.array``."""
    from gguf import GGUFValueType

    metadata: Dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):  # the reader's own header entries
            continue
        if field.types[-1] == GGUFValueType.STRING:
            metadata[name] = field.contents()
        elif field.types[0] == GGUFValueType.ARRAY:
            parts = [field.parts[i] for i in field.data]
            metadata[name] = mx.array(np.concatenate(parts)) if parts else []
        else:
            metadata[name] = mx.array(field.parts[-1][0])
    return metadata


def numpy_shape(tensor: Any) -> Tuple[int, ...]:
    """GGUF lists a tensor's dimensions fastest-varying first: reversed, they
    are the row-major shape ((N, K) for a linear weight)."""
    return tuple(int(d) for d in reversed(tensor.shape.tolist()))


def is_ternary(tensor: Any) -> bool:
    from gguf import GGMLQuantizationType as T

    return tensor.tensor_type in (T.TQ1_0, T.TQ2_0) and len(tensor.shape) == 2


def is_low_bit(tensor: Any) -> bool:
    """A matrix stored in a GGUF type that has an exact format of ours."""
    from gguf import GGMLQuantizationType as T

    return is_ternary(tensor) or (tensor.tensor_type == T.Q1_0 and len(tensor.shape) == 2)


def low_bit_weight(tensor: Any, where: str) -> QuantizedWeight:
    """TQ1_0 / TQ2_0 as ternary (:func:`ternary_weight`), Q1_0 as binary."""
    return ternary_weight(tensor, where) if is_ternary(tensor) else binary_weight(tensor)


def binary_weight(tensor: Any) -> QuantizedWeight:
    """A Q1_0 tensor as our binary format with group_size 128 and float16
    scales equal to each block's d: the same values, bit for bit.

    Q1_0 (18 bytes per 128 weights): d (float16), then 16 bytes whose bit
    j % 8 of byte j // 8 is set where weight j is +d (clear: -d). Read as
    little-endian uint32 words that is our binary bit order (docs/FORMATS.md).
    """
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as T

    block, size = GGML_QUANT_SIZES[T.Q1_0]
    n, k = numpy_shape(tensor)
    blocks = np.ascontiguousarray(tensor.data).reshape(n, k // block, size)
    scales = blocks[..., :2].copy().view(np.float16).reshape(n, k // block)
    words = blocks[..., 2:].copy().view("<u4").reshape(n, k // 32).astype(np.uint32)
    return QuantizedWeight(
        fmt="binary", group_size=block, packed=mx.array(words), scales=mx.array(scales)
    )


def dense_tensor(tensor: Any, where: str) -> mx.array:
    """F32 and F16 as stored, BF16 as bfloat16, every type the ``gguf``
    package dequantizes in float32; others raise ValueError naming the tensor."""
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize

    kind, shape = tensor.tensor_type, numpy_shape(tensor)
    data = np.ascontiguousarray(tensor.data)
    if kind in (T.F32, T.F16):
        return mx.array(data.reshape(shape))
    if kind == T.BF16:  # the reader hands BF16 over as raw bytes
        return mx.array(data.view(np.uint16).reshape(shape)).view(mx.bfloat16)
    try:
        values = dequantize(data, kind)
    except NotImplementedError as e:
        raise ValueError(
            f"{where}: tensor {tensor.name!r} has GGUF type {kind.name}, which cannot be "
            "dequantized."
        ) from e
    return mx.array(values.reshape(shape))


def ternary_weight(tensor: Any, where: str) -> QuantizedWeight:
    """A TQ1_0 / TQ2_0 tensor as our ternary format with group_size 256 and
    float16 scales equal to each block's d: the same values, bit for bit.

    A zero (or non-finite) d is kept as it is, so the block dequantizes to
    what the file says. TQ2_0's unused 2-bit value (weight +2d) has no ternary
    code and raises ValueError naming the tensor.
    """
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as T

    kind = tensor.tensor_type
    n, k = numpy_shape(tensor)
    decode: Callable[[np.ndarray], np.ndarray] = _tq1_codes if kind == T.TQ1_0 else _tq2_codes
    blocks = np.ascontiguousarray(tensor.data).reshape(-1, GGML_QUANT_SIZES[kind][1])
    codes = decode(blocks)
    if codes.max(initial=0) > 1:
        raise ValueError(
            f"{where}: tensor {tensor.name!r} ({kind.name}) holds {int((codes > 1).sum())} "
            "weights with the value 3 in its 2-bit fields (+2d), which is not ternary."
        )
    scales = blocks[:, -2:].copy().view(np.float16).reshape(n, k // TERNARY_BLOCK)
    return QuantizedWeight(
        fmt="ternary",
        group_size=TERNARY_BLOCK,
        packed=_ext.pack_ternary(mx.array(codes.reshape(n, k))),
        scales=mx.array(scales),
    )


def _tq2_codes(blocks: np.ndarray) -> np.ndarray:
    """TQ2_0 (66 bytes): 64 bytes of 2-bit fields holding code + 1, then d.
    Byte 32 * h + i holds weight 128 * h + 32 * j + i in bits 2j and 2j + 1."""
    shifts = np.arange(0, 8, 2, dtype=np.uint8).reshape(1, 1, 4, 1)
    fields = (blocks[:, :64].reshape(-1, 2, 1, 32) >> shifts) & 3
    return fields.reshape(-1, TERNARY_BLOCK).astype(np.int8) - 1


# TQ1_0 (54 bytes): 48 + 4 bytes of base-3 digits (code + 1), then d. A byte
# holds its digits as a fraction of 256, most significant first: digit j is
# (3 * ((byte * 3**j) mod 256)) // 256. Per run of bytes (first byte, bytes,
# digits per byte), byte i holds weight start + j * bytes + i, where start
# counts the weights of the runs before.
_TQ1_RUNS = ((0, 32, 5), (32, 16, 5), (48, 4, 4))


def _tq1_codes(blocks: np.ndarray) -> np.ndarray:
    runs = []
    for first, n_bytes, n_digits in _TQ1_RUNS:
        b = blocks[:, None, first : first + n_bytes].astype(np.uint16)
        powers = (3 ** np.arange(n_digits, dtype=np.uint16)).reshape(1, -1, 1)
        runs.append(((3 * ((b * powers) & 0xFF)) >> 8).reshape(len(blocks), -1))
    return np.concatenate(runs, axis=1).astype(np.int8) - 1
