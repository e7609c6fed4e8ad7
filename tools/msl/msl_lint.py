"""Checks for what clang with the shim cannot see, but Apple's compiler (or the harness) rejects.

- `double` (MSL has no double precision);
- duplicate or out-of-range `[[buffer(i)]]` / `[[threadgroup(i)]]` indices in one kernel, and
  kernel parameters without a binding attribute;
- C-style casts to vector types: MSL converts element-wise, clang would reinterpret the bits;
- recursion, found in the call graph of the LLVM IR of the type-check.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass

from msl_rewrite import VECTOR_TYPES, Rewritten

__all__ = ["Finding", "lint_source", "lint_ir"]

MAX_BINDING_INDEX = 30  # Metal has 31 buffer and 31 threadgroup argument slots
# Tokens after `(vectype)` that start an operand, i.e. that make it a cast.
_NOT_OPERAND = frozenset(
    {
        ";",
        ",",
        ")",
        "]",
        "}",
        "{",
        "=",
        "?",
        ":",
        "const",
        "volatile",
        "override",
        "final",
        "noexcept",
        "&&",
        "||",
    }
)
_KEYWORDS_BEFORE_EXPRESSION = frozenset({"return", "case", "else", "do", "throw"})


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def lint_source(rw: Rewritten) -> list[Finding]:
    """Findings from the tokens and kernel signatures of a rewritten source."""
    findings: list[Finding] = []
    sig = [t for t in rw.tokens if t.kind in ("id", "num", "str", "chr", "punct", "other")]
    for i, t in enumerate(sig):
        if t.text == "double" and t.kind == "id":
            findings.append(Finding(t.file, t.line, "'double' is not supported in MSL; use float"))
        if (
            t.text == "("
            and i + 3 < len(sig)
            and sig[i + 1].text in VECTOR_TYPES
            and sig[i + 2].text == ")"
            and sig[i + 3].text not in _NOT_OPERAND
            and (
                i == 0 or sig[i - 1].kind != "id" or sig[i - 1].text in _KEYWORDS_BEFORE_EXPRESSION
            )
            and (i == 0 or sig[i - 1].text not in (")", "]"))
        ):
            vt = sig[i + 1].text
            findings.append(
                Finding(
                    t.file,
                    t.line,
                    f"C-style cast to {vt}: MSL converts element-wise but the Linux shim would reinterpret "
                    f"the bits; write {vt}(x) or static_cast<{vt}>(x)",
                )
            )
    for kernel in rw.kernels.values():
        seen: dict[tuple[str, int], str] = {}
        for p in kernel.params:
            if not p.binding:
                findings.append(
                    Finding(
                        p.file,
                        p.line,
                        f"kernel '{kernel.name}' parameter '{p.name}' needs an explicit [[buffer(i)]], "
                        "[[threadgroup(i)]] or position attribute",
                    )
                )
            if p.slot is None:
                continue
            if not 0 <= p.slot <= MAX_BINDING_INDEX:
                findings.append(
                    Finding(
                        p.file,
                        p.line,
                        f"kernel '{kernel.name}' parameter '{p.name}': [[{p.binding}({p.slot})]] is outside 0..{MAX_BINDING_INDEX}",
                    )
                )
            key = (p.binding, p.slot)
            if key in seen:
                findings.append(
                    Finding(
                        p.file,
                        p.line,
                        f"kernel '{kernel.name}': [[{p.binding}({p.slot})]] is used by both '{seen[key]}' and '{p.name}'",
                    )
                )
            seen[key] = p.name
    return findings


_DEFINE = re.compile(r'^define\b[^@]*@("(?:[^"\\]|\\.)*"|[-\w.$]+)\(')
_DBG = re.compile(r"!dbg (![0-9]+)")
_CALL = re.compile(r'\b(?:call|invoke)\b[^@]*?@("(?:[^"\\]|\\.)*"|[-\w.$]+)\(')
_SUBPROGRAM = re.compile(
    r'^(![0-9]+) = distinct !DISubprogram\(name: "([^"]*)".*?file: (![0-9]+), line: ([0-9]+)'
)
_FILE = re.compile(r'^(![0-9]+) = !DIFile\(filename: "([^"]*)"')


def lint_ir(ir: str) -> list[Finding]:
    """Recursion (any cycle in the call graph) in the LLVM IR of a type-checked source."""
    calls: dict[str, set[str]] = defaultdict(set)
    dbg: dict[str, str] = {}
    subprograms: dict[str, tuple[str, str, int]] = {}
    files: dict[str, str] = {}
    current = None
    for line in ir.splitlines():
        m = _DEFINE.match(line)
        if m:
            current = m.group(1)
            calls[current]
            d = _DBG.search(line)
            if d:
                dbg[current] = d.group(1)
            continue
        if line.startswith("}"):
            current = None
        elif current is not None:
            for callee in _CALL.findall(line):
                if not callee.startswith("llvm."):
                    calls[current].add(callee)
        elif line.startswith("!"):
            m = _SUBPROGRAM.match(line)
            if m:
                subprograms[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)))
            m = _FILE.match(line)
            if m:
                files[m.group(1)] = m.group(2)

    def describe(fn: str) -> tuple[str, str, int]:
        sp = subprograms.get(dbg.get(fn, ""))
        if not sp:
            return fn, "<unknown>", 0
        return sp[0], files.get(sp[1], "<unknown>"), sp[2]

    findings = []
    for cycle in _cycles(calls):
        names = [describe(f) for f in cycle]
        first = min(
            range(len(names)), key=lambda i: (names[i][1], names[i][2])
        )  # start at the earliest line
        names = names[first:] + names[:first]
        path = " -> ".join(f"{n} ({os.path.basename(f)}:{l})" for n, f, l in names + names[:1])
        findings.append(
            Finding(names[0][1], names[0][2], f"recursion is not allowed in MSL: {path}")
        )
    return findings


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One call cycle per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in graph.get(node, ()):
                        out.append(_cycle_in(graph, set(component), min(component)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _cycle_in(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A simple cycle through `start` inside a strongly connected component (BFS back to start)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1]
                if w in component and w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]
