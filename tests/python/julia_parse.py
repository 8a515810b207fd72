#!/usr/bin/env python3
"""Parses Julia files with tree-sitter-julia and reports every syntax error as file:line:column.

No Julia runtime exists on the build machines, so a typo in the Julia package would only show
when someone loads it. tree-sitter-julia is a real Julia grammar: code it cannot parse becomes an
ERROR node, and a token it had to assume (a closing parenthesis, say) a MISSING node. Each is a
syntax error here, and the exit status is 1 when there is any.

Usage: julia_parse.py FILE.jl...   (run with the interpreter of the venv that scripts/deps.sh
makes in target/julia-syntax-venv, which has tree-sitter and tree-sitter-julia)
"""
import sys

try:
    import tree_sitter_julia
    from tree_sitter import Language, Parser
except ImportError as missing:
    sys.exit(f"julia_parse.py: {missing}: run scripts/deps.sh, which installs tree-sitter and "
             "tree-sitter-julia into target/julia-syntax-venv")


def syntax_errors(tree):
    """(line, column, what) of each ERROR node not inside another, and of each MISSING node."""
    found = []
    pending = [(tree.root_node, False)]
    while pending:
        node, in_error = pending.pop()
        line, column = node.start_point.row + 1, node.start_point.column + 1
        if node.is_missing:
            found.append((line, column, f"missing {node.type!r}"))
        elif node.type == "ERROR" and not in_error:
            found.append((line, column, "code the Julia grammar cannot parse"))
        pending.extend((child, in_error or node.type == "ERROR") for child in node.children)
    return sorted(found)


def main(paths):
    if not paths:
        sys.exit(__doc__)
    parser = Parser(Language(tree_sitter_julia.language()))
    errors = 0
    for path in paths:
        with open(path, "rb") as f:
            source = f.read()
        lines = source.decode("utf-8", "replace").splitlines()
        for line, column, what in syntax_errors(parser.parse(source)):
            text = lines[line - 1].strip() if line <= len(lines) else ""
            print(f"{path}:{line}:{column}: syntax error: {what}: {text}")
            errors += 1
    print(f"julia syntax: {len(paths)} file(s) parsed, {errors} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
