"""An app that does nothing: what Serve's request path costs by itself (benchmarks floor).

`api` answers every POST /v1/transactions with a fixed LEGIT body after reading the request;
`app` is the same FastAPI app behind two Serve replicas, as the service's Ingress runs.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from ray import serve

ANSWER = b'{"transaction_id":"-","score":0.0,"decision":"LEGIT"}'

api = FastAPI()


@api.post("/v1/transactions")
async def answer(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


class Floor:
    """No state, no model, no hops: Serve's proxy (HAProxy) and replica only."""


app = serve.deployment(num_replicas=2, max_ongoing_requests=128)(serve.ingress(api)(Floor)).bind()
