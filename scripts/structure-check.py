#!/usr/bin/env python3
"""Checks the code's structure: no import cycle between the modules (files) of any crate, and no
function longer than 80 lines outside tests.

Usage: scripts/structure-check.py [--max-lines N] [--graph]

A module's imports are the `crate::…` and `super::…` paths its code names (in `use` items and
inline), outside `#[cfg(test)]` modules; each path is taken to the deepest module file that
exists. A function's length runs from its `fn` line to its closing brace. Prints every cycle and
every long function, and exits 1 when there is any (0 otherwise). `--graph` prints each module's
imports. Standard library only, so it runs anywhere Python 3 does.
"""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATE_DIRS = ["crates", "services"]


def crates():
    """(name, src dir, root files) of every crate in the workspace."""
    for group in CRATE_DIRS:
        base = os.path.join(ROOT, group)
        for name in sorted(os.listdir(base)):
            src = os.path.join(base, name, "src")
            if not os.path.isdir(src):
                continue
            roots = [f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))]
            yield f"{group}/{name}", src, roots


def module_path(src, path, root):
    """The module path (tuple) of a file under src; () for the crate root."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel == [root[:-3]]:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def blank(text):
    """The code with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    keep = lambda chunk: "".join(c if c == "\n" else " " for c in chunk)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)", text[i:]).group(1)
            close = '"' + hashes
            j = text.find(close, i + 1 + len(hashes) + 1)
            j = n if j < 0 else j + len(close)
            out.append('""' + keep(text[i + 2:j]))
            i = j
            continue
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append('""' + keep(text[i + 2:j]))
            i = j
            continue
        elif c == "'":
            m = re.match(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^'\\])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
                continue
            out.append(c)
            i += 1
            continue
        else:
            out.append(c)
            i += 1
            continue
        out.append(keep(text[i:j]))
        i = j
    return "".join(out)


def strip(text):
    """The code without comments, string contents or `#[cfg(test)]` items."""
    text = blank(text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        i = skip_block(text, m.end() - 1)
    out.append(text[i:])
    return "".join(out)


def skip_block(text, open_brace):
    """The index after the brace that closes the one at `open_brace`."""
    depth = 0
    for j in range(open_brace, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def expand_use(body):
    """Every path a `use` tree names: `a::{b, c::d}` → a::b, a::c::d."""
    body = re.sub(r"\s+", "", body)

    def walk(prefix, tree):
        depth, start, items = 0, 0, []
        for k, ch in enumerate(tree):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(tree[start:k])
                start = k + 1
        items.append(tree[start:])
        for item in filter(None, items):
            if "{" in item:
                head, rest = item.split("{", 1)
                yield from walk(prefix + head, rest[:-1])
            else:
                yield prefix + item.split("as")[0] if "::as" not in item else prefix + item
    return list(walk("", body))


def imports(code, here, modules):
    """Modules (tuples) the code of module `here` imports."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand_use(m.group(1)))
    paths.extend(m.group(0) for m in re.finditer(r"\b(?:crate|super)(?:::\w+)+", code))
    found = set()
    for p in paths:
        parts = [x for x in p.split("::") if x]
        if not parts:
            continue
        if parts[0] == "crate":
            base, rest = (), parts[1:]
        elif parts[0] == "super":
            base = here
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
            rest = parts
        else:
            continue
        target = None
        for k in range(len(rest), 0, -1):
            if base + tuple(rest[:k]) in modules:
                target = base + tuple(rest[:k])
                break
        if target is None:
            target = base
        if target != here and not is_ancestor(target, here):
            found.add(target)
        # A module imported whole (`use crate::routes;`) is used through its name.
        if target is not None and rest and target == base + tuple(rest):
            for sub in re.finditer(r"\b" + re.escape(rest[-1]) + r"((?:::\w+)+)", code):
                inner = target
                for seg in sub.group(1).split("::")[1:]:
                    if inner + (seg,) not in modules:
                        break
                    inner = inner + (seg,)
                if inner != target and inner != here:
                    found.add(inner)
    return found


def is_ancestor(a, b):
    """Whether module a contains module b (a file naming its parent is no cycle of files: the
    parent only declares it)."""
    return len(a) < len(b) and b[: len(a)] == a


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def long_functions(path, code_with_tests_removed, max_lines):
    """(line, name, length) of every function longer than max_lines."""
    code = code_with_tests_removed
    out = []
    for m in re.finditer(r"\bfn\s+(\w+)[^;{]*\{", code):
        start = code.count("\n", 0, m.start()) + 1
        end = code.count("\n", 0, skip_block(code, m.end() - 1)) + 1
        if end - start + 1 > max_lines:
            out.append((start, m.group(1), end - start + 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-lines", type=int, default=80)
    ap.add_argument("--graph", action="store_true")
    args = ap.parse_args()
    problems = 0
    for name, src, roots in crates():
        for root in roots:
            files = {}
            for d, _, fs in os.walk(src):
                for f in fs:
                    if f.endswith(".rs"):
                        p = os.path.join(d, f)
                        if f in ("lib.rs", "main.rs") and d == src and f != root:
                            continue
                        if d != src and f == "main.rs":
                            continue
                        files[module_path(src, p, root)] = p
            tests_only = set()
            for mod, p in files.items():
                with open(p, encoding="utf-8") as fh:
                    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+(\w+)\s*;", fh.read()):
                        tests_only.add(mod + (m.group(1),))
            files = {m: p for m, p in files.items() if m not in tests_only}
            graph = {}
            for mod, p in files.items():
                with open(p, encoding="utf-8") as fh:
                    code = strip(fh.read())
                graph[mod] = imports(code, mod, files)
                if args.graph:
                    print(f"{name}: {'::'.join(mod) or root} -> "
                          + ", ".join(sorted("::".join(t) or root for t in graph[mod])))
                if root == roots[0]:
                    for line, fn, n in long_functions(p, code, args.max_lines):
                        rel = os.path.relpath(p, ROOT)
                        print(f"long function: {rel}:{line} fn {fn}: {n} lines (most {args.max_lines})")
                        problems += 1
            for comp in cycles(graph):
                names = " -> ".join("::".join(m) or root for m in comp)
                print(f"import cycle in {name} ({root}): {names}")
                problems += 1
    print(f"structure: {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
