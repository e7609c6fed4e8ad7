"""clang invocations and the on-disk cache of the Metal-on-Linux harness.

Two passes per kernel source: `preprocess` (clang -E with the shim's headers reduced to markers,
see include/metal_stdlib) and then a compile of the rewritten translation unit, either for the
type-check (LLVM IR at -O0, which the lint reads for recursion) or into an executable linked with
the CPU runtime (runtime/*.cpp), plain or under a sanitizer. Executables are cached under
$MLX_LOWBIT_MSL_CACHE (default ~/.cache/mlx_lowbit_msl) keyed by a hash of the rewritten source
(which contains every included header after preprocessing), the shim, the runtime, the flags, the
sanitizer and the clang version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

__all__ = [
    "ToolchainError",
    "CompileError",
    "HERE",
    "INCLUDE_DIR",
    "METAL_DEFINES",
    "PREPROCESS_FLAGS",
    "CHECK_FLAGS",
    "BUILD_FLAGS",
    "LINK_FLAGS",
    "SANITIZER_FLAGS",
    "ALIGNMENT_FLAGS",
    "cache_dir",
    "clang",
    "preprocess",
    "emit_ir",
    "build_executable",
    "sanitizer_env",
]

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
RUNTIME_DIR = HERE / "runtime"
RUNTIME_SOURCES = (
    "executor.cpp",
    "sync.cpp",
    "function_constants.cpp",
    "driver.cpp",
    "profile.cpp",
)

# What a real MSL 3.1 compile predefines (Metal 3 drivers define __METAL__, not __METAL_MACOS__).
METAL_DEFINES = ("__METAL_VERSION__=310", "__METAL__=1", "__HAVE_BFLOAT__=1")
# Pass 1: no system headers and no host macros (-undef), as for Apple's compiler.
PREPROCESS_FLAGS = (
    "-E",
    "-x",
    "c++",
    "-std=c++17",
    "-undef",
    "-nostdinc",
    "-nostdinc++",
    "-D__MSL_PREPROCESS=1",
)
# Pass 2, shared by the type-check and the build.
_LANGUAGE_FLAGS = (
    "-x",
    "c++",
    "-std=c++17",
    "-nostdinc",
    "-nostdinc++",
    "-fexcess-precision=16",  # half and bfloat arithmetic rounds every operation, as on the GPU
    "-flax-vector-conversions=none",  # no implicit vector conversions, as in MSL
    "-fno-exceptions",
    "-fno-rtti",
    "-Wall",
    "-Wno-unknown-attributes",
    "-Wno-duplicate-decl-specifier",  # `static constant constexpr const` spells const twice
    "-Wno-unused-function",
    "-Wno-unused-variable",
    "-Wno-unused-but-set-variable",
    "-Wno-unused-local-typedef",
)
CHECK_FLAGS = _LANGUAGE_FLAGS + ("-O0", "-S", "-emit-llvm", "-gline-tables-only")
BUILD_FLAGS = _LANGUAGE_FLAGS + (
    "-O1",
    "-gline-tables-only",
    "-fno-omit-frame-pointer",
    "-fno-strict-aliasing",
)
RUNTIME_FLAGS = (
    "-x",
    "c++",
    "-std=c++17",
    "-O1",
    "-gline-tables-only",
    "-fno-omit-frame-pointer",
    "-Wall",
    "-pthread",
)
# On Linux, libgcc lacks the __bf16 conversions (__truncsfbf2), so link
# clang's compiler-rt builtins; macOS links compiler-rt already, and its
# linker knows no libgcc.
LINK_FLAGS = (
    ("-pthread", "-lm")
    if sys.platform == "darwin"
    else ("-pthread", "-rtlib=compiler-rt", "-unwindlib=libgcc", "-lm")
)
# Every kernel build (plain or sanitized) checks that each load and store is
# aligned to its type, as Metal requires (x86 tolerates a misaligned uint2);
# the first misaligned access ends the run with UBSan's report.
ALIGNMENT_FLAGS = ("-fsanitize=alignment", "-fno-sanitize-recover=alignment")
SANITIZER_FLAGS = {
    None: (),
    "thread": ("-fsanitize=thread",),
    "address": ("-fsanitize=address",),
    # The cost model (runtime/profile.cpp): TSan's instrumentation in the
    # kernel, its callbacks from our runtime instead of TSan's.
    # At -O0 each access is as written (an optimiser splits a uint2 load it
    # only takes .x and .y of into two loads, which a GPU would not).
    "profile": ("-fsanitize=thread", "-O0"),
}
# What the runtime is compiled and the executable linked with, per sanitizer.
RUNTIME_SANITIZER_FLAGS = {**SANITIZER_FLAGS, "profile": ("-DMSLRT_PROFILE=1",)}
LINK_SANITIZER_FLAGS = {**SANITIZER_FLAGS, "profile": ()}


class ToolchainError(RuntimeError):
    """clang is missing or unusable."""


class CompileError(Exception):
    """clang rejected a source; `diagnostics` holds its output."""

    def __init__(self, message: str, diagnostics: str):
        super().__init__(f"{message}\n{diagnostics}".rstrip())
        self.diagnostics = diagnostics


def cache_dir() -> Path:
    path = Path(os.environ.get("MLX_LOWBIT_MSL_CACHE") or Path.home() / ".cache" / "mlx_lowbit_msl")
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=None)
def clang() -> str:
    """Path of clang++ (>= 17 for __bf16 arithmetic): $MLX_LOWBIT_CLANG, else clang++-19."""
    override = os.environ.get("MLX_LOWBIT_CLANG")
    path = shutil.which(override) if override else shutil.which("clang++-19")
    if not path:
        raise ToolchainError(
            (
                f"MLX_LOWBIT_CLANG={override!r} is not an executable. "
                if override
                else "clang++-19 was not found. "
            )
            + "The Metal-on-Linux harness needs clang 19 with compiler-rt "
            "(Debian/Ubuntu: apt-get install clang-19 libclang-rt-19-dev), or set MLX_LOWBIT_CLANG."
        )
    return path


@lru_cache(maxsize=None)
def _clang_version() -> str:
    return subprocess.run([clang(), "--version"], capture_output=True, text=True, check=True).stdout


def _symbolizer() -> str | None:
    candidate = Path(clang()).resolve().parent / "llvm-symbolizer"
    if candidate.exists():
        return str(candidate)
    return shutil.which("llvm-symbolizer-19") or shutil.which("llvm-symbolizer")


def sanitizer_env(sanitizer: str | None) -> dict[str, str]:
    """Environment for running an executable built with `sanitizer`."""
    env = dict(os.environ)
    symbolizer = _symbolizer()
    if sanitizer == "thread":
        opts = "halt_on_error=1:exitcode=66:second_deadlock_stack=1:report_signal_unsafe=0"
        if symbolizer:
            opts += f":external_symbolizer_path={symbolizer}"
        env["TSAN_OPTIONS"] = opts + ":" + env.get("TSAN_OPTIONS", "")
    elif sanitizer == "address":
        env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:" + env.get("ASAN_OPTIONS", "")
        if symbolizer:
            env["ASAN_SYMBOLIZER_PATH"] = symbolizer
    return env


def _run(cmd: list[str], what: str, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"{what} failed", proc.stderr)
    return proc


def preprocess(path: Path, include_dirs, defines) -> str:
    """Pass 1 over a .metal file: macros expanded, shim headers left as markers."""
    cmd = [clang(), *PREPROCESS_FLAGS, "-isystem", str(INCLUDE_DIR)]
    cmd += [f"-D{d}" for d in METAL_DEFINES]
    cmd += [f"-I{Path(d)}" for d in include_dirs]
    cmd += [f"-D{d}" for d in defines]
    cmd.append(str(path))
    return _run(cmd, f"preprocessing {path}").stdout


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:32]


@lru_cache(maxsize=None)
def _tree_digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return _digest(*[str(p.relative_to(root)) for p in files], *[p.read_bytes() for p in files])


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def emit_ir(tu: str, name: str) -> tuple[str, str]:
    """Type-check a rewritten translation unit; returns (LLVM IR, warnings)."""
    key = _digest(tu, _tree_digest(INCLUDE_DIR), _clang_version(), *CHECK_FLAGS)
    out = cache_dir() / "check" / key
    ir, warnings = out / "tu.ll", out / "warnings.txt"
    if ir.exists() and warnings.exists():
        return ir.read_text(), warnings.read_text()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [clang(), *CHECK_FLAGS, "-isystem", str(INCLUDE_DIR), "-", "-o", "-"]
    proc = _run(cmd, f"type-checking {name}", input=tu)
    _atomic_write(warnings, proc.stderr.encode())
    _atomic_write(ir, proc.stdout.encode())
    return proc.stdout, proc.stderr


def optimized_ir(tu: str, name: str) -> str:
    """LLVM IR of a rewritten translation unit at the build's -O1, not vectorised."""
    cmd = [clang(), *BUILD_FLAGS, "-fno-vectorize", "-fno-slp-vectorize", "-S", "-emit-llvm"]
    cmd += ["-isystem", str(INCLUDE_DIR), "-", "-o", "-"]
    return _run(cmd, f"compiling {name} to IR", input=tu).stdout


_runtime_lock = threading.Lock()


def _runtime_objects(sanitizer: str | None) -> list[Path]:
    flags = (*RUNTIME_FLAGS, *RUNTIME_SANITIZER_FLAGS[sanitizer])
    key = _digest(
        _tree_digest(RUNTIME_DIR),
        _tree_digest(INCLUDE_DIR / "msl"),
        _clang_version(),
        *flags,
    )
    out = cache_dir() / "runtime" / f"{sanitizer or 'plain'}-{key}"
    objects = [out / (Path(s).stem + ".o") for s in RUNTIME_SOURCES]
    with _runtime_lock:
        if all(o.exists() for o in objects):
            return objects
        out.mkdir(parents=True, exist_ok=True)

        def compile_one(src: str, obj: Path) -> None:
            tmp = obj.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            _run(
                [
                    clang(),
                    *flags,
                    "-I",
                    str(INCLUDE_DIR),
                    "-c",
                    str(RUNTIME_DIR / src),
                    "-o",
                    str(tmp),
                ],
                f"compiling the MSL runtime ({src})",
            )
            os.replace(tmp, obj)

        with ThreadPoolExecutor(max_workers=len(RUNTIME_SOURCES)) as pool:
            list(pool.map(compile_one, RUNTIME_SOURCES, objects))
    return objects


def build_executable(tu: str, name: str, sanitizer: str | None) -> Path:
    """Compile a rewritten translation unit and link it with the runtime; returns the executable."""
    if sanitizer not in SANITIZER_FLAGS:
        raise ValueError(
            f"sanitizer must be None, 'thread', 'address' or 'profile', not {sanitizer!r}"
        )
    flags = (*BUILD_FLAGS, *ALIGNMENT_FLAGS, *SANITIZER_FLAGS[sanitizer])
    key = _digest(
        tu,
        _tree_digest(INCLUDE_DIR),
        _tree_digest(RUNTIME_DIR),
        _clang_version(),
        *flags,
        *LINK_FLAGS,
        str(sanitizer),
    )
    out = cache_dir() / "kernels" / key
    exe = out / "kernel.exe"
    if exe.exists():
        return exe
    out.mkdir(parents=True, exist_ok=True)
    (out / "source.txt").write_text(name + "\n")
    obj = out / f"kernel.{os.getpid()}.{threading.get_ident()}.o"
    with ThreadPoolExecutor(max_workers=1) as pool:
        runtime = pool.submit(_runtime_objects, sanitizer)
        _run(
            [clang(), *flags, "-isystem", str(INCLUDE_DIR), "-c", "-", "-o", str(obj)],
            f"compiling {name}",
            input=tu,
        )
        objects = runtime.result()
    tmp = out / f"kernel.exe.{os.getpid()}.{threading.get_ident()}.tmp"
    _run(
        [
            clang(),
            *LINK_SANITIZER_FLAGS[sanitizer],
            *ALIGNMENT_FLAGS,
            str(obj),
            *map(str, objects),
            "-o",
            str(tmp),
            *LINK_FLAGS,
        ],
        f"linking {name}",
    )
    obj.unlink()
    os.replace(tmp, exe)
    return exe
