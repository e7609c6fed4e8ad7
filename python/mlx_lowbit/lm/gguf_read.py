# Copyright © 2026 mlx-lowbit contributors.
"""Read GGUF files with the ``gguf`` package (llama.cpp's reader): metadata,
dense tensors, and TQ1_0 / TQ2_0 / I2_S tensors as lossless ternary weights.

``gguf`` is imported inside the functions, as mlx-lm is elsewhere in
:mod:`mlx_lowbit.lm`.
"""

import functools
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

import mlx.core as mx
import numpy as np

from .. import _ext
from ..quantized_weight import MAX_SCALE, MAX_SCALE_LOG2, QuantizedWeight
from .bitnet import per_tensor_ternary

# Weights per TQ1_0 / TQ2_0 block; each block ends with its fp16 scale d.
TERNARY_BLOCK = 256

# I2_S, bitnet.cpp's ternary type (microsoft/BitNet's ggml fork; neither ggml
# nor the gguf package has it), as its quantize_i2_s (src/ggml-bitnet-mad.cpp)
# writes it and its ggml_nbytes sizes it. A tensor of n = N * K weights takes
# n / 4 + 32 bytes: n / 4 bytes of 2-bit codes over the flattened tensor, then
# one float32 scale for the whole tensor, then 28 bytes of padding. The codes
# come in blocks of 128 weights in 32 bytes: weight 32 * g + j of a block sits
# in bits 6 - 2g and 7 - 2g of the block's byte j (g = 0..3), and holds t + 1
# (0: -1, 1: 0, 2: +1; 3 is unused). That is the x86 layout, which the
# published files (microsoft/bitnet-b1.58-2B-4T-gguf) use and every build
# wrote until 2025-11; bitnet.cpp's ARM builds have since written 64-weight
# blocks of 16 bytes under the same type id, which nothing in a file tells
# apart (docs/MLX_LM.md).
I2S_TYPE = 36
I2S_BLOCK = 128
I2S_BLOCK_BYTES = 32
I2S_TAIL = 32  # the float32 scale and its padding


def open_gguf(path: Union[str, Path], where: str) -> Any:
    """A ``gguf.GGUFReader`` on the file; a truncated or corrupt file raises
    ValueError (the reader itself fails with whatever numpy raises)."""
    try:
        reader = _reader_class()(path)
    except FileNotFoundError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OSError) as e:
        raise ValueError(f"{where}: not a readable GGUF file, truncated or corrupt ({e}).") from e
    if reader.byte_order != "I":
        # The block decoders read multi-byte fields in host order.
        raise ValueError(f"{where}: GGUF files in the other byte order are not supported.")
    return reader


@functools.lru_cache(maxsize=None)
def _reader_class() -> type:
    """``gguf.GGUFReader`` that also lists I2_S tensors.

    The package's reader makes every tensor's type id a
    ``GGMLQuantizationType``, which has no I2_S, so one such tensor fails the
    whole file. Only its per-tensor step (``_build_tensors``) is overridden:
    I2_S entries are set aside, the package's own code reads the rest, and
    each I2_S tensor is added with its n / 4 + 32 bytes, or as many as the
    file holds before the next tensor (``i2s_weight`` checks the size)."""
    import gguf
    from gguf.gguf_reader import ReaderTensor

    class Reader(gguf.GGUFReader):
        def _build_tensors(self, start_offs: int, fields: List[Any]) -> None:
            def is_i2s(field: Any) -> bool:
                # parts: name length, name, n_dims, dims, type, offset
                return int(field.parts[4][0]) == I2S_TYPE

            super()._build_tensors(start_offs, [f for f in fields if not is_i2s(f)])
            names = {t.name for t in self.tensors}
            starts = sorted(start_offs + int(f.parts[5][0]) for f in fields)
            for field in filter(is_i2s, fields):
                _, name_data, _, dims, _, offset = field.parts
                name = str(bytes(name_data), encoding="utf-8")
                if name in names:
                    raise ValueError(f"Found duplicated tensor with name {name}")
                names.add(name)
                n_elements = int(np.prod(dims))
                n_bytes = n_elements // 4 + I2S_TAIL
                start = start_offs + int(offset[0])
                end = min([s for s in starts if s > start] + [len(self.data)])
                tensor = ReaderTensor(
                    name=name,
                    tensor_type=I2S_TYPE,
                    shape=dims,
                    n_elements=n_elements,
                    n_bytes=n_bytes,
                    data_offset=start,
                    data=self._get(start, np.uint8, max(0, min(n_bytes, end - start))),
                    field=field,
                )
                self.tensors.append(tensor)
            self.tensors.sort(key=lambda t: t.field.offset)  # the file's order

    return Reader


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

    kinds = (T.TQ1_0, T.TQ2_0, T.Q1_0, I2S_TYPE)
    return tensor.tensor_type in kinds and len(tensor.shape) == 2


def low_bit_weight(tensor: Any, where: str) -> QuantizedWeight:
    """TQ1_0 / TQ2_0 as ternary (:func:`ternary_weight`), I2_S as ternary
    (:func:`i2s_weight`), Q1_0 as binary."""
    if is_ternary(tensor):
        return ternary_weight(tensor, where)
    if tensor.tensor_type == I2S_TYPE:
        return i2s_weight(tensor, where)
    return binary_weight(tensor)


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
    if kind == I2S_TYPE:
        raise ValueError(
            f"{where}: tensor {tensor.name!r} has GGUF type I2_S and shape {shape}; I2_S is "
            "read only as a matrix."
        )
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


def i2s_weight(tensor: Any, where: str) -> QuantizedWeight:
    """An I2_S tensor (bitnet.cpp; layout at :data:`I2S_TYPE`) as our
    ternary format with one scale per row (group_size = K), each the
    tensor's float32 scale: float16 where float16 holds it exactly, else
    float32, so the weights are the file's values bit for bit.

    Raises:
        ValueError: naming the tensor: fewer than n / 4 + 32 bytes (a
          truncated file or a wrong-size tensor), a weight count that is not
          a multiple of 128 or a K our format cannot hold, the unused code 3,
          or a scale that is not finite or above 2**100.
    """
    n, k = numpy_shape(tensor)
    size = n * k
    label = f"{where}: tensor {tensor.name!r} (I2_S, shape ({n}, {k}))"
    if size % I2S_BLOCK or k % 32:
        raise ValueError(
            f"{label}: I2_S holds whole blocks of {I2S_BLOCK} weights and the ternary "
            "format needs K to be a multiple of 32."
        )
    data = np.asarray(tensor.data)
    want = size // 4 + I2S_TAIL
    if data.size < want:
        raise ValueError(
            f"{label} has {data.size} bytes where I2_S takes {want} (N * K / 4 bytes of "
            "codes, a float32 scale, 28 bytes of padding): a truncated file or a wrong-size "
            "tensor."
        )
    shifts = np.arange(6, -1, -2, dtype=np.uint8).reshape(1, 4, 1)
    blocks = data[: size // 4].reshape(-1, 1, I2S_BLOCK_BYTES)
    codes = ((blocks >> shifts) & 3).reshape(n, k)
    if np.any(codes == 3):
        raise ValueError(
            f"{label} holds {int((codes == 3).sum())} weights with the unused code 3, which "
            "is not ternary."
        )
    scale = data[size // 4 : size // 4 + 4].copy().view("<f4")[0]
    if not abs(scale) <= MAX_SCALE:  # False for NaN too
        raise ValueError(
            f"{label} has the scale {scale}; a scale must be finite and at most "
            f"2**{MAX_SCALE_LOG2} in magnitude (docs/FORMATS.md)."
        )
    return per_tensor_ternary(codes.astype(np.int8) - 1, np.float32(scale))
