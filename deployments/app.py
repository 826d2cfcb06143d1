"""Build the Serve application from `serve_config.yaml`'s `args` (validated, extra="forbid")."""

from __future__ import annotations

from typing import Any

from ray.serve import Application, Deployment

from deployments.http.ingress import Ingress
from deployments.model.scorer import ModelScorer
from deployments.settings import AppArgs
from deployments.stream.consumer import StreamConsumer

DEFAULT_MODEL_DIR = "models/default"


def _deployment(decorated: object) -> Deployment:
    """A `@serve.deployment` class as what it is at run time (the decorator's typing says
    it returns the class)."""
    assert isinstance(decorated, Deployment)
    return decorated


def build_app(args: dict[str, Any]) -> Application:
    """Serve's application builder (`import_path` in serve_config.yaml): one argument, the
    config's `args`."""
    return application(args)


def application(args: dict[str, Any], decide: dict[str, Any] | None = None) -> Application:
    """The app from `args`. `decide`: the deciding replicas' user_config (`IngressConfig`);
    unset, they serve the model card's thresholds (tests pin theirs). The config file's
    user_config overrides both defaults here."""
    settings = AppArgs(**args)
    model = _deployment(ModelScorer).options(user_config={"model_dir": DEFAULT_MODEL_DIR}).bind()
    decide = decide or {}
    stream = None
    if settings.stream.enabled:
        consumer = _deployment(StreamConsumer).options(
            user_config=decide, num_replicas=settings.stream.consumers
        )
        stream = consumer.bind(model, settings)
    ingress = _deployment(Ingress).options(user_config=decide)
    return ingress.bind(model, settings, stream)
