"""Where the service's id key comes from: an environment variable, else a key file.

The same key must reach every process that hashes ids (all ingress and stream replicas),
so it is named in the config, never passed around as an argument (actor arguments can be
kept by Ray). A single-host start may create the file on first use; a cluster must be given
the key (every node would otherwise make its own, and route cards differently).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from features.ids import MAX_KEY_BYTES, MIN_KEY_BYTES, IdHasher

log = logging.getLogger(__name__)
KEY_BYTES = 32


class IdKeyMissing(RuntimeError):
    """No key where the config says it is, and the config does not allow making one."""


class IdKeyConfig(BaseModel):
    """`id_key:` in serve_config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field("FRAUD_ID_KEY", description="Environment variable holding the key (hex).")
    file: str | None = Field(
        "data/id.key", description="Key file (hex), read when the variable is unset."
    )
    create: bool = Field(True, description="Make the key file on first start (single host only).")

    def load(self, repo_root: Path) -> bytes:
        """The key, from `env`, else `file` (made first if `create`); else `IdKeyMissing`."""
        value = os.environ.get(self.env)
        if value:
            return parse_key(value.strip(), f"${self.env}")
        if self.file is not None:
            path = Path(self.file) if Path(self.file).is_absolute() else repo_root / self.file
            if not path.exists() and self.create:
                write_key(path, exist_ok=True)
                log.warning("made a new id key at %s (keep it: state is keyed by it)", path)
            if path.exists():
                return parse_key(path.read_text().strip(), str(path))
        where = f"${self.env}" + (f" or {self.file}" if self.file else "")
        raise IdKeyMissing(
            f"id_key: no key in {where}. Make one with `fraud keygen --output <file>` and "
            f"give every node the same one (set {self.env} to its contents, or id_key.file)."
        )

    def hasher(self, repo_root: Path) -> IdHasher:
        return IdHasher(self.load(repo_root))


def parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise IdKeyMissing(f"id_key: {where} is not hex") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise IdKeyMissing(
            f"id_key: {where} holds {len(key)} bytes, need {MIN_KEY_BYTES}-{MAX_KEY_BYTES}"
        )
    return key


def write_key(path: Path, exist_ok: bool = False) -> bool:
    """Write a new random key to `path`, readable by its owner only. Written aside and
    linked into place, so replicas starting together agree on one whole key; returns False
    if one was already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:
        if not exist_ok:
            raise
        return False
    finally:
        aside.unlink()
    return True
