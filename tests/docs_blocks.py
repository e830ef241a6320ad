"""The shell blocks of the project's Markdown (README.md and every file under
docs/) that call the service, for tests/test_docs_run.py to run.

A block is a fenced ```sh, ```bash or ```shell block; it calls the service
when it runs the `billing-service` command, curl or grpcurl. An HTML comment
`<!-- not run -->` on the line before the fence opts a block out (a
deployment's commands, a loop meant to run forever). A file's blocks run in
order in one shell, as a reader pasting them one after the other would.
"""

import re
from dataclasses import dataclass
from pathlib import Path

NOT_RUN = "<!-- not run -->"
SHELLS = ("sh", "bash", "shell")
_CALLS_SERVICE = re.compile(r"\b(billing-service|curl|grpcurl)\b")
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w-]*)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    text: str

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}"


def markdown_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def service_blocks(path: Path) -> list[Block]:
    """The blocks of one file that call the service and are not opted out."""
    blocks = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.groups()
        end = next(
            (i for i in range(index + 1, len(lines)) if lines[i].startswith(fence)), len(lines)
        )
        text = "\n".join(lines[index + 1 : end])
        opted_out = index > 0 and lines[index - 1].strip() == NOT_RUN
        if language in SHELLS and not opted_out and _CALLS_SERVICE.search(text):
            blocks.append(Block(path, index + 1, text))
        index = end + 1
    return blocks
