"""The README's console examples as data: its ``$ ...`` lines and the output shown under them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README_PATH = Path(__file__).resolve().parents[2] / "README.md"
README = README_PATH.read_text(encoding="utf-8")


def console_blocks() -> list[str]:
    return re.findall(r"```console\n(.*?)```", README, flags=re.S)


def console_lines() -> list[str]:
    """The ``$ ...`` lines of the README's console blocks, without the ``$ ``."""
    return [line[2:] for b in console_blocks() for line in b.splitlines() if line.startswith("$ ")]


def shown_output(command: str) -> list[str]:
    """The output lines the README shows under ``$ <command>``."""
    block = next(b for b in console_blocks() if f"$ {command}\n" in b)
    lines = block.splitlines()
    start = lines.index(f"$ {command}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("$ ")), len(lines))
    return lines[start:end]


def ltr_arguments(line: str) -> list[str] | None:
    """The arguments after ``ltr`` (or ``-m ltr``) in a shell line; None when it runs no ltr.

    ``run=$(ltr ...)`` gives the arguments inside; another ``$(...)`` stands for one word.
    """
    line = re.sub(r"\$\((?!ltr )[^)]*\)", "WORD", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)  # `;` is a token of its own
    lexer.whitespace_split = True
    tokens = list(lexer)
    if "ltr" not in tokens:
        return None
    rest = tokens[tokens.index("ltr") + 1 :]
    end = next((i for i, token in enumerate(rest) if token in (";", "&&", "|", ")")), len(rest))
    return rest[:end]


def python_block(heading: str) -> str:
    """The first ``python`` fenced block after the README heading line ``heading``."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]
