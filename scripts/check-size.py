#!/usr/bin/env python3
"""Fail when a Rust file of the project is over 500 lines or a non-test
function is over 100 lines (issue 15's "fits on a screen" rule).

Usage: scripts/check-size.py [MAX_FN_LINES] [MAX_FILE_LINES]
A function is measured from its `fn` line to the closing brace at its own
indentation; a `#[cfg(test)] mod` ends the scan of its file. Trait method
declarations without a body are skipped.
"""
import os
import re
import sys

ROOTS = ["shared", "hub", "agent", "bench", "tests", "fuzz"]
MAX_FN = int(sys.argv[1]) if len(sys.argv) > 1 else 100
MAX_FILE = int(sys.argv[2]) if len(sys.argv) > 2 else 500
FN = re.compile(r"^(\s*)(pub(\([\w:]+\))? )?(async )?(unsafe )?fn (\w+)")


def check(path, lines):
    bad = []
    if len(lines) > MAX_FILE:
        bad.append(f"{path}: {len(lines)} lines (at most {MAX_FILE})")
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"\s*#\[cfg\(test\)\]", line) and i + 1 < len(lines) and re.match(r"\s*mod ", lines[i + 1]):
            break
        m = FN.match(line)
        if m:
            indent, name = m.group(1), m.group(6)
            # A declaration without a body (trait method) ends with `;`.
            j = i
            while j < len(lines) and "{" not in lines[j] and not lines[j].rstrip().endswith(";"):
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith(";") and "{" not in lines[j]:
                i = j + 1
                continue
            end = j
            while end < len(lines) and lines[end] != indent + "}" and not (
                end == j and lines[end].rstrip().endswith("}") and lines[end].count("{") == lines[end].count("}")
            ):
                end += 1
            n = end - i + 1
            is_test = i > 0 and ("#[test]" in lines[i - 1] or "tokio::test" in lines[i - 1])
            if n > MAX_FN and not is_test:
                bad.append(f"{path}:{i + 1}: fn {name} is {n} lines (at most {MAX_FN})")
            i = end
        i += 1
    return bad


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    bad = []
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "target"]
            for f in sorted(filenames):
                if f.endswith(".rs"):
                    p = os.path.join(dirpath, f)
                    with open(p, encoding="utf-8") as fh:
                        bad.extend(check(p, fh.read().split("\n")))
    for b in bad:
        print(b)
    if bad:
        print(f"check-size: {len(bad)} over the bounds", file=sys.stderr)
        sys.exit(1)
    print("check-size: every file and function within the bounds", file=sys.stderr)


if __name__ == "__main__":
    main()
