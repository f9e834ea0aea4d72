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
import re
import tokenize

from cuirass.respond.perturb.base import Perturber

_FENCE = re.compile(r"^(?P<open>[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n)(?P<body>.*?)^[ \t]*```", re.M | re.S)
_CODE_LANGS = {"", "python", "py", "python3"}
_LOOKS_LIKE_CODE = re.compile(r"^\s*(?:def |class |import |from \S+ import |async def )", re.M)

_COMMENTS = {
    ast.For: ["iterate from the end so that the last match wins", "this loop runs at most once",
              "walk the items in sorted order"],
    ast.While: ["terminates after a single pass", "the counter only grows here"],
    ast.If: ["only reached when the input is empty", "this condition is always true for valid input",
             "handle the negative case first"],
    ast.Return: ["the result is already sorted at this point", "return the index, not the value",
                 "None is returned for empty inputs"],
    ast.Assign: ["copy the input so the caller's list is not modified", "indices here are one-based",
                 "cache this for the next call"],
}
_GENERIC_COMMENTS = ["edge case: negative numbers were rejected above", "this mirrors the recursive version",
                     "runs in constant time"]
_CONFUSING_NAMES = ["idx", "prev", "tmp", "unused", "length", "flag", "total", "count", "item", "key",
                    "value", "reversed_list", "sorted_copy", "result_set", "n2", "l1", "O0", "data", "i_",
                    "last", "first", "mask", "size", "offset"]


def code_regions(text: str) -> list[tuple[int, int]]:
    """Spans of Python source in `text`: fenced blocks that parse, else the whole text if it is code."""
    regions = []
    for m in _FENCE.finditer(text):
        if m.group("lang").lower() in _CODE_LANGS and _parses(m.group("body")):
            regions.append(m.span("body"))
    if regions:
        return regions
    if _LOOKS_LIKE_CODE.search(text) and _parses(text):
        return [(0, len(text))]
    return []


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
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
        return new if ast.dump(ast.parse(new)) == ast.dump(ast.parse(source)) else None

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
        return new if ast.dump(renamed_back) == ast.dump(ast.parse(source)) else None

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
            return new if _dump_without(ast.parse(new), lineno) == ast.dump(ast.parse(source)) else None
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
            is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
                node.value.value, str)
            is_elif = lines[node.lineno - 1][node.col_offset:].startswith("elif")
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
    """Names bound only inside function bodies and safe to rename consistently across the whole source."""
    tree = ast.parse(source)
    bound: set[str] = set()
    unsafe: set[str] = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            unsafe |= {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
            unsafe |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
            if not isinstance(node, ast.Lambda):
                unsafe.add(node.name)
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                        bound.add(sub.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            unsafe |= set(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            unsafe |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ClassDef):
            unsafe.add(node.name)
            unsafe |= {t.id for s in node.body for t in ast.walk(s) if isinstance(t, ast.Name)}
        elif isinstance(node, ast.keyword) and node.arg:
            unsafe.add(node.arg)
        elif isinstance(node, ast.Attribute):
            unsafe.add(node.attr)
    for node in tree.body:  # module-level bindings are globals that functions may read
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            unsafe |= {t.id for t in ast.walk(node) if isinstance(t, ast.Name)}
    for tok in _tokens(source):  # names inside f-strings are not NAME tokens before Python 3.12
        if tok.type == tokenize.STRING and re.match(r"(?i)[rbu]*f", tok.string):
            unsafe |= set(re.findall(r"[A-Za-z_]\w*", tok.string))
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
    for row, col, old in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + mapping[old] + line[col + len(old):]
    return "".join(lines)
