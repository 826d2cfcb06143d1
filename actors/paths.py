"""The repository's root: relative paths in the app's settings (state, decision record, id
key, key file, certificates, model) are read from here, in every process alike."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
