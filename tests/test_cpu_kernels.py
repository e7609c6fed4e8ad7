# Copyright © 2026 mlx-lowbit contributors.
"""Every CPU kernel path this machine can run (portable, avx2, avx512 or neon),
forced one at a time, against the spec decoder in reference.py and against
each other. The shapes are chosen to hit each blocking edge of the SIMD
kernels (simd_kernels.h, simd/): GEMV for M <= 4 (int8 GEMV only when
group_size % 64 == 0), GEMM micro-tiles of MR rows (12 on AVX-512 and NEON,
6 on AVX2) and NR = 2 * lanes columns (32, 16, 8), reduction blocks of 256
(float) and 1024 (int8) steps, and work items of 512 rows of x."""

import functools

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import make_x

import mlx_lowbit as lb
from mlx_lowbit import _ext

ISAS = lb.cpu_isas()
SIMD_ISAS = [i for i in ISAS if i != "portable"]

# M: GEMV sizes 1-4, then every remainder of the AVX2 (6) and AVX-512 (12)
# micro-tiles, and one past a 512-row work item.
M_EDGES = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 17, 25, 64, 65]


@pytest.fixture
def isa():
    """Restores automatic path choice after a test that forces one."""
    yield
    lb.set_cpu_isa("auto")


@functools.lru_cache(maxsize=None)
def weight(f_index: int, n: int, k: int, gs: int, seed: int = 0):
    fmt, opts = FORMATS[f_index]
    w = mx.random.normal((n, k), key=mx.random.key(seed))
    return lb.quantize(w, fmt, gs, **opts)


def as64(a: mx.array) -> np.ndarray:
    return np.asarray(a.astype(mx.float32), dtype=np.float64)


# activation_quant.h quantizes a row only if its max|x| is finite and at
# least this (kernel_abi.h's kInt8MinAbsmax); other rows keep their values.
INT8_MIN_ABSMAX = np.float32(2.0**-118)


def int8_rows(x: mx.array) -> np.ndarray:
    """activation_quant.h's rounding, in the same float32 arithmetic."""
    xs = np.asarray(x.astype(mx.float32)).reshape(-1, x.shape[-1])
    with np.errstate(invalid="ignore", over="ignore"):
        amax = np.abs(xs).max(-1, keepdims=True)  # NaN if the row has one
        quantized = (amax >= INT8_MIN_ABSMAX) & np.isfinite(amax)
        inv = np.float32(127.0) / np.where(quantized, amax, np.float32(1))
        q = np.clip(np.rint(xs * inv), -127, 127)
        rounded = q.astype(np.float64) * (amax.astype(np.float64) / 127.0)
    return np.where(quantized, rounded, xs.astype(np.float64)).reshape(x.shape)


def expected(x: mx.array, qw, activation_bits=0, transpose=True) -> np.ndarray:
    xs = int8_rows(x) if activation_bits == 8 else as64(x)
    w = reference.dequantize(qw)
    return xs @ (w.T if transpose else w)


F_IDS = [format_id(f) for f in FORMATS]


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", range(len(FORMATS)), ids=F_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_m_edge_matches_reference(isa, path, fi, dtype):
    """x @ W.T over the M edges, float and int8 activations, N off the
    register block (33), group 32 (int8 GEMM even at M = 1), 64 and K."""
    lb.set_cpu_isa(path)
    assert lb.cpu_isa() == path
    k = 192
    for gs, n in [(32, 33), (64, 7), (k, 40)]:
        qw = weight(fi, n, k, gs)
        for m in M_EDGES:
            x = make_x((m, k), dtype, seed=m)
            for bits in (0, 8):
                out = lb.matmul(x, qw, activation_bits=bits)
                assert out.dtype == dtype and out.shape == (m, n)
                what = f"{path} g{gs} N{n} M{m} a{bits}"
                assert_close(out, expected(x, qw, bits), dtype, what)


# K blocking: 1152 = 4.5 float blocks of 256 and 1.125 int8 blocks of 1024;
# group 384 is larger than a float block and not a multiple of it, so a
# block straddles a group boundary; group 128 packs two per block.
BLOCK_CASES = product(range(len(FORMATS)), [128, 384, 1152], [1, 6, 30])


@pytest.mark.parametrize("path", SIMD_ISAS or ["portable"])
@pytest.mark.parametrize(
    "fi,gs,m", BLOCK_CASES, ids=[f"{F_IDS[c[0]]}-g{c[1]}-M{c[2]}" for c in BLOCK_CASES]
)
def test_reduction_blocks_and_groups(isa, path, fi, gs, m):
    lb.set_cpu_isa(path)
    k = 1152
    qw = weight(fi, 35, k, gs)
    x = make_x((m, k), mx.float32)
    for bits in (0, 8):
        assert_close(
            lb.matmul(x, qw, activation_bits=bits), expected(x, qw, bits), mx.float32, f"a{bits}"
        )


# Codebook field widths (c for v = 16, 2c for v = 8): whole-byte pairs (8,
# 12, 16 bits) run kernels with constant offsets, the others the general
# one; c = 4 and 8 divide 32, the others make indices straddle words.
CODEBOOK_VC = [(16, c) for c in (4, 5, 7, 8, 11, 12, 13, 16)] + [(8, c) for c in range(4, 9)]


def random_codebook_weight(n: int, k: int, gs: int, v: int, c: int, seed: int = 0):
    """Uniformly random indices and codebook (every field value occurs), so
    each window and table entry of the kernels gets used."""
    rng = np.random.default_rng(seed)
    _, scales, _, codebook, indices = reference.random_exact_weight(
        rng, "codebook", n, k, gs, vector_size=v, index_bits=c
    )
    return lb.QuantizedWeight(
        fmt="codebook",
        group_size=gs,
        packed=_ext.pack_codebook(mx.array(indices), v, c),
        scales=mx.array(scales),
        codebook=mx.array(codebook),
        vector_size=v,
        index_bits=c,
    )


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("v,c", CODEBOOK_VC, ids=[f"v{v}c{c}" for v, c in CODEBOOK_VC])
def test_codebook_field_widths(isa, path, v, c):
    """Every M of the GEMV (1-4) and a few of the GEMM, float and int8 x, on
    shapes that end a row's stream mid-word, end the matrix one row after a
    block of 8 or 4 rows (the last row's windows read a padded copy), have
    one group per row, or one word per row."""
    lb.set_cpu_isa(path)
    for n, k, gs in [(13, 256, 256), (9, 192, 64), (3, 32, 32)]:
        qw = random_codebook_weight(n, k, gs, v, c)
        for m in range(1, 10):
            x = make_x((m, k), mx.float32, seed=m)
            for bits in (0, 8):
                what = f"{path} v{v} c{c} N{n} K{k} g{gs} M{m} a{bits}"
                assert_close(
                    lb.matmul(x, qw, activation_bits=bits), expected(x, qw, bits), mx.float32, what
                )


@pytest.mark.parametrize("path", ISAS)
def test_more_rows_than_one_work_item(isa, path):
    """M = 513: the GEMM splits x into work items of 512 rows."""
    lb.set_cpu_isa(path)
    qw = weight(0, 20, 64, 32)
    x = make_x((513, 64), mx.float32)
    for bits in (0, 8):
        assert_close(lb.matmul(x, qw, activation_bits=bits), expected(x, qw, bits), mx.float32)


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", range(len(FORMATS)), ids=F_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_transposed_product(isa, path, fi, dtype):
    """x @ W (the gradient's product): the reduction runs over N, in blocks
    of 256 (N = 300 crosses one); K gives whole column blocks."""
    lb.set_cpu_isa(path)
    for n, gs in [(7, 32), (300, 64)]:
        qw = weight(fi, n, 128, gs)
        for m in (1, 5, 13):
            x = make_x((m, n), dtype, seed=m)
            out = lb.matmul(x, qw, transpose=False)
            assert out.shape == (m, 128)
            assert_close(out, expected(x, qw, transpose=False), dtype, f"N{n} M{m}")
            # int8 rounding of x applies to this product too (same on every path).
            out8 = lb.matmul(x, qw, transpose=False, activation_bits=8)
            assert_close(out8, expected(x, qw, 8, transpose=False), dtype, f"N{n} M{m} a8")


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", range(len(FORMATS)), ids=F_IDS)
def test_batch_dims_and_strides(isa, path, fi):
    lb.set_cpu_isa(path)
    qw = weight(fi, 19, 128, 64)
    cases = (
        make_x((2, 3, 128), mx.bfloat16),  # batch dimensions, GEMM
        make_x((2, 1, 128), mx.float16),  # batch dimensions, GEMV
        make_x((128, 10), mx.float16).T,  # a transpose
        make_x((6, 256), mx.float32)[:, ::2],  # a strided slice
        mx.broadcast_to(make_x((1, 128), mx.float16), (7, 128)),  # stride 0
    )
    for x in cases:
        for bits in (0, 8):
            out = lb.matmul(x, qw, activation_bits=bits)
            assert out.shape == x.shape[:-1] + (19,)
            assert_close(out, expected(x, qw, bits), x.dtype, f"{x.shape} a{bits}")


# The table-lookup GEMV (kernels_avx512_lut.cpp): ternary and binary (with and
# without biases), int8 x with M <= 4, groups of at most 256, on AVX-512 CPUs
# with VBMI.
# Rows of W off its 64-row block (65, 130), groups of 32 to 256 (512 falls
# back to the vpdpbusd kernel), with it on and off (MLX_LOWBIT_CPU_LUT=0).
@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", [0, 1, 2], ids=F_IDS[:3])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_table_lookup_gemv(isa, path, fi, dtype, monkeypatch):
    lb.set_cpu_isa(path)
    k = 512
    xs = (
        make_x((1, k), dtype, seed=3),
        make_x((1, 1, k), dtype, seed=4),  # batch dimensions
        make_x((k, 2), dtype, seed=5).T[:1],  # a transposed row: strided
        make_x((2, 2, k), dtype, seed=6),  # M = 4, one row at a time
        make_x((5, k), dtype, seed=7),  # M = 5: the vpdpbusd GEMM
    )
    for gs, n in [(32, 65), (128, 130), (256, 64), (512, 3)]:
        qw = weight(fi, n, k, gs, seed=gs)
        for lut in ("1", "0"):
            monkeypatch.setenv("MLX_LOWBIT_CPU_LUT", lut)
            for x in xs:
                out = lb.matmul(x, qw, activation_bits=8)
                assert out.shape == x.shape[:-1] + (n,)
                what = f"{path} g{gs} N{n} lut={lut} {x.shape}"
                assert_close(out, expected(x, qw, 8), dtype, what)


def _has_vbmi() -> bool:
    """Whether this CPU has AVX-512 VBMI (the table-lookup kernels' ISA)."""
    try:
        return " avx512vbmi " in open("/proc/cpuinfo").read().replace("\n", " ")
    except OSError:
        return False


# The float-x GEMV by nibble lookup (kernels_avx512_lut.cpp): ternary and
# binary (with and without biases), x @ W.T: binary at M <= 16, ternary at
# M = 1 and, on one thread, M <= 16. Rows of W off its 16-row block, groups of 32 to 512, M past each
# bound (the FMA kernels), with it on and off (MLX_LOWBIT_CPU_LUT=0), on 1
# and 2 threads.
@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", [0, 1, 2], ids=F_IDS[:3])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nibble_lookup_gemv(isa, path, fi, dtype, monkeypatch):
    lb.set_cpu_isa(path)
    k = 512
    xs = (
        make_x((1, k), dtype, seed=3),
        make_x((1, 1, k), dtype, seed=4),  # batch dimensions
        make_x((k, 2), dtype, seed=5).T[:1],  # a transposed row: strided
        make_x((2, 3, k), dtype, seed=6),  # M = 6: ternary on one thread only
        make_x((16, k), dtype, seed=7),  # the one-thread bound
        make_x((17, k), dtype, seed=8),  # past it: the float GEMM
    )
    threads = lb.num_threads()
    try:
        for n_threads in (1, 2):
            lb.set_num_threads(n_threads)
            for gs, n in [(32, 17), (128, 130), (512, 65)]:
                qw = weight(fi, n, k, gs, seed=gs)
                for lut in ("1", "0"):
                    monkeypatch.setenv("MLX_LOWBIT_CPU_LUT", lut)
                    for x in xs:
                        out = lb.matmul(x, qw)
                        assert out.shape == x.shape[:-1] + (n,) and out.dtype == dtype
                        what = f"{path} t{n_threads} g{gs} N{n} lut={lut} {x.shape}"
                        assert_close(out, expected(x, qw), dtype, what)
            if path == "avx512" and _has_vbmi():
                # The lookup ran: its fp32 sums come in another order than the
                # FMA kernel's, so some outputs differ in their last bits.
                x = make_x((1, k), mx.float32, seed=9)
                monkeypatch.setenv("MLX_LOWBIT_CPU_LUT", "1")
                on = np.asarray(lb.matmul(x, qw))
                monkeypatch.setenv("MLX_LOWBIT_CPU_LUT", "0")
                assert (on != np.asarray(lb.matmul(x, qw))).any()
    finally:
        lb.set_num_threads(threads)


@pytest.mark.parametrize("fi", [0, 2], ids=[F_IDS[0], F_IDS[2]])
def test_nibble_lookup_keeps_nan_and_inf(isa, fi):
    """As every path (test_int8_rows_with_nan_inf_or_tiny_absmax): a NaN in x
    makes its row all NaN, an Inf its row all non-finite (the dense product
    has 0 x Inf = NaN; with biases the scale and bias terms may meet as
    Inf - Inf), and other rows stay exact."""
    k = 256
    qw = weight(fi, 40, k, 64)
    x = np.asarray(make_x((3, k), mx.float32))
    x[0, 5] = np.nan
    x[1, 9] = np.inf
    threads = lb.num_threads()
    try:
        lb.set_num_threads(1)
        for rows, nan, inf in ((x, [0], [1]), (x[:1], [0], []), (x[1:2], [], [0])):
            out = np.asarray(lb.matmul(mx.array(rows), qw))
            for r in nan:
                assert np.isnan(out[r]).all(), out[r]
            for r in inf:
                assert not np.isfinite(out[r]).any(), out[r]
        assert_close(lb.matmul(mx.array(x[2:]), qw), expected(mx.array(x[2:]), qw), mx.float32)
    finally:
        lb.set_num_threads(threads)


def test_table_lookup_copy_follows_the_weight(isa):
    """The repacked copy is cached per weight: a new weight of the same shape
    (possibly in the memory of a freed one) must not find the old copy, and
    a NaN row still comes back all NaN."""
    k = 256
    x = make_x((1, k), mx.float32)
    for seed in range(3):
        qw = lb.quantize(mx.random.normal((70, k), key=mx.random.key(seed)), "ternary", 128)
        for _ in range(2):  # the first call repacks, the second reads the copy
            assert_close(lb.matmul(x, qw, activation_bits=8), expected(x, qw, 8), mx.float32)
        del qw
    qw = weight(0, 70, k, 128)
    nan_row = mx.concatenate([mx.array([float("nan")]), x[0, 1:]])[None]
    assert np.isnan(np.asarray(lb.matmul(nan_row, qw, activation_bits=8))).all()


def hostile_rows(k: int, dtype) -> tuple[mx.array, dict]:
    """Rows of x that int8 rounding must not quantize: NaN, +-Inf, zero,
    subnormal (float32 only: float16 has no such tiny values, and bfloat16's
    would underflow the output), and tiny but normal (127 / max|x| would
    overflow), between ordinary rows."""
    base = np.asarray(make_x((8, k), mx.float32))
    rows = {"normal": [0, 7], "nan": [1], "inf": [2, 3], "zero": [4], "tiny": []}
    base[1, 5] = np.nan
    base[2, 3] = np.inf
    base[3, 0] = -np.inf
    base[4] = 0.0
    if dtype != mx.float16:
        base[5] *= 3e-36  # max|x| ~ 1e-36: normal, but below kInt8MinAbsmax
        rows["tiny"].append(5)
    else:
        rows["normal"].append(5)
    if dtype == mx.float32:
        base[6] *= 1e-39  # subnormal
        rows["tiny"].append(6)
    else:
        rows["normal"].append(6)
    return mx.array(base).astype(dtype), rows


@pytest.mark.parametrize("path", ISAS)
@pytest.mark.parametrize("fi", range(len(FORMATS)), ids=F_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_int8_rows_with_nan_inf_or_tiny_absmax(isa, path, fi, dtype):
    """activation_bits=8 computes rows it cannot quantize with float x: NaN
    makes its row NaN and Inf its row non-finite, as in x @ dequantize(w).T
    and the float path; zero and tiny rows (subnormal, or 127 / max|x| out of
    range) come out right, to the precision of the row itself. Both
    transpose flags; the whole batch (int8 GEMM) and one row at a time
    (int8 GEMV at group 64, int8 GEMM at group 32)."""
    lb.set_cpu_isa(path)
    k = 128
    for gs in (64, 32):
        qw = weight(fi, 20, k, gs)
        w = reference.dequantize(qw)
        for transpose in (True, False):
            x, rows = hostile_rows(k if transpose else 20, dtype)
            x64 = as64(x)
            with np.errstate(invalid="ignore", over="ignore"):
                dense = x64 @ (w.T if transpose else w)
            batches = [(x, slice(None))] + [(x[i : i + 1], i) for i in range(x.shape[0])]
            for xb, where in batches:
                out = as64(lb.matmul(xb, qw, transpose=transpose, activation_bits=8))
                full = np.full((x.shape[0], out.shape[-1]), np.nan)
                full[where] = out
                what = f"{path} g{gs} transpose={transpose} rows {where}"
                for r in rows["nan"] + rows["inf"]:
                    if isinstance(where, int) and where != r:
                        continue
                    assert not np.isfinite(dense[r]).any()
                    assert not np.isfinite(full[r]).any(), f"{what}: row {r} finite {full[r]}"
                for r in rows["nan"]:
                    if not isinstance(where, int) or where == r:
                        assert np.isnan(full[r]).all(), f"{what}: NaN row {r}: {full[r]}"
                ok = rows["normal"] + rows["zero"] + rows["tiny"]
                with np.errstate(invalid="ignore", over="ignore"):
                    ref = expected(x, qw, 8, transpose)
                for r in ok:
                    if isinstance(where, int) and where != r:
                        continue
                    if r in rows["zero"]:
                        assert (full[r] == 0).all(), f"{what}: zero row {r}: {full[r]}"
                        continue
                    assert_close(mx.array(full[r]), ref[r], dtype, f"{what}: row {r}")


@pytest.mark.parametrize("path", SIMD_ISAS or ["portable"])
@pytest.mark.parametrize("fi", range(len(FORMATS)), ids=F_IDS)
def test_simd_paths_agree_with_portable(isa, path, fi):
    """The paths against each other, by normalised error (as ggml's
    test-backend-ops compares backends), on one larger shape."""
    qw = weight(fi, 70, 512, 128)
    x = make_x((9, 512), mx.float32)
    results = {}
    for p in ("portable", path):
        lb.set_cpu_isa(p)
        for bits in (0, 8):
            for m in (1, 9):
                results[p, bits, m] = as64(lb.matmul(x[:m], qw, activation_bits=bits))
    for key, ref in results.items():
        if key[0] == "portable":
            out = results[(path,) + key[1:]]
            nmse = np.sum((out - ref) ** 2) / np.sum(ref**2)
            assert nmse < 1e-12, f"{path} vs portable {key}: NMSE {nmse:.3g}"


@pytest.mark.parametrize("path", ISAS)
def test_thread_count_does_not_change_results(isa, path):
    lb.set_cpu_isa(path)
    qw = weight(3, 50, 256, 64)
    before = lb.num_threads()
    try:
        for m in (1, 20):
            x = make_x((m, 256), mx.float32)
            lb.set_num_threads(1)
            one = np.asarray(lb.matmul(x, qw))
            lb.set_num_threads(3)
            three = np.asarray(lb.matmul(x, qw))
            np.testing.assert_array_equal(one, three)
    finally:
        lb.set_num_threads(before)


def test_auto_picks_the_fastest_path(isa):
    lb.set_cpu_isa("auto")
    assert lb.cpu_isa() == ISAS[-1]
    assert ISAS[0] == "portable"


def test_unknown_or_unavailable_path_is_a_value_error(isa):
    with pytest.raises(ValueError, match="available: portable"):
        lb.set_cpu_isa("avx9000")
    missing = [p for p in ("avx2", "avx512", "neon") if p not in ISAS]
    for p in missing:
        with pytest.raises(ValueError, match="not a CPU kernel path"):
            lb.set_cpu_isa(p)


def test_environment_variable_forces_a_path(isa, monkeypatch):
    qw = weight(0, 8, 64, 32)
    x = make_x((2, 64), mx.float32)
    monkeypatch.setenv("MLX_LOWBIT_CPU_ISA", "portable")
    assert lb.cpu_isa() == "portable"
    assert_close(lb.matmul(x, qw), expected(x, qw), mx.float32)
    monkeypatch.setenv("MLX_LOWBIT_CPU_ISA", "avx9000")
    with pytest.raises(ValueError, match="MLX_LOWBIT_CPU_ISA"):
        lb.cpu_isa()
    with pytest.raises((ValueError, RuntimeError), match="MLX_LOWBIT_CPU_ISA"):
        mx.eval(lb.matmul(x, qw))
    # set_cpu_isa wins over the environment.
    lb.set_cpu_isa(ISAS[-1])
    assert lb.cpu_isa() == ISAS[-1]


# ---------------------------------------------------------------- C++ harness
# tests/cpu_harness/harness.cpp checks one kernel table without Python or MLX
# against weights decoded with the format headers. Natively it runs the x86
# tables; with an aarch64 cross compiler and qemu-user (Debian:
# g++-aarch64-linux-gnu qemu-user) it runs the NEON kernels here too. On an
# arm64 machine the tests above already run the NEON path natively.

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
HARNESS = [ROOT / "tests/cpu_harness/harness.cpp"]


def _build_and_run(compiler, flags, sources, runner, isa_name, tmp_path):
    import subprocess

    exe = tmp_path / f"harness_{isa_name}"
    cmd = [compiler, "-std=c++20", "-O2", f"-I{ROOT}", *flags, *map(str, sources), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = subprocess.run([*runner, str(exe), isa_name], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " 0 failed" in run.stdout and " passed" in run.stdout, run.stdout[-500:]


@pytest.mark.skipif(not SIMD_ISAS or "neon" in ISAS, reason="no x86 SIMD path on this machine")
def test_x86_kernels_in_the_cpp_harness(tmp_path):
    import shutil

    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    # Each file gets the flags CMakeLists.txt gives it, so that no code the
    # harness runs on a CPU without AVX-512 (or without VBMI) was compiled for it.
    import subprocess

    avx2 = "-mavx2 -mfma -mf16c -mbmi2".split()
    avx512 = avx2 + "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni".split()
    cpu = ROOT / "mlx_lowbit/backend/cpu"
    files = {
        HARNESS[0]: [],
        cpu / "kernels_avx2.cpp": avx2,
        cpu / "kernels_avx512.cpp": avx512,
        cpu / "kernels_avx512_lut.cpp": avx512 + ["-mavx512vbmi"],
    }
    objects = []
    for i, (src, flags) in enumerate(files.items()):
        obj = tmp_path / f"part{i}.o"
        cmd = [compiler, "-std=c++20", "-O2", f"-I{ROOT}", *flags, "-c", str(src)]
        subprocess.run([*cmd, "-o", str(obj)], check=True, capture_output=True, text=True)
        objects.append(obj)
    for name in SIMD_ISAS:
        _build_and_run(compiler, [], objects, [], name, tmp_path)


def test_thread_pool_in_the_cpp_harness(tmp_path):
    """Regions run every index once, errors propagate, nested regions run
    inline (a nested one inside a single-chunk region used to deadlock)."""
    import shutil
    import subprocess

    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "pool_stress"
    sources = [
        ROOT / "tests/cpu_harness/pool_stress.cpp",
        ROOT / "mlx_lowbit/backend/cpu/thread_pool.cpp",
    ]
    cmd = [compiler, "-std=c++20", "-O2", f"-I{ROOT}", *map(str, sources), "-o", str(exe)]
    subprocess.run([*cmd, "-pthread"], check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert " 0 failed" in run.stdout and " passed" in run.stdout, run.stdout[-500:]


def test_neon_kernels_under_qemu(tmp_path):
    import shutil

    compiler, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if compiler is None or qemu is None:
        pytest.skip(
            "NEON under emulation needs aarch64-linux-gnu-g++ and qemu-aarch64 "
            "(apt-get install g++-aarch64-linux-gnu qemu-user); arm64 CI runs NEON natively"
        )
    sources = HARNESS + [ROOT / "mlx_lowbit/backend/cpu/kernels_neon.cpp"]
    _build_and_run(
        compiler,
        ["-static", "-march=armv8.2-a+dotprod"],
        sources,
        [qemu, "-cpu", "max"],
        "neon",
        tmp_path,
    )
