"""Rewrite preprocessed MSL into C++ that clang compiles against the shim in tools/msl/include.

The input is the output of the preprocessing pass (``clang -E`` with the shim's headers reduced to
``#pragma msl_shim include <...>`` markers), so macros are expanded and ``# N "file"`` line markers
map every token back to its .metal or header line. The rewrite keeps every newline, so clang's
diagnostics, ``__builtin_LINE()`` and debug info point at the original lines. It:

- spells the address-space keywords as the shim's macros (``device`` -> ``__msl_device``, ...);
- turns kernel-scope ``threadgroup T x[N];`` into a reference to memory the runtime shares between
  the threads of a threadgroup;
- turns vector constructor calls (``float4(a, b.xy)``, ``vec<T, 2>(x)``, ``static_cast<half4>(v)``)
  into ``__msl_vec_ctor<...>(...)`` and ``1.0h`` literals into ``1.0f16``;
- drops MSL attributes, recording ``[[kernel]]`` signatures and ``[[host_name]]`` instantiations;
- appends, per host name, a thunk that binds buffers/threadgroup memory/positions to the kernel's
  parameters by index and registers it with the runtime.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

__all__ = [
    "RewriteError",
    "Token",
    "Param",
    "Kernel",
    "Instantiation",
    "Rewritten",
    "rewrite",
    "tokenize",
]

_TOKEN_RE = re.compile(
    r"""
  (?P<directive>^[ \t]*\#[^\n]*)
| (?P<nl>\n)
| (?P<ws>[ \t\r\f\v]+)
| (?P<str>(?:u8|[uUL])?R"(?P<delim>[^()\\\s]{0,16})\((?s:.*?)\)(?P=delim)"|(?:u8|[uUL])?"(?:\\.|[^"\\\n])*")
| (?P<chr>(?:u8|[uUL])?'(?:\\.|[^'\\\n])*')
| (?P<num>\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.'])*)
| (?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
| (?P<punct>::|->|\.\.\.|&&|\|\||\+\+|--|[-+*/%^&|=!<>]=|<<|[][(){};:,.?~!+\-*/%^&|<>=\#@\\])
| (?P<other>.)
""",
    re.X | re.M,
)
_MARKER_RE = re.compile(r'^[ \t]*#[ \t]*(?:line[ \t]+)?(\d+)[ \t]+"((?:\\.|[^"\\])*)"')
_SHIM_MARKER_RE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+msl_shim[ \t]+include[ \t]+(<[^>]+>)")

ADDRESS_SPACES = {
    "device": "__msl_device",
    "threadgroup": "__msl_threadgroup",
    "constant": "__msl_constant",
    "thread": "",
}
VECTOR_TYPES = frozenset(
    f"{t}{n}"
    for t in (
        "float",
        "half",
        "bfloat",
        "char",
        "uchar",
        "short",
        "ushort",
        "int",
        "uint",
        "long",
        "ulong",
    )
    for n in (2, 3, 4)
)
# Position attributes: (name, scalar only).
POSITIONS = {
    "thread_position_in_grid": False,
    "thread_position_in_threadgroup": False,
    "threadgroup_position_in_grid": False,
    "threads_per_threadgroup": False,
    "threadgroups_per_grid": False,
    "threads_per_grid": False,
    "dispatch_threads_per_threadgroup": False,
    "thread_index_in_threadgroup": True,
    "thread_index_in_simdgroup": True,
    "simdgroup_index_in_threadgroup": True,
    "simdgroups_per_threadgroup": True,
    "threads_per_simdgroup": True,
    "thread_index_in_quadgroup": True,
    "quadgroup_index_in_threadgroup": True,
    "quadgroups_per_threadgroup": True,
}
# Standard C++ attributes clang understands; every other [[...]] block is MSL's and is dropped.
_STANDARD_ATTRIBUTES = frozenset(
    {
        "likely",
        "unlikely",
        "maybe_unused",
        "fallthrough",
        "nodiscard",
        "noreturn",
        "deprecated",
        "assume",
    }
)
# Attributes that are fine to drop silently.
_IGNORED_ATTRIBUTES = frozenset(
    {"max_total_threads_per_threadgroup", "host_name", "kernel", "early_fragment_tests"}
)
_FUNCTION_BODY_PREFIX = frozenset(
    {")", "const", "noexcept", "override", "final", "mutable", "volatile"}
)
_STATEMENT_START = frozenset({"{", "}", ";"})
_SIGNIFICANT = frozenset({"id", "num", "str", "chr", "punct", "other"})
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_HALF_DECIMAL = re.compile(r"^(?P<m>[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?P<e>[eE][+-]?[0-9]+)?[hH]$")
_HALF_HEX = re.compile(r"^(?P<m>0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?[0-9]+)[hH]$")


class RewriteError(Exception):
    """Source that the rewrite cannot turn into C++ (or that the harness does not support)."""


@dataclass
class Token:
    kind: str
    text: str
    file: str
    line: int


@dataclass
class Param:
    index: int
    name: str
    binding: str  # "buffer", "threadgroup" or a position attribute name; "" when missing
    slot: int | None
    optional: bool  # [[function_constant(c)]]: may stay unbound (then null)
    file: str
    line: int


@dataclass
class Kernel:
    name: str
    params: list[Param]
    is_template: bool
    namespace: tuple[str, ...]
    file: str
    line: int


@dataclass
class Instantiation:
    host_name: str
    function: str  # the template-id, e.g. "gemm<half, 32>"
    kernel: str  # the template's name
    namespace: tuple[str, ...]
    file: str
    line: int


@dataclass
class Rewritten:
    text: str
    tokens: list[Token]
    kernels: dict[str, Kernel] = field(default_factory=dict)
    instantiations: list[Instantiation] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        """The files preprocessing read (the source, its headers, the shim's markers)."""
        names = {
            m.group(2)
            for t in self.tokens
            if t.kind == "directive"
            for m in [_MARKER_RE.match(t.text)]
            if m
        }
        return sorted(n for n in names if not n.startswith("<"))

    @property
    def host_names(self) -> list[str]:
        """Host names of the kernels this source defines, in source order."""
        return [i.host_name for i in self.instantiations]


def tokenize(text: str) -> list[Token]:
    """Tokens of preprocessed C++ with each one's presumed file and line (from line markers)."""
    tokens: list[Token] = []
    file, line = "<unknown>", 1
    for m in _TOKEN_RE.finditer(text):
        kind, tok = m.lastgroup, m.group()
        if kind == "delim":  # the raw-string delimiter group can be the last one matched
            kind = "str"
        tokens.append(Token(kind, tok, file, line))
        if kind == "directive":
            marker = _MARKER_RE.match(tok)
            if marker:
                file = bytes(marker.group(2), "utf-8").decode("unicode_escape")
                line = int(marker.group(1)) - 1  # the newline after the marker starts line N
        line += tok.count("\n")
    return tokens


class _Rewriter:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.sig = [i for i, t in enumerate(tokens) if t.kind in _SIGNIFICANT]
        self.out = [t.text for t in tokens]
        self.kernels: dict[str, Kernel] = {}
        self.instantiations: list[Instantiation] = []
        self.tg_keys = 0
        self.vector_aliases: set[str] = set()  # typedef/using names of vector types
        self.param_spans: list[tuple[int, int]] = []  # kernel parameter lists
        # Template type parameters in scope: [names, brace depth of the template, body opened?]
        self.template_scopes: list[list] = []

    # Helpers over significant tokens (k indexes self.sig).
    def text(self, k: int) -> str:
        return self.tokens[self.sig[k]].text if 0 <= k < len(self.sig) else ""

    def tok(self, k: int) -> Token:
        return self.tokens[self.sig[k]]

    def kind(self, k: int) -> str:
        return self.tokens[self.sig[k]].kind if 0 <= k < len(self.sig) else ""

    def set(self, k: int, text: str) -> None:
        self.out[self.sig[k]] = text

    def error(self, k: int, message: str) -> RewriteError:
        t = self.tok(min(k, len(self.sig) - 1))
        return RewriteError(f"{t.file}:{t.line}: {message}")

    def match(self, k: int, open_: str, close: str) -> int:
        """Index of the token closing the bracket opened at k."""
        depth = 0
        for j in range(k, len(self.sig)):
            t = self.text(j)
            if t == open_:
                depth += 1
            elif t == close:
                depth -= 1
                if depth == 0:
                    return j
        raise self.error(k, f"unbalanced '{open_}'")

    def skip_group(self, j: int) -> int:
        """Index of the bracket closing the one at j; j itself when j is no opening bracket."""
        t = self.text(j)
        return self.match(j, t, _CLOSING[t]) if t in _CLOSING else j

    def match_angle(self, k: int) -> int:
        """Index of the '>' closing the template argument list opened at k ('<')."""
        depth = 0
        j = k
        while j < len(self.sig):
            j = self.skip_group(j)
            t = self.text(j)
            if t == "<":
                depth += 1
            elif t == ">":
                depth -= 1
                if depth == 0:
                    return j
            elif t in (";", ")", "]", "}"):
                break
            j += 1
        raise self.error(k, "unbalanced '<'")

    def attribute_end(self, k: int) -> int:
        """k is at '[' '[': index of the final ']' of the attribute block."""
        j = self.match(k, "[", "]")
        if self.text(j - 1) != "]":
            raise self.error(k, "malformed attribute block")
        return j

    def attributes(self, k: int, end: int) -> list[tuple[str, str]]:
        """(name, argument text) of each attribute in the block [k, end]."""
        items: list[tuple[str, str]] = []
        j = k + 2
        while j < end - 1:
            name = self.text(j)
            j += 1
            while self.text(j) == "::":
                name += "::" + self.text(j + 1)
                j += 2
            args = ""
            if self.text(j) == "(":
                close = self.match(j, "(", ")")
                args = " ".join(self.text(x) for x in range(j + 1, close))
                j = close + 1
            items.append((name, args))
            if self.text(j) == ",":
                j += 1
        return items

    def blank(self, k: int, end: int) -> None:
        for j in range(k, end + 1):
            self.set(j, "")

    # The pass.
    def run(self) -> None:
        braces: list[str] = []  # "namespace:<name>", "function", "block", "other"
        pending_namespace: list[str] | None = None
        template_close = -2  # index of the '>' ending the last `template <...>` header
        k = 0
        n = len(self.sig)
        while k < n:
            t = self.text(k)
            kind = self.tok(k).kind
            if t == "[" and self.text(k + 1) == "[":
                end = self.attribute_end(k)
                names = [a[0] for a in self.attributes(k, end)]
                if "kernel" in names:
                    self.kernel(k, end, template_close == k - 1, braces)
                elif "function_constant" in names and not any(
                    a < k < b for a, b in self.param_spans
                ):
                    self.function_constant(k, end, braces)
                if not all(name in _STANDARD_ATTRIBUTES for name in names):
                    self.blank(k, end)
                k = end + 1
                continue
            if kind == "id":
                if t == "namespace":
                    pending_namespace = []
                elif pending_namespace is not None and t not in ("inline",):
                    pending_namespace.append(t)
                if t == "template":
                    if self.text(k + 1) == "<":
                        template_close = self.match_angle(k + 1)
                        self.template_scopes.append(
                            [
                                self.template_type_params(k + 1, template_close),
                                len(braces),
                                False,
                            ]
                        )
                    elif self.text(k - 1) in ("", ";", "{", "}", "extern"):
                        k = self.instantiation(k, braces)
                        continue
                elif t == "kernel":
                    self.set(k, "")
                    self.kernel(k, k, template_close == k - 1, braces)
                elif (
                    t == "threadgroup"
                    and braces
                    and braces[-1] in ("function", "block")
                    and (
                        self.text(k - 1) in _STATEMENT_START
                        or (self.text(k - 1) == ":" and self.text(k - 2) != ":")
                    )
                ):
                    if self.threadgroup_storage(k):
                        k += 1
                        continue
                    self.set(k, ADDRESS_SPACES[t])
                elif t in ADDRESS_SPACES:
                    self.set(k, ADDRESS_SPACES[t])
                elif t in VECTOR_TYPES or t == "vec":
                    self.vector_constructor(k)
                elif t == "static_cast":
                    self.vector_static_cast(k)
                elif t in ("typedef", "using"):
                    self.record_alias(k)
                elif self.text(k + 1) == "(" and (
                    t in self.vector_aliases
                    or any(t in scope[0] for scope in self.template_scopes)
                    or self.text(self.qualified_start(k) - 1) == "typename"
                ):
                    self.functional_cast(k)
            elif kind == "num":
                self.half_literal(k)
            elif t == "{":
                prev = self.text(k - 1)
                if pending_namespace is not None:
                    braces.append("namespace:" + "::".join(pending_namespace))
                elif braces and braces[-1] in ("function", "block"):
                    braces.append("block")
                elif prev in _FUNCTION_BODY_PREFIX:
                    braces.append("function")
                else:
                    braces.append("other")
                pending_namespace = None
                if self.template_scopes and self.template_scopes[-1][1] == len(braces) - 1:
                    self.template_scopes[-1][2] = True
            elif t == "}":
                if braces:
                    braces.pop()
                while (
                    self.template_scopes
                    and self.template_scopes[-1][2]
                    and self.template_scopes[-1][1] == len(braces)
                ):
                    self.template_scopes.pop()
            elif t == ";":
                pending_namespace = None  # a using-directive or a namespace alias
                while (
                    self.template_scopes
                    and not self.template_scopes[-1][2]
                    and self.template_scopes[-1][1] == len(braces)
                ):
                    self.template_scopes.pop()  # a declaration without a body
            elif t == "=" and pending_namespace is not None:
                pending_namespace = None
            k += 1

    # MSL constructs.
    def namespace(self, braces: list[str]) -> tuple[str, ...]:
        return tuple(b.split(":", 1)[1] for b in braces if b.startswith("namespace:"))

    def kernel(self, start: int, end: int, is_template: bool, braces: list[str]) -> None:
        """Record the [[kernel]] function whose declaration follows index `end`."""
        j = end + 1
        while j < len(self.sig) and self.text(j) != "(":
            if self.text(j) == "[" and self.text(j + 1) == "[":
                a_end = self.attribute_end(j)
                self.blank(j, a_end)
                j = a_end + 1
                continue
            if self.text(j) == "__attribute__":
                j = self.skip_group(j + 1) + 1
                continue
            if self.text(j) in (";", "{", "}"):
                raise self.error(
                    start, "cannot find the parameter list of this [[kernel]] function"
                )
            j += 1
        name_k = j - 1
        name = self.text(name_k)
        if self.tok(name_k).kind != "id":
            raise self.error(start, "cannot find the name of this [[kernel]] function")
        close = self.match(j, "(", ")")
        self.param_spans.append((j, close))
        params = self.params(j, close, name)
        decl = Kernel(
            name,
            params,
            is_template,
            self.namespace(braces),
            self.tok(name_k).file,
            self.tok(name_k).line,
        )
        if name in self.kernels:
            if [p.binding for p in self.kernels[name].params] != [p.binding for p in params]:
                raise self.error(
                    name_k,
                    f"[[kernel]] '{name}' is declared twice with different parameters",
                )
            return
        self.kernels[name] = decl
        if not is_template:
            self.instantiations.append(
                Instantiation(name, name, name, decl.namespace, decl.file, decl.line)
            )

    def params(self, open_: int, close: int, kernel: str) -> list[Param]:
        if close == open_ + 1 or (close == open_ + 2 and self.text(open_ + 1) == "void"):
            return []
        pieces: list[tuple[int, int]] = []
        depth = 0
        start = open_ + 1
        j = open_ + 1
        while j < close:
            j = self.skip_group(j)
            t = self.text(j)
            if t == "<":
                depth += 1
            elif t == ">":
                depth -= 1
            elif t == "," and depth == 0:
                pieces.append((start, j))
                start = j + 1
            j += 1
        pieces.append((start, close))
        params = []
        for index, (a, b) in enumerate(pieces):
            name, binding, slot, optional = "", "", None, False
            j = a
            while j < b:
                if self.text(j) == "[" and self.text(j + 1) == "[":
                    end = self.attribute_end(j)
                    for attr, args in self.attributes(j, end):
                        if attr in ("buffer", "threadgroup"):
                            binding, slot = attr, self.int_value(args, j)
                        elif attr in POSITIONS:
                            binding = attr
                        elif attr == "function_constant":
                            optional = True
                        elif attr not in _STANDARD_ATTRIBUTES:
                            raise self.error(
                                j,
                                f"kernel '{kernel}': [[{attr}]] is not supported by the Linux harness",
                            )
                    self.blank(j, end)
                    j = end + 1
                    continue
                if (
                    self.tok(j).kind == "id"
                    and self.text(j) not in ADDRESS_SPACES
                    and self.text(j) != "const"
                ):
                    name = self.text(j)
                j += 1
            tok = self.tok(a)
            params.append(
                Param(
                    index,
                    name or f"#{index}",
                    binding,
                    slot,
                    optional,
                    tok.file,
                    tok.line,
                )
            )
        return params

    def int_value(self, text: str, k: int) -> int:
        expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*\b", r"\1", text).replace("/", "//")
        try:
            tree = ast.parse(expr, mode="eval")
            if not all(
                isinstance(
                    node,
                    (
                        ast.Expression,
                        ast.BinOp,
                        ast.UnaryOp,
                        ast.Constant,
                        ast.operator,
                        ast.unaryop,
                    ),
                )
                for node in ast.walk(tree)
            ):
                raise ValueError
            value = eval(compile(tree, "<index>", "eval"), {"__builtins__": {}})
            if not isinstance(value, int):
                raise ValueError
            return value
        except (SyntaxError, ValueError, ZeroDivisionError):
            raise self.error(
                k, f"binding index '{text}' is not an integer constant expression"
            ) from None

    def instantiation(self, k: int, braces: list[str]) -> int:
        """`template [[host_name("x")]] [[kernel]] decltype(f<T>) f<T>;`: record, drop attributes."""
        end = k + 1
        while end < len(self.sig) and self.text(end) != ";":
            end += 1
        host_name = None
        j = k + 1
        items: list[int] = []
        while j < end:
            if self.text(j) == "[" and self.text(j + 1) == "[":
                a_end = self.attribute_end(j)
                for attr, _ in self.attributes(j, a_end):
                    if attr == "host_name":
                        lit = [self.text(x) for x in range(j, a_end) if self.tok(x).kind == "str"]
                        host_name = "".join(ast.literal_eval(s) for s in lit)
                self.blank(j, a_end)
                j = a_end + 1
                continue
            items.append(j)
            j += 1
        if host_name is not None:
            # The declarator id: after `decltype(...)`, or the template-id before the parameter list.
            if items and self.text(items[0]) == "decltype":
                close = self.match(items[1], "(", ")")
                ids = [x for x in items if x > close]
            else:
                paren = next(
                    (x for x in items if self.text(x) == "(" and self.text(x - 1) == ">"),
                    None,
                )
                if paren is None:
                    raise self.error(
                        k,
                        "cannot find the function of this [[host_name]] instantiation",
                    )
                ids = self.template_id_before(paren)
            function = " ".join(self.text(x) for x in ids)
            base = re.match(r"^\s*(?:::\s*)?(?:[A-Za-z_]\w*\s*::\s*)*([A-Za-z_]\w*)", function)
            if not base:
                raise self.error(k, "cannot find the function of this [[host_name]] instantiation")
            tok = self.tok(k)
            self.instantiations.append(
                Instantiation(
                    host_name,
                    function,
                    base.group(1),
                    self.namespace(braces),
                    tok.file,
                    tok.line,
                )
            )
        # Rewrite the remaining tokens of the statement (address spaces in full signatures).
        for x in items:
            if self.text(x) in ADDRESS_SPACES:
                self.set(x, ADDRESS_SPACES[self.text(x)])
        return end + 1

    def function_constant(self, k: int, end: int, braces: list[str]) -> None:
        """`constant T name [[function_constant(i)]];` -> a reference to the value the host set
        (the runtime reads the values before the TU's globals, which may derive from them, are
        initialised)."""
        if any(not b.startswith("namespace:") for b in braces) or self.text(end + 1) != ";":
            raise self.error(
                k,
                "[[function_constant(i)]] must declare a program-scope `constant T name`",
            )
        start = k - 1
        while self.text(start - 1) not in ("", ";", "{", "}"):
            start -= 1
        name = self.text(k - 1)
        if self.text(start) != "constant" or self.kind(k - 1) != "id" or k - 1 <= start + 1:
            raise self.error(
                k,
                "[[function_constant(i)]] must declare a program-scope `constant T name`",
            )
        (args,) = [a for n, a in self.attributes(k, end) if n == "function_constant"]
        index = self.int_value(args, k)
        self.set(k - 1, f"&{name}")
        self.set(
            end + 1,
            f" = *(decltype(&{name}))__msl_rt_function_constant({index}, sizeof({name}),"
            f' "{name}", __FILE__, __LINE__);',
        )

    def template_id_before(self, paren: int) -> list[int]:
        """Indices of the (qualified) template-id ending just before index `paren`."""
        depth = 0
        j = paren - 1
        while j >= 0:
            t = self.text(j)
            if t == ">":
                depth += 1
            elif t == "<":
                depth -= 1
                if depth == 0:
                    break
            j -= 1
        j -= 1  # the template's name
        while j - 2 >= 0 and self.text(j - 1) == "::" and self.tok(j - 2).kind == "id":
            j -= 2
        return list(range(j, paren))

    def threadgroup_storage(self, k: int) -> bool:
        """Kernel-scope `threadgroup T a[N], b;` -> references into runtime-shared memory."""
        end = k + 1
        depth = 0
        decl_breaks = []
        while end < len(self.sig):
            t = self.text(end)
            if t in ("(", "{"):
                if depth == 0:
                    return False  # an initializer or a function: not plain storage
                end = self.skip_group(end)
            elif t == "[":
                end = self.skip_group(end)
            elif t == "<":
                depth += 1
            elif t == ">":
                depth -= 1
            elif depth == 0 and t in ("*", "&", "&&", "="):
                return False  # a pointer/reference or an initialised variable
            elif depth == 0 and t == ",":
                decl_breaks.append(end)
            elif t == ";":
                break
            end += 1
        segments = []
        start = k + 1
        for b in decl_breaks + [end]:
            segments.append((start, b))
            start = b + 1
        keys = []
        for i, (a, b) in enumerate(segments):
            first_bracket = next((x for x in range(a, b) if self.text(x) == "["), b)
            name_k = first_bracket - 1
            if self.tok(name_k).kind != "id" or (i == 0 and name_k == a):
                raise self.error(k, "cannot parse this threadgroup declaration")
            name = self.text(name_k)
            key = f"__msl_tgk_{self.tg_keys}"
            self.tg_keys += 1
            keys.append(key)
            self.set(name_k, f"(&{name})")
            self.set(
                b - 1,
                self.out[self.sig[b - 1]]
                + f" = *(decltype(&{name}))__msl_rt_threadgroup_static(&{key}, sizeof({name}),"
                f' alignof(decltype({name})), "{name}", __FILE__, __LINE__)',
            )
        self.set(k, f"static __msl_tg_key {', '.join(keys)}; __msl_threadgroup")
        return True

    def template_type_params(self, open_: int, close: int) -> set[str]:
        """Names of the `typename T` / `class T` parameters of a template header."""
        names = set()
        j = open_ + 1
        while j < close:
            if (
                self.text(j) in ("typename", "class")
                and self.kind(j + 1) == "id"
                and self.text(j + 2) != "::"
            ):
                names.add(self.text(j + 1))
            j = self.skip_group(j)
            if self.text(j) == "<":
                j = self.match_angle(j)
            j += 1
        return names

    def record_alias(self, k: int) -> None:
        """Remember `typedef <vector type> name;` / `using name = <vector type>;`."""
        end = k + 1
        while end < len(self.sig) and self.text(end) not in (";", "{", "}"):
            end += 1
        if self.text(end) != ";":
            return
        if self.text(k) == "using":
            if self.text(k + 2) != "=":
                return
            name, body = self.text(k + 1), range(k + 3, end)
        else:
            name, body = self.text(end - 1), range(k + 1, end - 1)
        words = {self.text(j) for j in body}
        if words & VECTOR_TYPES or words & self.vector_aliases or "vec" in words:
            self.vector_aliases.add(name)

    def qualified_start(self, k: int) -> int:
        """Start of the qualified name ending at k (`A::B<C>::name`), including a leading `::`."""
        j = k
        while self.text(j - 1) == "::":
            before = j - 2
            if self.text(before) == ">":
                depth = 0
                while before >= 0:
                    if self.text(before) == ">":
                        depth += 1
                    elif self.text(before) == "<":
                        depth -= 1
                        if depth == 0:
                            break
                    before -= 1
                before -= 1
            if self.kind(before) != "id":
                return j - 1
            j = before
        return j

    def functional_cast(self, k: int) -> None:
        """`T(a, b)` for a type that may be a vector (template parameter, vector alias,
        `typename X::Y`) -> `__msl_construct<T>(a, b)`: a vector constructor for vectors, T(a, b)
        otherwise."""
        start = self.qualified_start(k)
        if self.text(start - 1) == "typename":
            start -= 1
        prev, after = self.text(start - 1), self.text(k + 2)
        if prev in (
            ".",
            "->",
            "operator",
            "~",
            ";",
            "{",
            "}",
            "typedef",
            "using",
            "struct",
            "class",
            "friend",
            "const",
        ):
            return  # a member, a declaration or a constructor definition, not a conversion
        if after in ("&", "*", "&&", "...") or (
            self.kind(start - 1) == "id" and prev not in ("return", "case")
        ):
            return  # a declarator `T (&x)` or a declaration `U T(...)`
        self.set(start, "__msl_construct<" + self.out[self.sig[start]])
        self.set(k, self.out[self.sig[k]] + ">")

    def qualifier_start(self, k: int) -> int:
        """Start of `metal::` / `::` before the name at k."""
        if self.text(k - 1) != "::":
            return k
        if self.text(k - 2) == "metal":
            return k - 3 if self.text(k - 3) == "::" else k - 2
        return k - 1 if self.kind(k - 2) != "id" else k

    def vector_constructor(self, k: int) -> None:
        """`float4(...)` / `vec<T, N>(...)` -> `__msl_vec_ctor<...>(...)`."""
        if self.text(k - 1) in ("operator", ".", "->", "using", "typedef", "struct"):
            return
        if self.text(k) == "vec":
            if self.text(k + 1) != "<":
                return
            last = self.match_angle(k + 1)
        else:
            last = k
        if self.text(last + 1) != "(":
            return
        start = self.qualifier_start(k)
        if start != k and self.text(k - 1) == "::" and self.text(start) not in ("::", "metal"):
            return
        self.set(start, "__msl_vec_ctor<" + self.out[self.sig[start]])
        self.set(last, self.out[self.sig[last]] + ">")

    def vector_static_cast(self, k: int) -> None:
        """`static_cast<float4>(x)` converts element-wise in MSL; clang would bitcast or refuse."""
        if self.text(k + 1) != "<":
            return
        close = self.match_angle(k + 1)
        inner = [self.text(x) for x in range(k + 2, close)]
        while inner and inner[0] in ("::", "metal"):
            inner = inner[1:]
        if inner and (
            (len(inner) == 1 and inner[0] in VECTOR_TYPES)
            or (inner[0] == "vec" and inner[1:2] == ["<"])
        ):
            self.set(k, "__msl_vec_ctor")

    def half_literal(self, k: int) -> None:
        t = self.text(k)
        m = _HALF_DECIMAL.match(t)
        if m:
            mantissa = m.group("m") if ("." in m.group("m") or m.group("e")) else m.group("m") + "."
            self.set(k, mantissa + (m.group("e") or "") + "f16")
            return
        m = _HALF_HEX.match(t)
        if m:
            self.set(k, m.group("m") + "f16")

    # Output.
    def registration(self) -> str:
        lines = ["", '# 1 "<msl-registration>"', "#include <msl/bind.h>"]
        for n, inst in enumerate(self.instantiations):
            kernel = self.kernels.get(inst.kernel)
            if kernel is None:
                raise RewriteError(
                    f"{inst.file}:{inst.line}: host name '{inst.host_name}' instantiates '{inst.function}', "
                    f"but no [[kernel]] function named '{inst.kernel}' was found"
                )
            args = []
            for p in kernel.params:
                param_type = f"__F::param<{p.index}>"
                if p.binding == "buffer":
                    optional = "true" if p.optional else "false"
                    args.append(
                        f'__msl_bind_buffer<{param_type}>(__inv, {p.slot}, "{p.name}", {optional})'
                    )
                elif p.binding == "threadgroup":
                    args.append(
                        f'__msl_bind_threadgroup<{param_type}>(__inv, {p.slot}, "{p.name}")'
                    )
                elif p.binding in POSITIONS:
                    scalar = "true" if POSITIONS[p.binding] else "false"
                    args.append(
                        f"__msl_bind_position<{param_type}, __MSL_POS_{p.binding}, {scalar}>(__inv)"
                    )
                else:
                    raise RewriteError(
                        f"{p.file}:{p.line}: kernel '{kernel.name}' parameter '{p.name}' has no [[buffer(i)]], "
                        "[[threadgroup(i)]] or position attribute"
                    )
            opens = "".join(f"namespace {ns} {{ " for ns in inst.namespace)
            closes = " }" * len(inst.namespace)
            function = inst.function
            body = (
                f"static void __msl_thunk_{n}(const __msl_invocation* __inv) {{ "
                f"typedef __msl_fn<decltype({function})> __F; "
                f'static_assert(__F::arity == {len(kernel.params)}, "msl rewrite: parameter count mismatch"); '
                f'static_assert(metal::is_void_v<__F::result>, "a [[kernel]] function must return void"); '
                f"{function}({', '.join(args)}); }} "
                f'static __msl_registrar __msl_registration_{n}("{inst.host_name}", &__msl_thunk_{n}, '
                f'"{function}", "{_c_escape(inst.file)}", {inst.line});'
            )
            lines.append(f'# {inst.line} "{_c_escape(inst.file)}"')
            lines.append(opens + body + closes)
        return "\n".join(lines) + "\n"

    def text_out(self) -> str:
        out = self.out
        for i, t in enumerate(self.tokens):
            if t.kind == "directive":
                m = _SHIM_MARKER_RE.match(t.text)
                if m:
                    out[i] = f"#include {m.group(1)}"
        return "#include <msl/prelude.h>\n" + "".join(out) + self.registration()


def _c_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def rewrite(preprocessed: str) -> Rewritten:
    """Rewrite the output of the preprocessing pass; raises RewriteError on unsupported source."""
    tokens = tokenize(preprocessed)
    r = _Rewriter(tokens)
    r.run()
    hosts: dict[str, Instantiation] = {}
    for inst in r.instantiations:
        if inst.host_name in hosts:
            first = hosts[inst.host_name]
            raise RewriteError(
                f"{inst.file}:{inst.line}: host name '{inst.host_name}' is already used by "
                f"'{first.function}' at {first.file}:{first.line}"
            )
        hosts[inst.host_name] = inst
    return Rewritten(r.text_out(), tokens, r.kernels, r.instantiations)
