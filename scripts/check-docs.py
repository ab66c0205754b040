#!/usr/bin/env python3
"""The docs say only what holds: run by scripts/check-map.sh.

- Links: every relative Markdown link in the repository's Markdown files
  (tracked, or new and not ignored) points at a file or folder that exists
  inside the repository, and its #anchor, if the target is Markdown, at a
  heading it has (GitHub's slugs) or an explicit `<a id=...>`/`name=`.
  Links inside code (fenced blocks, `spans`) are text, not links.
- Every file in docs/ is linked from README.md.
- The reference docs (README.md, docs/, infra/README.md) describe what is
  true now: no issue number, commit hash or date (history lives in git),
  and the README keeps to 300 lines (detail goes to docs/).
- Panic strategy: each `panic = "..."` the reference docs state (README.md,
  docs/, infra/README.md) is Cargo.toml's `[profile.release]` value, and
  they state it at least once.

  scripts/check-docs.py [ROOT]     check the repository (default: this one)
  scripts/check-docs.py --self-test  prove both checks fail on broken fixtures

Standard library only: it runs before any venv exists.
"""

import os
import re
import subprocess
import sys
import tempfile
import unicodedata

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
# [text](target) and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+[\"'(][^)]*)?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
PANIC_STATEMENT = re.compile(r"panic\s*=\s*\"([a-z]+)\"")
README_MAX_LINES = 300
HISTORY = [
    (re.compile(r"\b(?:issues?|PR|pull request)\s*#?\d+|(?<![\w&/])#\d+\b", re.I), "an issue number"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"), "a commit hash"),
    (re.compile(r"(?<![\w-])20\d\d-[01]\d-[0-3]\d\b"), "a date"),  # not AWS::Serverless-2016-10-31
]
REFERENCE_DOCS = re.compile(r"^(README\.md|docs/[^/]+\.md|infra/README\.md)$")


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        match = FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
                continue
            if marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker):]:
                fence = None
                continue
        if fence is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: its rendered text, lower-cased, with
    every character but letters, digits, `_`, `-` and spaces dropped and
    spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").lower()
    kept = "".join(
        ch for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Mn"
    )
    return kept.replace(" ", "-")


def anchors(text):
    """Every anchor a Markdown file offers, duplicates numbered as GitHub does."""
    seen = {}
    found = set()
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(text):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        line = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)
        match = REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1)


def check_links(root, files):
    """Each broken link as 'file:line: target: why'."""
    root = os.path.realpath(root)
    anchor_cache = {}
    problems = []
    for name in files:
        path = os.path.join(root, name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for number, target in links(text):
            target = target.strip("<>")
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            file_part, _, anchor = target.partition("#")
            where = f"{name}:{number}: {target}"
            if file_part.startswith("/"):
                problems.append(f"{where}: an absolute path; link relative to the file")
                continue
            resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if resolved != root and not resolved.startswith(root + os.sep):
                problems.append(f"{where}: points outside the repository")
                continue
            if not os.path.exists(resolved):
                problems.append(f"{where}: no such file")
                continue
            if not anchor or not resolved.endswith(".md") or os.path.isdir(resolved):
                continue
            if resolved not in anchor_cache:
                with open(resolved, encoding="utf-8") as handle:
                    anchor_cache[resolved] = anchors(handle.read())
            if anchor not in anchor_cache[resolved]:
                problems.append(f"{where}: no heading with anchor #{anchor} in {os.path.relpath(resolved, root)}")
    return problems


def check_docs_linked(root, files):
    """Each Markdown file in docs/ that README.md does not link to."""
    with open(os.path.join(root, "README.md"), encoding="utf-8") as handle:
        linked = {
            os.path.normpath(target.strip("<>").partition("#")[0])
            for _, target in links(handle.read())
        }
    return [
        f"README.md links to no {name}: every file in docs/ is linked from the README"
        for name in files
        if re.match(r"^docs/[^/]+\.md$", name) and name not in linked
    ]


def check_present_tense(root, files):
    """Issue numbers, commit hashes and dates in the reference docs, and a
    README over its length."""
    problems = []
    for name in files:
        if not REFERENCE_DOCS.match(name):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            text = handle.read()
        for number, line in enumerate(text.split("\n"), 1):
            for pattern, what in HISTORY:
                match = pattern.search(line)
                if match:
                    problems.append(f"{name}:{number}: {match.group(0)!r} looks like {what}; "
                                    "the docs say what is true now (history lives in git)")
        if name == "README.md" and text.count("\n") > README_MAX_LINES:
            problems.append(f"README.md has {text.count(chr(10))} lines, over {README_MAX_LINES}: move detail to docs/")
    return problems


def release_panic(cargo_toml):
    """[profile.release] panic in a Cargo.toml; Cargo's default is unwind."""
    section = None
    for line in cargo_toml.split("\n"):
        line = line.split("#", 1)[0].strip()
        header = re.match(r"^\[([^\]]+)\]$", line)
        if header:
            section = header.group(1).strip()
        elif section == "profile.release":
            match = re.match(r'^panic\s*=\s*"([^"]*)"$', line)
            if match:
                return match.group(1)
    return "unwind"


def check_panic(root, files):
    """Each doc statement of the panic strategy that Cargo.toml contradicts."""
    with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as handle:
        strategy = release_panic(handle.read())
    problems = []
    statements = 0
    for name in files:
        if not REFERENCE_DOCS.match(name):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            for number, line in enumerate(handle.read().split("\n"), 1):
                for stated in PANIC_STATEMENT.findall(line):
                    statements += 1
                    if stated != strategy:
                        problems.append(
                            f'{name}:{number}: says panic = "{stated}"; Cargo.toml\'s [profile.release] has panic = "{strategy}"'
                        )
    if statements == 0:
        problems.append(f'no reference doc states the release panic strategy (Cargo.toml: panic = "{strategy}")')
    return strategy, statements, problems


def markdown_files(root):
    listed = subprocess.run(
        ["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.md"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    return sorted(name for name in set(listed) if name and os.path.isfile(os.path.join(root, name)))


def check(root):
    files = markdown_files(root)
    problems = check_links(root, files) + check_docs_linked(root, files) + check_present_tense(root, files)
    strategy, statements, panic_problems = check_panic(root, files)
    for problem in problems + panic_problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or panic_problems:
        return 1
    print(f"\033[1m==> Docs: the links of {len(files)} Markdown files resolve, docs/ is linked from the README, "
          f"no issue number, commit hash or date in the reference docs; "
          f'{statements} statement(s) of the panic strategy match Cargo.toml (panic = "{strategy}")\033[0m')
    return 0


FIXTURE = {
    "Cargo.toml": '[workspace]\n\n[profile.release]\nlto = true\npanic = "abort" # fixture\n',
    "README.md": """# Fixture

See [the guide](docs/guide.md), [a section](docs/guide.md#the-state-token-jti),
[the second twin](docs/guide.md#twins-1), [the folder](docs/), [a site](https://example.com/x),
[here](#fixture), [explicit](docs/guide.md#kept-anchor) and ![a picture](docs/guide.md).
Release builds abort: `panic = "abort"`.

[ref]: docs/guide.md#whats-new

BROKEN FROM HERE
[gone](docs/missing.md), [bad anchor](docs/guide.md#no-such-heading),
[escapes](../outside.md), [absolute](/README.md), [self](#nowhere).

[ref-broken]: docs/guide.md#not-a-heading

A claim that builds `panic = "unwind"`.

```md
[in a fence](docs/not-checked.md)
```
and `[in a span](docs/not-checked-either.md)`.
""",
    "docs/orphan.md": "# Linked from nowhere\n",
    "docs/history.md": "# History\n\nFixed in issue 12 (#34), commit 75168b7, on 2026-11-30; 1209600 s, `deadbeef` and AWS::Serverless-2016-10-31 stay.\n",
    "docs/guide.md": """# Guide

## The state token (`jti`)
## What's new?
## Twins
## Twins
<a id="kept-anchor"></a>

````
## Not a heading
````
Back to the [README](../README.md#fixture), [missing anchor](#not-a-heading).
""",
}

EXPECTED_BROKEN = {
    "README.md:11: docs/missing.md",
    "README.md:11: docs/guide.md#no-such-heading",
    "README.md:12: ../outside.md",
    "README.md:12: /README.md",
    "README.md:12: #nowhere",
    "README.md:14: docs/guide.md#not-a-heading",
    "docs/guide.md:12: #not-a-heading",
}


def self_test():
    print("\033[1m==> Docs check, self-test: broken links, an unlinked doc, history and a wrong panic statement must be caught\033[0m", flush=True)
    failures = []
    with tempfile.TemporaryDirectory() as root:
        for name, text in FIXTURE.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            with open(os.path.join(root, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        files = ["README.md", "docs/guide.md"]
        reported = {problem.split(": ", 2)[0] + ": " + problem.split(": ", 2)[1] for problem in check_links(root, files)}
        if reported != EXPECTED_BROKEN:
            failures.append(f"links: missed {sorted(EXPECTED_BROKEN - reported)}, wrongly reported {sorted(reported - EXPECTED_BROKEN)}")
        strategy, statements, problems = check_panic(root, files)
        if (strategy, statements, len(problems)) != ("abort", 2, 1) or "README.md:16:" not in problems[0]:
            failures.append(f"panic: expected one contradiction on README.md:16 of abort, got {strategy}, {statements}, {problems}")
        _, _, silent = check_panic(root, ["docs/guide.md"])
        if len(silent) != 1 or "states the release panic strategy" not in silent[0]:
            failures.append(f"panic: docs that never state the strategy must fail, got {silent}")
        orphans = check_docs_linked(root, ["README.md", "docs/guide.md", "docs/orphan.md"])
        if len(orphans) != 1 or "docs/orphan.md" not in orphans[0]:
            failures.append(f"docs/orphan.md is linked from no README: expected one complaint, got {orphans}")
        history = check_present_tense(root, ["README.md", "docs/history.md"])
        found = sorted(problem.split("looks like ")[1].split(";")[0] for problem in history)
        if found != ["a commit hash", "a date", "an issue number"]:
            failures.append(f"docs/history.md: expected an issue number, a commit hash and a date, got {history}")
        with open(os.path.join(root, "README.md"), "a", encoding="utf-8") as handle:
            handle.write("\n" * README_MAX_LINES)
        if not any("over 300" in problem for problem in check_present_tense(root, ["README.md"])):
            failures.append("a README over 300 lines must fail")
    cases = {
        "Panic strategy: `abort` or `unwind` (issue 11)": "panic-strategy-abort-or-unwind-issue-11",
        "The reconciler's dead-letter queue": "the-reconcilers-dead-letter-queue",
        "A.B c--d_e [link](x.md) <b>x</b>": "ab-c--d_e-link-x",
        "Étape 2 — fin": "étape-2--fin",
    }
    for heading, expected in cases.items():
        if slug(heading) != expected:
            failures.append(f"slug({heading!r}) is {slug(heading)!r}, not {expected!r}")
    for failure in failures:
        print(f"error: self-test: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        sys.exit("usage: scripts/check-docs.py [ROOT] | --self-test")
    sys.exit(check(sys.argv[1] if len(sys.argv) == 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))
