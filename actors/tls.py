"""TLS for the shard sockets (`actors.wire`), for clusters where they cross hosts.

Both ends present certificates signed by one private CA that only the service's nodes
hold, and each checks the other's against it: a host that can reach a shard's port but
holds no certificate from that CA cannot talk to it, and the traffic (hashed ids, amounts)
is encrypted on the wire. Host names are not checked: shard addresses are node IPs handed
out by Ray, and the private CA (plus the shard's token) is what names a peer as ours.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class WireTlsConfig(BaseModel):
    """`shard_tls:` in serve_config.yaml (paths relative to the repository root)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certfile: str = Field(description="This node's certificate (PEM), signed by `cafile`.")
    keyfile: str = Field(description="Its private key (PEM).")
    cafile: str = Field(description="The private CA every node's certificate is signed by.")

    def _paths(self, root: Path) -> tuple[Path, Path, Path]:
        return tuple(  # type: ignore[return-value]
            p if p.is_absolute() else root / p
            for p in (Path(self.certfile), Path(self.keyfile), Path(self.cafile))
        )

    def server_context(self, root: Path) -> ssl.SSLContext:
        cert, key, ca = self._paths(root)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED  # clients prove themselves too
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def client_context(self, root: Path) -> ssl.SSLContext:
        cert, key, ca = self._paths(root)
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.load_cert_chain(cert, key)
        ctx.check_hostname = False  # see the module docstring; the chain is still verified
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
