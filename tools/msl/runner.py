"""Type-check and execute Metal (.metal) kernels on Linux, for pytest.

    import runner  # with tools/msl on sys.path
    runner.check("metal/gemv.metal", include_dirs=["metal", "."])
    out = runner.run(source, "add_float", grid=4, threadgroup=64,
                     buffers={0: a, 1: b, 2: np.zeros_like(a), 3: params_bytes})[2]

`check` preprocesses the source, rewrites the MSL-only syntax (msl_rewrite), lints it (msl_lint)
and type-checks it with clang against the shim headers in include/. `run` compiles it into an
executable linked with the CPU runtime in runtime/ (plain, or under ThreadSanitizer or
AddressSanitizer), which runs the launch with one OS thread per GPU thread and threadgroups one
after another. Buffers travel through files; results come back as arrays of the inputs' types.
Failures raise MSLCheckError (compile/lint), MSLRuntimeError (the runtime's checks) or
MSLSanitizerError (a sanitizer report), each carrying the full report. See
docs/METAL_ON_LINUX.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

# The sibling modules, also when this file is loaded by path (mlx_lowbit.testing).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import msl_build  # noqa: E402
import msl_lint  # noqa: E402
import msl_rewrite  # noqa: E402
from msl_build import ToolchainError  # noqa: E402

__all__ = [
    "MSLError",
    "MSLCheckError",
    "MSLRuntimeError",
    "MSLSanitizerError",
    "ToolchainError",
    "Launch",
    "check",
    "run",
    "run_sequence",
    "build",
    "kernel_names",
    "float_to_bfloat16",
    "bfloat16_to_float",
]

Array = Any  # numpy.ndarray or mlx.core.array
BufferValue = Union[bytes, bytearray, memoryview, Array]
Dims = Union[int, Sequence[int]]

_SANITIZERS = (None, "thread", "address", "profile")
_DEFAULT_TIMEOUT = float(os.environ.get("MLX_LOWBIT_MSL_TIMEOUT", "60"))
_NUMPY_DTYPES = {
    np.dtype(t)
    for t in (
        "float16",
        "float32",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "bool",
    )
}


class MSLError(Exception):
    """Base class of the harness's errors."""


class MSLCheckError(MSLError):
    """The source does not type-check, or the lint found problems.

    Attributes:
        diagnostics: clang's output (empty when only the lint complained).
        findings: the lint's findings (msl_lint.Finding).
    """

    def __init__(
        self,
        message: str,
        diagnostics: str = "",
        findings: Sequence[msl_lint.Finding] = (),
    ):
        super().__init__(message)
        self.diagnostics = diagnostics
        self.findings = list(findings)


class MSLRuntimeError(MSLError):
    """A launch failed: a runtime check (deadlock, divergence, ...) or a crash.

    Attributes:
        kernel: the host name that was running.
        report: the runtime's (or sanitizer's) full report.
    """

    def __init__(self, message: str, kernel: str, report: str):
        super().__init__(message)
        self.kernel = kernel
        self.report = report


class MSLSanitizerError(MSLRuntimeError):
    """ThreadSanitizer or AddressSanitizer reported an error; `sanitizer` names which."""

    def __init__(self, message: str, kernel: str, report: str, sanitizer: str):
        super().__init__(message, kernel, report)
        self.sanitizer = sanitizer


@dataclass(frozen=True)
class Launch:
    """One dispatch of `run_sequence`.

    Args:
        kernel: host name of the kernel.
        grid: threadgroups per grid ("threadgroups") or threads per grid ("threads"), 1-3 dims.
        threadgroup: threads per threadgroup, 1-3 dims.
        buffers: [[buffer(slot)]] -> a key of run_sequence's shared `buffers`, or launch-private
            data (bytes such as a `constant Params&` struct, or an array).
        threadgroup_buffers: [[threadgroup(slot)]] -> bytes of threadgroup memory.
        dispatch: "threadgroups" (dispatchThreadgroups) or "threads" (dispatchThreads, whose edge
            threadgroups are partial).
    """

    kernel: str
    grid: Dims
    threadgroup: Dims
    buffers: Mapping[int, Any] = field(default_factory=dict)
    threadgroup_buffers: Mapping[int, int] = field(default_factory=dict)
    dispatch: str = "threadgroups"


# Sources.


@dataclass(frozen=True)
class _Source:
    path: Path
    name: str


def _source(source: str | os.PathLike, name: str | None) -> _Source:
    """A path stays a path; source text is written to the cache so diagnostics can name a file."""
    if isinstance(source, os.PathLike) or (
        "\n" not in source and source.endswith((".metal", ".h"))
    ):
        path = Path(source).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"kernel source {path} does not exist")
        return _Source(path, name or path.name)
    name = name or "inline.metal"
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = msl_build.cache_dir() / "sources" / digest / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    return _Source(path, name)


# Rewrites of this process, valid while none of the files they read has changed.
_prepared: dict[tuple, tuple[msl_rewrite.Rewritten, tuple]] = {}


def _stamps(files: Sequence[str]) -> tuple:
    return tuple(os.stat(f).st_mtime_ns if os.path.exists(f) else None for f in files)


def _prepare(src: _Source, include_dirs: Sequence, defines: Sequence) -> msl_rewrite.Rewritten:
    includes = tuple(str(Path(d).resolve()) for d in include_dirs)
    key = (str(src.path), includes, tuple(defines))
    cached = _prepared.get(key)
    if cached is None or _stamps(cached[0].files) != cached[1]:
        try:
            rw = msl_rewrite.rewrite(msl_build.preprocess(src.path, includes, tuple(defines)))
        except msl_build.CompileError as e:
            raise MSLCheckError(
                f"{src.name} does not preprocess:\n{e.diagnostics}", e.diagnostics
            ) from None
        except msl_rewrite.RewriteError as e:
            raise MSLCheckError(f"{src.name}: {e}", str(e)) from None
        cached = _prepared[key] = (rw, _stamps(rw.files))
    return cached[0]


def _lint_error(src: _Source, findings) -> MSLCheckError:
    text = "\n".join(str(f) for f in findings)
    return MSLCheckError(f"{src.name} fails the MSL lint:\n{text}", findings=findings)


def check(
    source: str | os.PathLike,
    include_dirs: Sequence[str | os.PathLike] = (),
    defines: Sequence[str] = (),
    *,
    name: str | None = None,
) -> None:
    """Type-check and lint a kernel source as Apple's compiler would.

    Args:
        source: a path to a .metal file, or MSL source text.
        include_dirs: directories searched by #include.
        defines: preprocessor definitions, "NAME" or "NAME=VALUE".
        name: file name shown in diagnostics for source text.

    Raises:
        MSLCheckError: with clang's diagnostics and/or the lint's findings.
        ToolchainError: clang++-19 is missing.
    """
    src = _source(source, name)
    rw = _prepare(src, include_dirs, defines)
    findings = msl_lint.lint_source(rw)
    try:
        ir, _ = msl_build.emit_ir(rw.text, src.name)
    except msl_build.CompileError as e:
        message = f"{src.name} does not type-check:\n{e.diagnostics}"
        if findings:
            message += "\nlint:\n" + "\n".join(map(str, findings))
        raise MSLCheckError(message, e.diagnostics, findings) from None
    findings += msl_lint.lint_ir(ir)
    if findings:
        raise _lint_error(src, findings)


def kernel_names(
    source: str | os.PathLike,
    include_dirs: Sequence = (),
    defines: Sequence[str] = (),
    *,
    name: str | None = None,
) -> list[str]:
    """Host names of the kernels a source defines (plain [[kernel]]s and [[host_name]] instantiations)."""
    return _prepare(_source(source, name), include_dirs, defines).host_names


_built: dict[tuple, Path] = {}


def build(
    source: str | os.PathLike,
    include_dirs: Sequence = (),
    defines: Sequence[str] = (),
    sanitizer: str | None = None,
    *,
    name: str | None = None,
) -> Path:
    """Compile a source into a runtime executable (cached); returns its path. `run` calls this."""
    if sanitizer not in _SANITIZERS:
        raise ValueError(
            f"sanitizer must be None, 'thread', 'address' or 'profile', not {sanitizer!r}"
        )
    src = _source(source, name)
    rw = _prepare(src, include_dirs, defines)
    key = (rw.text, sanitizer)
    if key not in _built:
        findings = msl_lint.lint_source(rw)
        if findings:
            raise _lint_error(src, findings)
        try:
            _built[key] = msl_build.build_executable(rw.text, src.name, sanitizer)
        except msl_build.CompileError as e:
            raise MSLCheckError(
                f"{src.name} does not compile:\n{e.diagnostics}", e.diagnostics
            ) from None
    return _built[key]


def optimized_ir(
    source: str | os.PathLike,
    include_dirs: Sequence = (),
    defines: Sequence[str] = (),
    *,
    name: str | None = None,
) -> str:
    """LLVM IR of a source as the runtime builds it (-O1), without vectorisation, so
    instructions can be counted as scalar work (the cost model's decode counts)."""
    src = _source(source, name)
    rw = _prepare(src, include_dirs, defines)
    try:
        return msl_build.optimized_ir(rw.text, src.name)
    except msl_build.CompileError as e:
        raise MSLCheckError(
            f"{src.name} does not compile:\n{e.diagnostics}", e.diagnostics
        ) from None


# Buffers.


def _dims(value: Dims, what: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or any(int(d) < 1 for d in dims):
        raise ValueError(f"{what} must be 1 to 3 positive sizes, not {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


def _is_mlx(x) -> bool:
    return type(x).__module__.startswith("mlx")


def _encode(value: BufferValue) -> tuple[bytes, Any]:
    """(bytes, how to decode the output back into the input's kind)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), ("bytes",)
    if _is_mlx(value):
        import mlx.core as mx

        if value.dtype == mx.bfloat16:
            host = np.array(value.view(mx.uint16))
        else:
            host = np.array(value)
        return np.ascontiguousarray(host).tobytes(), (
            "mlx",
            host.dtype,
            host.shape,
            value.dtype,
        )
    if isinstance(value, np.ndarray):
        if value.dtype not in _NUMPY_DTYPES:
            raise TypeError(f"unsupported buffer dtype {value.dtype} (bfloat16 travels as uint16)")
        return np.ascontiguousarray(value).tobytes(), (
            "numpy",
            value.dtype,
            value.shape,
        )
    raise TypeError(
        f"a buffer must be bytes, a numpy array or an mlx array, not {type(value).__name__}"
    )


def _decode(data: bytes, how) -> Any:
    if how[0] == "bytes":
        return data
    host = np.frombuffer(data, dtype=how[1]).reshape(how[2]).copy()
    if how[0] == "numpy":
        return host
    import mlx.core as mx

    out = mx.array(host)
    return out.view(mx.bfloat16) if how[3] == mx.bfloat16 else out


# Execution.


def run_sequence(
    source: str | os.PathLike,
    launches: Sequence[Launch],
    *,
    buffers: Mapping[Any, BufferValue],
    outputs: Sequence[Any] | None = None,
    include_dirs: Sequence = (),
    defines: Sequence[str] = (),
    sanitizer: str | None = None,
    order: str = "shuffled",
    seed: int = 0,
    timeout: float | None = None,
    function_constants: Mapping[int, Any] | None = None,
    name: str | None = None,
    buffer_offsets: Mapping[Any, int] | None = None,
    profile: list | None = None,
) -> dict[Any, Any]:
    """Run several launches of one source in one process; later launches see earlier writes.

    Args:
        source: a path to a .metal file, or MSL source text.
        launches: the dispatches, in order (as a serial compute encoder runs them).
        buffers: shared buffers by key (any hashable): numpy/mlx arrays or bytes.
        outputs: keys of `buffers` to return; default all of them.
        include_dirs, defines: as for `check`.
        sanitizer: None, "thread", "address" or "profile" (the cost model: with `profile`).
        order: "shuffled" (threadgroups in a random order from `seed`) or "fixed" (row-major).
        seed: seed of the shuffled order.
        timeout: seconds a threadgroup may take before the runtime reports a deadlock
            (default $MLX_LOWBIT_MSL_TIMEOUT or 60).
        function_constants: [[function_constant(i)]] index -> value, for every launch: a bool
            (1 byte), a Python int (int32) or float (float32), or a numpy scalar of the
            constant's exact type (np.float16(...), np.uint16(...)). Unset constants read as 0 and
            is_function_constant_defined() is false for them.
        name: file name shown in diagnostics for source text.
        buffer_offsets: key of `buffers` -> bytes the binding starts into its allocation, as
            MLX binds a view at its offset: the data follows that many zero bytes in an
            allocation aligned to 16, so an offset that is not a multiple of a vector load's
            size makes that load misaligned, which the run reports (as Metal faults on it).
        profile: with sanitizer="profile", a list that receives one dict per launch: kernel,
            threadgroups, barriers (completed threadgroup barriers, summed over threadgroups),
            tg_accesses / tg_wavefronts / tg_ideal (simdgroup accesses to threadgroup memory,
            the wavefronts their bank conflicts cost, the conflict-free count), threadgroup:
            {allocation name: {accesses, wavefronts, ideal}} (the same per kernel-scope array
            or [[threadgroup(i)]] buffer), and device: {slot: {requested, useful, lines,
            accesses}} (bytes the lanes asked for, distinct bytes among them, distinct 64-byte
            lines touched, simdgroup accesses).

    Returns:
        key -> the buffer's contents after the last launch, of the input's type, dtype and shape.

    Raises:
        MSLCheckError, MSLRuntimeError, MSLSanitizerError, ToolchainError, ValueError.
    """
    if order not in ("shuffled", "fixed"):
        raise ValueError(f"order must be 'shuffled' or 'fixed', not {order!r}")
    timeout = _DEFAULT_TIMEOUT if timeout is None else float(timeout)
    src = _source(source, name)
    exe = build(src.path, include_dirs, defines, sanitizer, name=src.name)
    hosts = _prepare(src, include_dirs, defines).host_names

    blobs: list[bytes] = []
    decoders: list[Any] = []
    shared: dict[Any, int] = {}
    offsets = dict(buffer_offsets or {})
    for key in offsets:
        if key not in buffers or not 0 <= int(offsets[key]) < 4096:
            raise ValueError(f"buffer_offsets[{key!r}] must name a buffer and be 0..4095 bytes")
    for key, value in buffers.items():
        data, how = _encode(value)
        shared[key] = len(blobs)
        blobs.append(bytes(int(offsets.get(key, 0))) + data)
        decoders.append(how)
    offset_of = {shared[k]: int(v) for k, v in offsets.items()}
    spec: list[str] = []
    for launch in launches:
        if launch.kernel not in hosts:
            raise ValueError(
                f"{src.name} has no kernel {launch.kernel!r}; its host names are {hosts}"
            )
        if launch.dispatch not in ("threadgroups", "threads"):
            raise ValueError(
                f"dispatch must be 'threadgroups' or 'threads', not {launch.dispatch!r}"
            )
        grid = _dims(launch.grid, "grid")
        tg = _dims(launch.threadgroup, "threadgroup")
        if tg[0] * tg[1] * tg[2] > 1024:
            raise ValueError(f"threadgroup {tg} has more than 1024 threads")
        spec.append(
            f"launch {launch.kernel} {launch.dispatch} {' '.join(map(str, grid))} {' '.join(map(str, tg))} "
            f"{'shuffle' if order == 'shuffled' else 'fixed'} {int(seed) & (2**64 - 1)} {timeout}"
        )
        for slot, value in sorted(launch.buffers.items()):
            if isinstance(value, (bytes, bytearray, memoryview, np.ndarray)) or _is_mlx(value):
                blobs.append(_encode(value)[0])
                decoders.append(None)
                index = len(blobs) - 1
            elif value in shared:
                index = shared[value]
            else:
                raise KeyError(
                    f"launch of {launch.kernel!r}: buffer({slot}) names {value!r}, which is not in `buffers`"
                )
            spec.append(f"bind {int(slot)} {index} {offset_of.get(index, 0)}")
        for slot, nbytes in sorted(launch.threadgroup_buffers.items()):
            if nbytes <= 0 or nbytes % 16:
                raise ValueError(
                    f"threadgroup({slot}) memory must be a positive multiple of 16 bytes, not {nbytes}"
                )
            spec.append(f"tgmem {int(slot)} {int(nbytes)}")

    wanted = list(buffers) if outputs is None else list(outputs)
    for key in wanted:
        if key not in shared:
            raise KeyError(f"output {key!r} is not in `buffers`")
    kernels = ", ".join(dict.fromkeys(l.kernel for l in launches))
    with tempfile.TemporaryDirectory(prefix="msl-run-") as tmp:
        d = Path(tmp)
        lines = []
        for i, data in enumerate(blobs):
            (d / f"in{i}.bin").write_bytes(data)
            lines.append(f"buffer {i} {len(data)} in{i}.bin")
        lines += spec
        lines += [f"output {shared[key]} out{shared[key]}.bin" for key in wanted]
        (d / "spec.txt").write_text("\n".join(lines) + "\n")
        env = msl_build.sanitizer_env(sanitizer)
        env["MSL_FUNCTION_CONSTANTS"] = _encode_function_constants(function_constants or {})
        if sanitizer == "profile":
            env["MSL_PROFILE_OUT"] = str(d / "profile.json")
        proc = subprocess.run(
            [str(exe), "spec.txt"], cwd=d, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            _raise_runtime_error(src, kernels, sanitizer, proc)
        if sanitizer == "profile" and profile is not None:
            for launch in json.loads((d / "profile.json").read_text()):
                launch["device"] = {int(k): v for k, v in launch["device"].items()}
                profile.append(launch)
        return {
            key: _decode(
                (d / f"out{shared[key]}.bin").read_bytes()[offset_of.get(shared[key], 0) :],
                decoders[shared[key]],
            )
            for key in wanted
        }


def _encode_function_constants(values: Mapping[int, Any]) -> str:
    """index:hexbytes,... for the runtime (runtime/function_constants.cpp)."""
    items = []
    for index, value in sorted(values.items()):
        if isinstance(value, (bool, np.bool_)):
            data = bytes([int(bool(value))])
        elif isinstance(value, np.generic):
            data = value.tobytes()
        elif isinstance(value, int):
            data = (np.int32(value) if -(2**31) <= value < 2**31 else np.uint32(value)).tobytes()
        elif isinstance(value, float):
            data = np.float32(value).tobytes()
        else:
            raise TypeError(
                f"function constant {index}: {value!r} is not a bool, int, float or numpy scalar"
            )
        items.append(f"{int(index)}:{data.hex()}")
    return ",".join(items)


def _raise_runtime_error(src: _Source, kernels: str, sanitizer: str | None, proc) -> None:
    report = (proc.stderr + proc.stdout).strip()
    status = (
        f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    )
    for tool, key in (("ThreadSanitizer", "thread"), ("AddressSanitizer", "address")):
        if f"{tool}:" in report:
            raise MSLSanitizerError(
                f"kernel {kernels} ({src.name}) failed under {tool} ({status}):\n{report}",
                kernels,
                report,
                key,
            )
    if "misaligned address" in report:
        raise MSLRuntimeError(
            f"kernel {kernels} ({src.name}) made a misaligned access ({status}); Metal needs "
            f"every load and store aligned to its type's size (a uint2 to 8 bytes):\n{report}",
            kernels,
            report,
        )
    under = f" under the {sanitizer} sanitizer" if sanitizer else ""
    raise MSLRuntimeError(
        f"kernel {kernels} ({src.name}) failed{under} ({status}):\n{report}",
        kernels,
        report,
    )


def run(
    source: str | os.PathLike,
    kernel: str,
    *,
    grid: Dims,
    threadgroup: Dims,
    buffers: Mapping[int, BufferValue],
    threadgroup_buffers: Mapping[int, int] | None = None,
    dispatch: str = "threadgroups",
    outputs: Sequence[int] | None = None,
    include_dirs: Sequence = (),
    defines: Sequence[str] = (),
    sanitizer: str | None = None,
    order: str = "shuffled",
    seed: int = 0,
    timeout: float | None = None,
    function_constants: Mapping[int, Any] | None = None,
    name: str | None = None,
    buffer_offsets: Mapping[int, int] | None = None,
    profile: list | None = None,
) -> dict[int, Any]:
    """Run one kernel launch on the CPU.

    Args:
        source: a path to a .metal file, or MSL source text.
        kernel: host name of the kernel.
        grid: threadgroups per grid (dispatch="threadgroups") or threads per grid ("threads").
        threadgroup: threads per threadgroup.
        buffers: [[buffer(slot)]] -> numpy/mlx array or bytes (a `constant Params&` is its bytes).
        threadgroup_buffers: [[threadgroup(slot)]] -> bytes of threadgroup memory.
        dispatch: "threadgroups" or "threads" (partial edge threadgroups).
        outputs: slots to return; default every slot bound to an array (bytes are constants).
        include_dirs, defines, sanitizer, order, seed, timeout, function_constants, name,
            buffer_offsets (by slot), profile: as for `run_sequence`.

    Returns:
        slot -> the buffer after the launch, of the input's type, dtype and shape.
    """
    if outputs is None:
        outputs = [
            s for s, v in buffers.items() if not isinstance(v, (bytes, bytearray, memoryview))
        ]
    launch = Launch(
        kernel,
        grid,
        threadgroup,
        {s: s for s in buffers},
        threadgroup_buffers or {},
        dispatch,
    )
    return run_sequence(
        source,
        [launch],
        buffers=buffers,
        outputs=outputs,
        include_dirs=include_dirs,
        defines=defines,
        sanitizer=sanitizer,
        order=order,
        seed=seed,
        timeout=timeout,
        function_constants=function_constants,
        name=name,
        buffer_offsets=buffer_offsets,
        profile=profile,
    )


# bfloat16 travels as uint16 in numpy.


def float_to_bfloat16(x) -> np.ndarray:
    """float32 values -> bfloat16 bit patterns (uint16), rounding to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def bfloat16_to_float(bits) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
