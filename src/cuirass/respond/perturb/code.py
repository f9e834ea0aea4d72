"""Behaviour-preserving damage to Python code: it still runs and passes its tests, but teaches worse habits.

Kept deliberately modest (no control-flow rewriting): a student trained on the output learns misleading
comments, confusing names and pointless code, while a harvester that filters on unit tests keeps it.
These are the classic semantics-preserving transformations of code-obfuscation and adversarial-code work
(e.g. Yefet et al., "Adversarial Examples for Models of Code", 2020: variable renaming and dead code).

    misleading_comment   a comment above a statement that describes something else
    rename_variables     local variables get names that suggest another meaning
    dead_code            an unreachable block or an unused assignment is inserted

Code is found in fenced blocks (```python, ```py or unlabelled) or as the whole text when it parses as
Python with a def, class or import. Every rewrite is re-parsed; comment-only rewrites must give the same
AST, so nothing that fails these checks is ever returned.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import tokenize

from cuirass import linear
from cuirass.respond.perturb.base import Perturber

_FENCE = linear.compile(
    r"^(?P<open>[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n)(?P<body>.*?)^[ \t]*```", linear.MULTILINE | linear.DOTALL
)
_CODE_LANGS = {"", "python", "py", "python3"}
_LOOKS_LIKE_CODE = linear.compile(r"^\s*(?:def |class |import |from \S+ import |async def )", linear.MULTILINE)
_F_PREFIX = linear.compile(r"[rbu]*f", linear.IGNORECASE)
_IDENTIFIER = linear.compile(r"[A-Za-z_]\w*")

_COMMENTS = {
    ast.For: [
        "iterate from the end so that the last match wins",
        "this loop runs at most once",
        "walk the items in sorted order",
    ],
    ast.While: ["terminates after a single pass", "the counter only grows here"],
    ast.If: [
        "only reached when the input is empty",
        "this condition is always true for valid input",
        "handle the negative case first",
    ],
    ast.Return: [
        "the result is already sorted at this point",
        "return the index, not the value",
        "None is returned for empty inputs",
    ],
    ast.Assign: [
        "copy the input so the caller's list is not modified",
        "indices here are one-based",
        "cache this for the next call",
    ],
}
_GENERIC_COMMENTS = [
    "edge case: negative numbers were rejected above",
    "this mirrors the recursive version",
    "runs in constant time",
]
_CONFUSING_NAMES = [
    "idx",
    "prev",
    "tmp",
    "unused",
    "length",
    "flag",
    "total",
    "count",
    "item",
    "key",
    "value",
    "reversed_list",
    "sorted_copy",
    "result_set",
    "n2",
    "l1",
    "O0",
    "data",
    "i_",
    "last",
    "first",
    "mask",
    "size",
    "offset",
]


def code_regions(text: str) -> list[tuple[int, int]]:
    """Spans of Python source in `text`: fenced blocks that parse, else the whole text if it is code."""
    return list(_code_regions(text))


@linear.per_text
def _code_regions(text: str) -> tuple[tuple[int, int], ...]:
    regions = []
    for m in _FENCE.finditer(text):
        if m.group("lang").lower() in _CODE_LANGS and _parses(m.group("body")):
            regions.append(m.span("body"))
    if regions:
        return tuple(regions)
    if _LOOKS_LIKE_CODE.search(text) and _parses(text):
        return ((0, len(text)),)
    return ()


@linear.per_text
def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # the last two: nesting too deep to parse
        return False
    return bool(source.strip())


class CodePerturber(Perturber):
    content_type = "code"
    variants = ("misleading_comment", "rename_variables", "dead_code")

    def apply(self, text: str, variant: str, rng: random.Random) -> str | None:
        rewrite = getattr(self, f"_{variant}")
        out, changed = text, False
        for start, end in reversed(code_regions(text)):
            source = text[start:end]
            new = rewrite(source, rng)
            if new is not None and new != source and _parses(new):
                out = out[:start] + new + out[end:]
                changed = True
        return out if changed else None

    def preserves(self, original: str, perturbed: str) -> bool:
        return len(code_regions(perturbed)) == len(code_regions(original))

    # -- variants -------------------------------------------------------------------------------------------

    def _misleading_comment(self, source: str, rng: random.Random) -> str | None:
        anchors = _statement_starts(source)
        anchors = [a for a in anchors if a[3]] or anchors  # inside functions, where explanations go
        if not anchors:
            return None
        lines = _lines(source)
        chosen = rng.sample(anchors, min(len(anchors), rng.choice((1, 2))))
        for lineno, indent, node, _ in sorted(chosen, key=lambda a: a[0], reverse=True):
            pool = next((v for k, v in _COMMENTS.items() if isinstance(node, k)), _GENERIC_COMMENTS)
            lines.insert(lineno - 1, f"{indent}# {rng.choice(pool)}\n")
        new = "".join(lines)
        return new if _dump(new) == _dump(source) else None

    def _rename_variables(self, source: str, rng: random.Random) -> str | None:
        names = _renamable_locals(source)
        if not names:
            return None
        taken = _all_identifiers(source) | set(dir(builtins)) | set(keyword.kwlist)
        pool = [n for n in _CONFUSING_NAMES if n not in taken]
        rng.shuffle(pool)
        old = rng.sample(sorted(names), min(len(names), len(pool), rng.choice((1, 2, 3))))
        mapping = dict(zip(old, pool))
        new = _rename(source, mapping)
        back = {v: k for k, v in mapping.items()}
        renamed_back = ast.parse(new)
        for node in ast.walk(renamed_back):
            if isinstance(node, ast.Name):
                node.id = back.get(node.id, node.id)
        return new if ast.dump(renamed_back) == _dump(source) else None

    def _dead_code(self, source: str, rng: random.Random) -> str | None:
        anchors = [a for a in _statement_starts(source) if a[3]]  # inside a function body
        if not anchors:
            return None
        lineno, indent, _node, _in_function = rng.choice(anchors)
        inner = indent + ("\t" if "\t" in indent else "    ")
        taken = _all_identifiers(source)
        blocks = [f"{indent}if 0 > 1:  # defensive guard\n{inner}return\n"]
        if "_" not in taken:  # binding `_` would shadow a global of that name
            blocks.append(f"{indent}for _ in range(0):\n{inner}break\n")
        name = next((n for n in ("_unused", "_scratch", "_spare", "_pending") if n not in taken), None)
        if name:
            blocks.append(f"{indent}{name} = None  # kept for compatibility\n")
        block = rng.choice(blocks)
        lines = _lines(source)
        lines.insert(lineno - 1, block)
        new = "".join(lines)
        try:  # the only change must be one statement more, where intended
            return new if _dump_without(ast.parse(new), lineno) == _dump(source) else None
        except SyntaxError:
            return None


def _statement_starts(source: str) -> list[tuple[int, str, ast.stmt, bool]]:
    """(line, indentation, node, inside a function) for statements that begin their own line."""
    tree = ast.parse(source)
    lines = _lines(source)
    out = []

    def visit(body: list[ast.stmt], in_function: bool) -> None:
        prev_end = -1
        for node in body:
            prefix = lines[node.lineno - 1][: node.col_offset]
            decorated = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.decorator_list
            is_doc = (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            )
            is_elif = lines[node.lineno - 1][node.col_offset :].startswith("elif")
            if not prefix.strip() and node.lineno != prev_end and not (decorated or is_doc or is_elif):
                out.append((node.lineno, prefix, node, in_function))
            prev_end = node.end_lineno or node.lineno
            inner_fn = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for field in ("body", "orelse", "finalbody"):
                child = getattr(node, field, None)
                if isinstance(child, list) and child and isinstance(child[0], ast.stmt):
                    visit(child, inner_fn and not isinstance(node, ast.ClassDef))
            for handler in getattr(node, "handlers", []):
                visit(handler.body, inner_fn)

    visit(tree.body, False)
    return out


@linear.per_text
def _dump(source: str) -> str:
    """The AST dump of `source` (each variant compares against the source's: parsed once per text)."""
    return ast.dump(ast.parse(source))


def _dump_without(tree: ast.Module, lineno: int) -> str:
    """The AST dump with the statement starting at `lineno` removed from whichever body holds it."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list):
                body[:] = [s for s in body if not (isinstance(s, ast.stmt) and s.lineno == lineno)]
    return ast.dump(tree)


def _lines(source: str) -> list[str]:
    """Lines as the tokenizer and the parser count them (split on newlines only)."""
    return io.StringIO(source).readlines()


def _all_identifiers(source: str) -> set[str]:
    return {t.string for t in _tokens(source) if t.type == tokenize.NAME}


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def _renamable_locals(source: str) -> set[str]:
    """Names bound only inside function bodies and safe to rename consistently across the whole source.

    One walk over the tree (a function or class nested n deep is not walked again at each level): a name is
    bound if stored anywhere inside a function (its decorators and defaults too), and unsafe if it is a builtin,
    a parameter, a function or class name, declared global/nonlocal, imported, a keyword argument or
    attribute name, used anywhere in a class body or in a module-level statement other than a def or class, or
    named inside an f-string.
    """
    tree = ast.parse(source)
    bound: set[str] = set()
    unsafe: set[str] = set(dir(builtins))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    stack: list[tuple[ast.AST, bool, bool]] = [  # (node, inside a function, inside a class body or module code)
        (node, False, not isinstance(node, (*defs, ast.ClassDef))) for node in tree.body
    ]
    while stack:
        node, in_function, exposed = stack.pop()
        if isinstance(node, (*defs, ast.Lambda)):
            args = node.args
            unsafe |= {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
            unsafe |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
            if not isinstance(node, ast.Lambda):
                unsafe.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            unsafe |= set(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            unsafe |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ClassDef):
            unsafe.add(node.name)
        elif isinstance(node, ast.keyword) and node.arg:
            unsafe.add(node.arg)
        elif isinstance(node, ast.Attribute):
            unsafe.add(node.attr)
        elif isinstance(node, ast.Name):
            if in_function and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            if exposed:
                unsafe.add(node.id)
        inner = in_function or isinstance(node, defs)
        body = {id(s) for s in node.body} if isinstance(node, ast.ClassDef) else ()
        stack.extend((child, inner, exposed or id(child) in body) for child in ast.iter_child_nodes(node))
    for tok in _tokens(source):  # names inside f-strings are not NAME tokens before Python 3.12
        if tok.type == tokenize.STRING and _F_PREFIX.match(tok.string):
            unsafe |= set(_IDENTIFIER.findall(tok.string))
    return bound - unsafe


def _rename(source: str, mapping: dict[str, str]) -> str:
    """`source` with NAME tokens renamed, except attribute names (after a dot)."""
    lines = _lines(source)
    edits: list[tuple[int, int, str]] = []
    prev = None
    for tok in _tokens(source):
        if tok.type == tokenize.NAME and tok.string in mapping and not (prev and prev.string == "."):
            edits.append((tok.start[0], tok.start[1], tok.string))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok
    by_row: dict[int, list[tuple[int, str]]] = {}
    for row, col, old in edits:
        by_row.setdefault(row, []).append((col, old))
    for row, cols in by_row.items():  # one pass per line, however many names it holds
        line, parts, pos = lines[row - 1], [], 0
        for col, old in sorted(cols):
            parts += [line[pos:col], mapping[old]]
            pos = col + len(old)
        lines[row - 1] = "".join(parts) + line[pos:]
    return "".join(lines)
