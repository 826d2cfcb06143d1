"""serve_config.yaml stays valid: the app's args parse, the served model loads."""

from __future__ import annotations

from pathlib import Path

import yaml

from cli.serve_config import SERVE_CONFIG, fraud_app, served_model_dir, served_thresholds
from deployments.app import AppArgs
from features.onnx_model import load_model


def test_serve_config_is_valid_and_safe_by_default() -> None:
    doc = yaml.safe_load(Path(SERVE_CONFIG).read_text())
    assert doc["http_options"]["host"] == "127.0.0.1"
    assert doc["logging_config"]["enable_access_log"] is False
    args = AppArgs(**fraud_app()["args"])
    assert args.state.backend == "sqlite" and args.n_user_shards >= 1
    model = load_model(served_model_dir())
    assert served_thresholds(model.card).block == 0.9
    names = {d["name"] for d in fraud_app()["deployments"]}
    assert names == {"Ingress", "ModelScorer"}
