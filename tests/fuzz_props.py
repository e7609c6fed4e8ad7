# Copyright © 2026 mlx-lowbit contributors.
"""Hypothesis properties of the public API under hostile input, run by
tests/test_fuzz.py in a subprocess each, so that a crash (SIGFPE, SIGSEGV,
an abort) or a hang is a test failure rather than the end of the run.

Every property has the same contract: the call either raises ValueError (or
OSError for the file system) with a message, or returns a result that
agrees with the independent reference (tests/reference.py) wherever that
reference is finite. Anything else (another exception type, a wrong
number, a crash) fails. Each example prints one line first, so that the
subprocess's output names the case a crash happened in.
"""

import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlx_lowbit as lb

# Deterministic and bounded: CI runs the same examples every time, and the
# whole suite stays within its time budget on 2 cores (docs/BAD_INPUT.md).
FUZZ = settings(
    max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

FORMAT_OPTIONS = [
    ("ternary", {}),
    ("binary", {}),
    ("binary", {"biases": True}),
    ("codebook", {"vector_size": 8, "index_bits": 4}),
    ("codebook", {"vector_size": 16, "index_bits": 6}),
]
DTYPES = [mx.float16, mx.bfloat16, mx.float32]
# Values that break naive code: signed zeros, subnormals, huge but finite
# values (within float16's range for float16 scales), NaN and Inf.
SPECIAL = [
    0.0,
    -0.0,
    1e-45,
    1e-40,
    6e-8,
    1.0,
    -1.0,
    3e4,
    -6.5e4,
    1e30,
    3e38,
    np.nan,
    np.inf,
    -np.inf,
]
# Integers the bindings cannot take, or that are out of every range.
BAD_INTS = [-1, 0, 7, 31, 33, 48, 2**31 - 1, 2**31, 2**40, 2**64, 2**70, -(2**63)]


def log(*parts) -> None:
    print(*parts, flush=True)


def agrees(out: mx.array, ref: np.ndarray, dtype: mx.Dtype, what: str) -> None:
    """out equals ref within the output dtype's rounding, where ref is finite
    and of moderate size (beyond that the reference's float64 and the
    kernels' float32 legitimately part), and is NaN where ref is NaN."""
    o = np.asarray(out.astype(mx.float32), dtype=np.float64)
    assert o.shape == ref.shape, (what, o.shape, ref.shape)
    ok = np.isfinite(ref) & (np.abs(ref) < 1e37)
    scale = np.abs(ref[ok]).max() if ok.any() else 1.0
    # Relative to the largest output, plus the dtype's subnormal range:
    # float16 outputs round to multiples of 6e-8 there, and float32
    # accumulators may flush subnormals to zero.
    rel = {mx.float16: 2e-2, mx.bfloat16: 8e-2, mx.float32: 1e-4}[dtype]
    tol = rel * scale + {mx.float16: 1e-7, mx.bfloat16: 2e-38, mx.float32: 2e-38}[dtype]
    bad = ok & ~(np.abs(o - ref) <= tol)
    assert not bad.any(), f"{what}: {o[bad][:4]} vs {ref[bad][:4]} (tol {tol})"
    assert np.isnan(o[np.isnan(ref)]).all(), f"{what}: a NaN of the reference came back finite"


WORDS_PER_ROW = {"ternary": 16, "binary": 32}  # weights per uint32 word
MUTATIONS = [
    None, None, None, "packed dtype", "packed shape", "scales shape", "scales dtype",
    "group_size", "fmt", "index_bits", "drop biases", "drop codebook", "codebook size",
]  # fmt: skip


@st.composite
def hand_built(draw):
    """Arrays and metadata for QuantizedWeight(...): a consistent weight
    with random codes and hostile scales, then (mostly) one field broken."""
    fmt, opts = draw(st.sampled_from(FORMAT_OPTIONS))
    gs = draw(st.sampled_from([32, 64]))
    n, groups = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    k = gs * groups
    v, c = opts.get("vector_size", 0), opts.get("index_bits", 0)
    words = -(-(k // v) * c // 32) if fmt == "codebook" else k // WORDS_PER_ROW[fmt]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    packed = rng.integers(0, 2**32, size=(n, words), dtype=np.uint64).astype(np.uint32)
    if fmt == "ternary" and draw(st.booleans()):
        packed &= np.uint32(0x55555555)  # no code 3: codes 0 and 1 only
    scale_dtype = draw(st.sampled_from([np.float16, np.float32]))
    pool = st.sampled_from(SPECIAL) if draw(st.booleans()) else st.floats(-2, 2, width=16)
    values = draw(st.lists(pool, min_size=2 * n * groups, max_size=2 * n * groups))
    values = np.array(values, np.float64).astype(scale_dtype).reshape(2, n, groups)
    fields = dict(
        fmt=fmt,
        group_size=gs,
        packed=packed,
        scales=values[0],
        biases=values[1] if opts.get("biases") else None,
        codebook=rng.permutation(2**c).astype(np.uint8 if v == 8 else np.uint16) if c else None,
        vector_size=v,
        index_bits=c,
    )
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation == "packed dtype":
        fields["packed"] = packed.astype(np.int32)
    elif mutation == "packed shape":
        fields["packed"] = packed[:, : draw(st.integers(0, max(words - 1, 0)))]
    elif mutation == "scales shape":
        fields["scales"] = values[0][:, :0] if draw(st.booleans()) else values[0][:0]
    elif mutation == "scales dtype":
        fields["scales"] = np.ones(values[0].shape, np.int32)
    elif mutation == "group_size":
        fields["group_size"] = draw(st.sampled_from(BAD_INTS))
    elif mutation == "fmt":
        fields["fmt"] = draw(st.sampled_from(["quaternary", 3, None, "Ternary"]))
    elif mutation == "index_bits":
        fields["index_bits"] = draw(st.sampled_from(BAD_INTS))
    elif mutation == "drop biases":
        fields["biases"] = None if fields["biases"] is not None else values[1]
    elif mutation == "drop codebook":
        fields["codebook"] = None
    elif mutation == "codebook size" and c:
        fields["codebook"] = fields["codebook"][:-1]
    log("hand_built", mutation, fmt, opts, gs, n, k, scale_dtype.__name__)
    return {
        name: mx.array(a) if isinstance(a, np.ndarray) else a for name, a in fields.items()
    }, mutation


@FUZZ
@given(hand_built(), st.sampled_from(DTYPES), st.booleans())
def prop_hand_built(built, dtype, transpose):
    """A hand-built weight is refused at construction (always when a field
    was broken, or it holds code 3 or a NaN/Inf scale), or every op on it
    agrees with the reference decoder (so also with dequantize)."""
    fields, mutation = built
    try:
        qw = lb.QuantizedWeight(**fields)
    except ValueError as e:
        log("  refused:", e)
        return
    fmt = fields["fmt"]
    broken = mutation in ("packed dtype", "packed shape", "scales shape", "scales dtype", "fmt")
    broken |= mutation == "drop biases" and fmt != "binary"
    broken |= mutation in ("drop codebook", "codebook size") and fmt == "codebook"
    assert not broken, f"accepted with {mutation}"
    n, k = qw.shape
    w = reference.dequantize(qw)
    for a in (qw.scales, qw.biases):
        assert a is None or np.isfinite(np.asarray(a.astype(mx.float32))).all(), "non-finite"
    log("  accepted")
    agrees(lb.dequantize(qw, mx.float32), w, mx.float32, "dequantize")
    x = mx.array(np.random.default_rng(0).normal(size=(3, k if transpose else n))).astype(dtype)
    xs = np.asarray(x.astype(mx.float32), np.float64)
    ref = xs @ w.T if transpose else xs @ w
    agrees(lb.matmul(x, qw, transpose=transpose, stream=mx.cpu), ref, dtype, "matmul")


@FUZZ
@given(
    st.sampled_from(FORMAT_OPTIONS),
    st.sampled_from([32, 64, 96, 128] + BAD_INTS),
    st.tuples(st.integers(1, 4), st.sampled_from([32, 64, 96, 128, 40])),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=3),
    st.sampled_from([mx.float16, mx.float32]),
    st.sampled_from([{}, {"seed": -1}, {"seed": 2**70}, {"max_iters": -1}, {"index_bits": 2**40}]),
    st.booleans(),
)
def prop_quantize(f, gs, shape, specials, scale_dtype, extra, lazy):
    """quantize refuses bad options and non-finite or unrepresentable
    weights with ValueError (RuntimeError when lazy, at evaluation), and
    otherwise returns a weight whose values are finite and whose product
    matches its dequantized form."""
    fmt, opts = f
    opts = {**opts, **{k: v for k, v in extra.items() if fmt == "codebook" or k == "seed"}}
    if "seed" in opts and fmt != "codebook":
        opts = {}
    rng = np.random.default_rng(len(specials))
    w = rng.normal(size=shape).astype(np.float32)
    w.flat[rng.integers(0, w.size, len(specials))] = specials
    log("quantize", fmt, opts, gs, shape, specials, scale_dtype, lazy)
    try:
        qw = lb.quantize(mx.array(w), fmt, gs, scale_dtype=scale_dtype, lazy=lazy, **opts)
        mx.eval(*qw.arrays().values())
    except ValueError:
        return
    except RuntimeError:
        assert lazy, "an eager quantize raised RuntimeError"
        # The arrays of a failed lazy quantize stay unusable.
        for a in qw.arrays().values():
            try:
                mx.eval(a)
            except RuntimeError:
                continue
            raise AssertionError("a failed lazy quantize's array evaluated")
        return
    qw.check_values()
    x = mx.array(rng.normal(size=(2, shape[1])).astype(np.float32))
    agrees(
        lb.matmul(x, qw), np.asarray(x, np.float64) @ reference.dequantize(qw).T, mx.float32, fmt
    )


@FUZZ
@given(
    st.sampled_from(FORMAT_OPTIONS),
    st.sampled_from(DTYPES + [mx.float64, mx.int32]),
    st.sampled_from([(1, 64), (5, 64), (2, 3, 64), (64,), (3, 63), (2, 64, 1), ()]),
    st.sampled_from(["auto", "gemv", "dataparallel", "splitk", "streamk", "hybrid", "x", ""]),
    st.sampled_from(["deterministic", "atomic", "none"]),
    st.sampled_from([0, 1, 2, 2**31, -1]),
    st.sampled_from([None, (32, 32, 32), (0, 0, 0), (7, 32, 32), (2**31, 1, 1), (1, 2)]),
    st.sampled_from([0, 8, 4, 2**40]),
    st.booleans(),
    st.booleans(),
)
def prop_matmul(f, dtype, shape, schedule, fixup, split_k, tile, bits, transpose, strided):
    """Every matmul option: ValueError for a bad one, else the product of
    the reference (x rounded to int8 per row for activation_bits=8)."""
    fmt, opts = f
    qw = lb.quantize(mx.random.normal((64, 64), key=mx.random.key(0)), fmt, 32, **opts)
    x = mx.random.normal(shape + (2,) if strided else shape, key=mx.random.key(1))
    x = (x[..., 0] if strided else x).astype(dtype)  # strided: a non-contiguous view
    log("matmul", fmt, dtype, x.shape, schedule, fixup, split_k, tile, bits, transpose)
    try:
        out = lb.matmul(
            x,
            qw,
            schedule=schedule,
            streamk_fixup=fixup,
            split_k=split_k,
            tile=tile,
            activation_bits=bits,
            transpose=transpose,
            stream=mx.cpu,
        )
    except ValueError:
        return
    xs = np.asarray(x.astype(mx.float32), np.float64)
    if bits == 8:
        xs = np.asarray(lb._ext.round_to_int8_grid(x.astype(mx.float32)), np.float64)
    w = reference.dequantize(qw)
    agrees(out, xs @ w.T if transpose else xs @ w, dtype, "matmul")


@FUZZ
@given(
    st.sampled_from(FORMAT_OPTIONS),
    st.lists(
        st.tuples(st.sampled_from(["flip", "truncate", "zero", "length"]), st.floats(0, 1)),
        min_size=1,
        max_size=3,
    ),
)
def prop_file_damage(f, damage):
    """A damaged weight file is refused with ValueError naming it, or (when
    the damage changed nothing that matters) loads as the original."""
    fmt, opts = f
    qw = lb.quantize(mx.random.normal((8, 64), key=mx.random.key(2)), fmt, 32, **opts)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "w.safetensors"
        qw.save(path)
        data = bytearray(path.read_bytes())
        for kind, where in damage:
            i = min(int(where * len(data)), max(len(data) - 1, 0))
            if kind == "flip" and data:
                data[i] ^= 1 << (i % 8)
            elif kind == "truncate":
                data = data[:i]
            elif kind == "zero" and data:
                data[i : i + 8] = bytes(len(data[i : i + 8]))
            elif kind == "length" and len(data) >= 8:
                data[:8] = int(where * 2**63).to_bytes(8, "little")
        path.write_bytes(bytes(data))
        log("file", fmt, opts, damage)
        try:
            loaded = lb.QuantizedWeight.load(path)
        except ValueError as e:
            assert str(path) in str(e), f"the message does not name the file: {e}"
            return
        for name, a in qw.arrays().items():
            np.testing.assert_array_equal(np.asarray(getattr(loaded, name)), np.asarray(a))


PROPERTIES = {
    "hand_built": prop_hand_built,
    "quantize": prop_quantize,
    "matmul": prop_matmul,
    "file_damage": prop_file_damage,
}

if __name__ == "__main__":
    PROPERTIES[sys.argv[1]]()
    log("ok")
