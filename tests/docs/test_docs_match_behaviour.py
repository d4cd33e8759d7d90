"""The docs match the program (issue 19): every `brushwork ...` command in README.md and docs/*.md
is one the real parser accepts, and every repository path the docs name exists.

Commands are parsed, not run (argparse only: no model loads). Synopsis lines are read the way a
person reads them: [optional] parts left out, "a | b" alternatives each tried, placeholders such
as PROMPT or IMG are plain arguments to the parser.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from brushwork.cli import build_parser
from brushwork.cli_inputs import UsageError

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
TOP_DIRS = ("docs", "sdk", "presets", "desktop", "blender_addon", "tests", "benchmarks", "requirements", ".ci")

_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")


def _commands_in(text: str) -> list[tuple[str, bool]]:
    """(command, whole): fenced lines are whole command lines; an inline mention may name just the
    command ("see `brushwork rerun`"), so for those the command itself must exist."""
    found = []
    for block in _FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            line = re.sub(r"^(\S*/)?\.venv/bin/", "", line.split(" && ")[-1].strip())
            if line.startswith("brushwork "):
                found.append((line, True))
    text_only = _FENCE.sub("", text)
    found += [(c.strip(), False) for c in _INLINE.findall(text_only) if c.strip().startswith("brushwork ")]
    return found


def _readings(command: str) -> list[list[str]]:
    """The argument lists a command line stands for."""
    command = re.split(r"\s+#\s", command)[0].strip()  # a trailing comment
    command = command.replace("...", "")
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\[[^\[\]]*\]", "", command)  # optional parts, innermost first
    parts = [p.strip() for p in command.split(" | ")]
    words = shlex.split(parts[0])
    readings = [words[1:]]
    for alt in parts[1:]:  # "brushwork models list | pull ID | info NAME"
        alt_words = shlex.split(alt)
        readings.append([*words[1:2], *alt_words] if alt_words and alt_words[0] != "brushwork" else alt_words[1:])
    return [[w for w in r if w] for r in readings]


CASES = [(doc.relative_to(REPO).as_posix(), cmd, whole) for doc in DOCS
         for cmd, whole in _commands_in(doc.read_text("utf-8"))]


def test_the_docs_have_commands_to_check():
    assert len(CASES) >= 10


@pytest.mark.parametrize("doc, command, whole", CASES, ids=[f"{d}: {c[:60]}" for d, c, _ in CASES])
def test_every_documented_command_parses(doc, command, whole):
    parser = build_parser()
    for argv in _readings(command):
        if not whole:  # the words up to the first placeholder or option name a command
            argv = [*[w for w in argv[:2] if w.islower() and not w.startswith("-")], "--help"]
        try:
            parser.parse_args(argv)
        except UsageError as exc:
            pytest.fail(f"{doc}: `{command}` -> brushwork {' '.join(argv)}: {exc}")
        except SystemExit as exc:  # --help, --version
            assert exc.code == 0, f"{doc}: `{command}` exits {exc.code}"


_PATH = re.compile(r"(?<![\w./-])((?:{})/[\w./-]*[\w/])".format("|".join(re.escape(d) for d in TOP_DIRS)))
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _paths_in(doc: Path) -> list[tuple[str, Path]]:
    text = doc.read_text("utf-8")
    out = []
    for match in _PATH.findall(text):
        if "*" in match or "<" in match:
            continue
        out.append((match, REPO / match.rstrip("/.")))
    for link in _LINK.findall(text):
        if "://" in link or link.startswith("mailto:"):
            continue
        out.append((link, (doc.parent / link).resolve()))
    return out


_FILE_NAME = re.compile(r"^[\w./-]*[\w-]\.(?:py|md)$")


def _repo_files() -> list[str]:
    import subprocess

    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def _short_names_in(doc: Path) -> list[str]:
    """File names given in `code` without their folder (`session.py`, `worker/auth.py`)."""
    text = doc.read_text("utf-8")
    names = []
    for code in _INLINE.findall(text):
        for word in re.split(r"[\s,()]+", code):
            word = word.strip("`'\".:;")
            if _FILE_NAME.match(word) and not word.startswith(TOP_DIRS) and "*" not in word and "<" not in word:
                names.append(word)
    return names


def _generated(name: str) -> bool:
    """A path git ignores (benchmarks/out/, the demo's training stages): made by running something,
    so a fresh clone rightly lacks it."""
    import subprocess

    return subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=REPO).returncode == 0


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(REPO).as_posix() for d in DOCS])
def test_every_path_the_docs_name_exists(doc):
    missing = sorted({name for name, path in _paths_in(doc) if not path.exists() and not _generated(name)})
    files = _repo_files()
    missing += sorted({name for name in _short_names_in(doc)
                       if not any(f == name or f.endswith("/" + name) for f in files)})
    assert not missing, f"{doc.relative_to(REPO)} names files that do not exist: {missing}"


def test_one_input_pixel_limit_everywhere_and_the_docs_say_it():
    """In-process (CLI) and worker used to refuse at different sizes (67 M vs 33.5 M pixels)."""
    from brushwork import protocol, recipe
    from brushwork.conditioning.images import MAX_PIXELS

    assert MAX_PIXELS == protocol.MAX_IMAGE_PIXELS == 2 * recipe.MAX_SIDE**2
    millions = f"{int(MAX_PIXELS / 1e5) / 10:.1f} M pixels"  # 33,554,432 -> "33.5 M pixels"
    for doc in ("docs/protocol.md", "docs/cli.md"):
        assert millions in (REPO / doc).read_text("utf-8"), f"{doc} does not state the limit ({millions})"
