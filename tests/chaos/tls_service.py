"""TLS drill: the app with HTTPS on Serve's proxy and TLS on its shard sockets.

Needs its own Serve proxy (TLS is a proxy start option), so it runs its own one-node Ray
cluster in a separate process: `python -m tests.chaos.tls_service`. Makes a throwaway CA
(`trustme`), scores over HTTPS, and checks that plain HTTP to the ingress and a plain or
foreign client on a shard socket get nothing. Prints one JSON line; exits non-zero on a
failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port


def pems(ca: Any, name: str, root: Path) -> dict[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    out = {k: str(root / f"{name}-{k}.pem") for k in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(out["cert"])
    cert.private_key_pem.write_to_path(out["key"])
    ca.cert_pem.write_to_path(out["ca"])
    return out


def main() -> int:
    import numpy as np
    import ray
    import trustme
    from ray import serve

    from actors.actor.journal import ShardSettings
    from actors.client.directory import ActorDirectory
    from actors.wire import WireConnection
    from deployments.app import build_app

    root = Path(tempfile.mkdtemp(prefix="tls-drill-"))
    ours, theirs = trustme.CA(), trustme.CA()
    web, node, foreign = pems(ours, "web", root), pems(ours, "node", root), pems(theirs, "x", root)
    shard_tls = {"certfile": node["cert"], "keyfile": node["key"], "cafile": node["ca"]}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=str(root / "ray"))
    result: dict[str, Any] = {"ok": False}
    try:
        port = free_port()
        serve.start(
            http_options={
                "host": "127.0.0.1",
                "port": port,
                "ssl_certfile": web["cert"],
                "ssl_keyfile": web["key"],
            }
        )
        args = {
            "n_user_shards": 1,
            "n_terminal_shards": 1,
            "state": {"backend": "memory"},
            "id_key": {"file": str(root / "id.key")},
            "shard_tls": shard_tls,
        }
        serve.run(build_app(args), name="fraud", route_prefix="/")
        https = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{https}/healthz", verify=web["ca"], timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the TLS app did not become healthy in 90 s")
            time.sleep(0.5)
        tx = {
            "transaction_id": "tls-1",
            "user_id": "tls-card",
            "terminal_id": "tls-term",
            "amount": 20.0,
            "timestamp": "2018-09-01T10:00:00",
        }
        r = httpx.post(f"{https}/v1/transactions", json=tx, verify=web["ca"], timeout=30)
        result["https_status"], result["decision"] = r.status_code, r.json().get("decision")
        try:
            plain = httpx.post(f"http://127.0.0.1:{port}/v1/transactions", json=tx, timeout=10)
            result["plain_http"] = plain.status_code
        except httpx.HTTPError as e:
            result["plain_http"] = type(e).__name__
        # The shard socket: a client with our CA's certificate is answered (the request
        # above went that way); a plain client and a foreign-CA client are dropped.
        from actors.tls import WireTlsConfig

        directory = ActorDirectory(1, 1, ShardSettings(wire_tls=WireTlsConfig(**shard_tls)))
        host, wport, token = ray.get(directory["user", 0].open_wire.remote())
        foreign_tls = WireTlsConfig(
            certfile=foreign["cert"], keyfile=foreign["key"], cafile=foreign["ca"]
        )
        probes = {}
        for name, ctx in [("plain", None), ("foreign_ca", foreign_tls.client_context(root))]:

            async def probe(ctx: Any = ctx) -> str:
                conn = await WireConnection.open(host, wport, token, ctx)
                try:
                    await asyncio.wait_for(conn.call([np.zeros(1)]), 15)
                    return "answered"
                finally:
                    conn.close()

            try:
                probes[name] = asyncio.run(probe())
            except Exception as e:  # dropped: a closed or reset connection, or a bad handshake
                probes[name] = type(e).__name__
        result["shard_probes"] = probes
        result["ok"] = (
            result["https_status"] == 200
            and result["decision"] in ("LEGIT", "REVIEW", "BLOCK")
            and result["plain_http"] != 200
            and all(v != "answered" for v in probes.values())
        )
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        serve.shutdown()
        ray.shutdown()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    os.environ.pop("RAY_ADDRESS", None)
    sys.exit(main())
