"""The analyst console's files: the static export of `console/` (Next.js), served at
/dashboard by the ingress itself (no Node process in production).

The files are listed once, when the ingress starts: a request names one of them or gets
404, so no path a client sends is ever joined to a directory. `/dashboard/case/` is the
export's `case/index.html` (every page is a folder with its index).
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADERS = {  # the console is its own origin's only page: no framing, no sniffing, no referrer
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".txt": "text/plain"}


@dataclass(frozen=True)
class ConsoleFile:
    path: Path
    media_type: str


class ConsoleFiles:
    """The export's files by the path they are asked for (relative to /dashboard/)."""

    def __init__(self, root: Path) -> None:
        self.root = root = root if root.is_absolute() else ROOT / root
        self.files: dict[str, ConsoleFile] = {}
        if not root.is_dir():
            return
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            self.files[rel] = ConsoleFile(path, kind or "application/octet-stream")
            if path.name == "index.html":  # the page's folder, with and without its slash
                folder = rel[: -len("index.html")]
                self.files[folder] = self.files[folder.rstrip("/")] = self.files[rel]

    @property
    def built(self) -> bool:
        return "index.html" in self.files

    def find(self, asked: str) -> ConsoleFile | None:
        return self.files.get(asked)
