"""MkDocs hook: fill the CLI reference's "Every option" section from the program itself.

The marker ``<!-- attnmech-help -->`` in ``docs/cli.md`` is replaced, at build time, by the
output of ``attnmech --help`` and of ``attnmech COMMAND --help`` for every command of the typer
app, so the option listing can never drift from the code. Nothing is fetched; the help is
rendered in-process (click's test runner, plain text, 100 columns).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"

MARKER = "<!-- attnmech-help -->"


def command_help() -> list[tuple[str, str]]:
    """``(command line, help text)`` for the program and each of its commands, in app order."""
    if str(SRC) not in sys.path:  # document this checkout's program, installed or not
        sys.path.insert(0, str(SRC))
    import typer.main
    from typer.testing import CliRunner

    from attnmech.cli import app

    group = typer.main.get_command(app)
    runner = CliRunner()
    names = list(getattr(group, "commands", {}))
    out = []
    for args in [[]] + [[name] for name in names]:
        result = runner.invoke(app, [*args, "--help"], prog_name="attnmech", terminal_width=100)
        if result.exit_code != 0:
            raise RuntimeError(f"attnmech {' '.join(args)} --help failed:\n{result.output}")
        out.append((" ".join(["attnmech", *args, "--help"]), result.output.rstrip()))
    return out


def render() -> str:
    """The markdown that replaces the marker: one fenced block per command."""
    parts = []
    for line, text in command_help():
        title = line.removesuffix(" --help")
        parts.append(f"### `{title}`\n\n```text\n$ {line}\n{text}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand the marker where it occurs (only ``cli.md`` has it)."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
