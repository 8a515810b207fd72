#!/usr/bin/env python3
"""Checks that the public API in the headers is documented.

Usage: scripts/check_api_docs.py [HEADER ...]
(default: include/mqttclient.h include/mqttclient.hpp)

A C header (.h): every function and type declared at file scope (or in its extern "C" block) has a
doc comment (/** */ or ///) right before it. A function that returns `enum mqttc_status` or a plain
int (which in this API carries a status when negative) ends its doc comment with an Errors
paragraph naming every status other than MQTTC_OK that it can return:

    Errors: MQTTC_ERR_NULL (client is NULL), MQTTC_ERR_INVALID_HANDLE (client freed).

("Errors: none." for one that cannot fail). The parenthesised "when" is optional. Every
MQTTC_ERR_* the paragraph names must be a value of enum mqttc_status in the same header, which
must therefore declare that enum. MQTTC_ERR_PANIC need not be listed: any call may return it.

A C++ header (.hpp): every class and struct outside a `detail` namespace (nested ones when
public) and every function at namespace scope (each name once, for all its overloads) has a doc
comment. Members are documented as the header groups them and are not checked one by one.

Prints each problem as FILE:LINE: NAME: WHAT and exits 1 if there is any.
"""
import re
import sys
from collections import namedtuple
from pathlib import Path

STATUS_ENUM = "mqttc_status"


def strip_code(text):
    """Splits a header into its code, with comments, string contents and preprocessor lines
    blanked (newlines kept, so that offsets and line numbers still match), and its doc comments,
    as a map from the offset where each ends to its text."""
    code = list(text)
    docs = {}  # end offset -> text
    slash_end = None  # where the last /// comment ends, which the next line may extend
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" and is_blank(text[text.rfind("\n", 0, i) + 1 : i]):
            # A preprocessor line, with its continuations.
            j = i
            while j < n and (text[j] != "\n" or text[j - 1] == "\\"):
                j += 1
            blank(code, i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            if text.startswith("/**", i) and not text.startswith("/**/", i):
                docs[j] = comment_text(text[i + 3 : j - 2])
            blank(code, i, j)
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            if text.startswith("///", i) and not text.startswith("///<", i):
                line = text[i + 3 : j].strip()
                if slash_end is not None and text[slash_end:i].strip(" \t") == "\n":
                    # The next line of the same /// comment.
                    line = docs.pop(slash_end) + "\n" + line
                docs[j] = line
                slash_end = j
            blank(code, i, j)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            blank(code, i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(code), docs


def blank(code, start, end):
    for k in range(start, min(end, len(code))):
        if code[k] != "\n":
            code[k] = " "


def is_blank(s):
    return s.strip() == ""


def comment_text(body):
    """The text of a /** */ comment: each line without its leading `*`."""
    lines = []
    for line in body.split("\n"):
        line = line.strip()
        if line.startswith("*"):
            line = line[1:].strip()
        lines.append(line)
    return "\n".join(lines).strip()


# A function (declared or defined), type or class: its declaration up to its body or `;` (head),
# the doc comment right before it (or None), and the scope it is in: (kind, name, access), kind
# "ns" or "class".
Item = namedtuple("Item", "kind name line doc head scope")


def scan(path, text):
    """The items of a header. A scope is [kind, name, access, is_type]: kind "ns" (a namespace,
    an extern "C" block, the file), "class", or "block" (a function body, an enum, a C struct),
    whose contents are not items."""
    code, docs = strip_code(text)
    items = []
    stack = [["ns", "", "public", False]]
    head_start = 0
    skip_tail = False  # after a type's closing brace: `} name;` declares nothing new

    def doc_before(pos):
        j = pos
        while j > 0 and text[j - 1] in " \t\n":
            j -= 1
        return docs.get(j)

    def add(kind, name, start, head, scope):
        line = text.count("\n", 0, start) + 1
        items.append(Item(kind, name, line, doc_before(start), head, tuple(scope[:3])))

    for i, c in enumerate(code):
        if c not in "{};":
            continue
        raw = code[head_start:i]
        start = head_start + len(raw) - len(raw.lstrip())
        head = " ".join(raw.split())
        head_start = i + 1
        scope = stack[-1]
        if scope[0] == "class":
            # Access labels end no statement: they lead the head that follows them.
            while m := re.match(r"(public|private|protected)\s*:(?!:)\s*", head):
                scope[2] = m.group(1)
                head = head[m.end() :]
                start = text.find(head.split(" ")[0], start) if head else start
        if c == "}":
            closed = stack.pop() if len(stack) > 1 else stack[0]
            skip_tail = closed[3]
            continue
        if scope[0] == "block" or (c == ";" and skip_tail):
            skip_tail = False
            if c == "{":
                stack.append(["block", "", "public", False])
            continue
        skip_tail = False
        kind, name = classify(head, c)
        if kind in ("class", "type", "function", "typedef"):
            add(kind, name, start, head, scope)
        if c == "{":
            if kind == "ns":
                stack.append(["ns", name, "public", False])
            elif kind == "extern":
                stack.append(["ns", scope[1], "public", False])
            elif kind == "class":
                access = "private" if strip_template(head).startswith("class") else "public"
                stack.append(["class", name, access, True])
            else:
                stack.append(["block", name, "public", kind == "type"])
    if len(stack) != 1:
        kind, name = stack[-1][:2]
        raise SystemExit(f"{path}: unbalanced braces (a {kind} {name!r} is not closed)")
    return items


def classify(head, opener):
    """What a declaration head ended by `opener` ("{" or ";") introduces: (kind, name), kind one
    of ns, extern, class (C++), type (a C struct or enum, or an enum), typedef, function, other."""
    m = re.match(r"namespace\s*(\w*)", head)
    if m:
        return "ns", m.group(1)
    if re.match(r'extern\s*"\s*"', head):
        return "extern", ""
    t = strip_template(head)
    if t.startswith("typedef"):
        if opener == "{":
            m = re.match(r"typedef\s+(?:struct|union|enum)\s+(\w+)", t)
            return "type", m.group(1) if m else ""
        return "typedef", typedef_name(t)
    m = re.match(r"(class|struct|union|enum(?:\s+class|\s+struct)?)\s+(\w+)", t)
    if m and opener == "{":
        return ("type" if m.group(1).startswith("enum") else "class"), m.group(2)
    if re.match(r"(using|friend|static_assert)\b", t):
        return "other", ""
    m = re.match(r"[^()=]*?(operator\s*\S+?|[\w:~]+)\s*\(", t)
    if m:
        return "function", m.group(1)
    return "other", ""


def strip_template(h):
    """`h` without a leading template <...> (balanced angle brackets)."""
    while h.startswith("template"):
        depth, j = 0, len("template")
        while j < len(h):
            if h[j] == "<":
                depth += 1
            elif h[j] == ">":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        h = h[j + 1 :].strip()
    return h


def typedef_name(t):
    m = re.search(r"\(\s*\*\s*(\w+)\s*\)", t)
    return m.group(1) if m else re.findall(r"\w+", t)[-1]


def returns_status(item):
    ret = strip_template(item.head)
    ret = ret[: ret.find(item.name)].strip()
    plain_int = ret in ("int", "int32_t", "signed int")
    return bool(re.search(r"\b" + STATUS_ENUM + r"\b", ret)) or plain_int


def status_names(text):
    """The values of enum mqttc_status in a C header."""
    m = re.search(r"enum\s+" + STATUS_ENUM + r"\s*\{(.*?)\}", strip_code(text)[0], re.S)
    return set(re.findall(r"\b(MQTTC_\w+)\s*=", m.group(1))) if m else set()


def top_level(text):
    """`text` without its parenthesised parts."""
    out, depth = [], 0
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(c)
    return "".join(out)


def check_errors(item, statuses):
    """Problems with a status-returning function's Errors paragraph."""
    paragraphs = [p for p in re.split(r"\n\s*\n", item.doc) if p.strip()]
    if not paragraphs[-1].startswith("Errors:"):
        if any(p.startswith("Errors:") for p in paragraphs):
            return ["the Errors paragraph is not the last one of its doc comment"]
        return ["returns a status, but its doc comment does not end with an Errors paragraph"]
    para = " ".join(paragraphs[-1][len("Errors:") :].split())
    if para.rstrip(".").strip().lower() == "none":
        return []
    problems = []
    for name in re.findall(r"\bMQTTC_ERR_\w*", para):
        if name not in statuses:
            problems.append(f"Errors names {name}, which is not a value of enum {STATUS_ENUM}")
    listed = re.findall(r"\bMQTTC_\w+", top_level(para))
    if not listed:
        problems.append('the Errors paragraph names no status ("Errors: none." if it cannot fail)')
    for name in listed:
        if name == "MQTTC_OK":
            problems.append("Errors lists MQTTC_OK, which is no error")
        elif name not in statuses and not name.startswith("MQTTC_ERR_"):
            problems.append(f"Errors lists {name}, which is not a value of enum {STATUS_ENUM}")
    for name in sorted({n for n in listed if listed.count(n) > 1}):
        problems.append(f"Errors lists {name} twice")
    return problems


def public_scope(scope):
    kind, name, access = scope
    return name not in ("detail", "std") and (kind == "ns" or access == "public")


def check_c(path, text):
    statuses = status_names(text)
    problems, counts = [], {"functions": 0, "types": 0}
    if not statuses:
        problems.append((1, STATUS_ENUM, f"no enum {STATUS_ENUM} in this header"))
    for item in scan(path, text):
        if item.scope[0] != "ns" or item.kind not in ("function", "type", "class", "typedef"):
            continue
        counts["functions" if item.kind == "function" else "types"] += 1
        if not item.doc:
            problems.append((item.line, item.name, f"the {item.kind} has no doc comment"))
        elif item.kind == "function" and returns_status(item):
            problems.extend((item.line, item.name, p) for p in check_errors(item, statuses))
    return problems, counts


def check_cpp(path, text):
    problems, counts = [], {"functions": 0, "types": 0}
    documented, first = set(), {}
    for item in scan(path, text):
        if not public_scope(item.scope) or "::" in item.name:
            continue
        if item.kind in ("class", "type"):
            counts["types"] += 1
            if not item.doc:
                problems.append((item.line, item.name, f"the {item.kind} has no doc comment"))
        elif item.kind == "function" and item.scope[0] == "ns":
            key = (item.scope[1], item.name)
            first.setdefault(key, item)
            if item.doc:
                documented.add(key)
    for key, item in first.items():
        counts["functions"] += 1
        if key not in documented:
            what = "the function has no doc comment (on any overload)"
            problems.append((item.line, item.name, what))
    return problems, counts


def main(argv):
    root = Path(__file__).resolve().parent.parent
    headers = ("mqttclient.h", "mqttclient.hpp")
    paths = [Path(a) for a in argv] or [root / "include" / h for h in headers]
    failed = False
    for path in paths:
        text = path.read_text(encoding="utf-8")
        check = check_cpp if path.suffix in (".hpp", ".hh", ".hxx") else check_c
        problems, counts = check(path, text)
        for line, name, what in sorted(problems):
            print(f"{path}:{line}: {name}: {what}")
        failed |= bool(problems)
        state = f"{len(problems)} problem(s)" if problems else "all documented"
        found = f"{counts['functions']} functions, {counts['types']} types"
        print(f"check_api_docs: {path.name}: {found}: {state}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
