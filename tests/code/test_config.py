"""serve_config.yaml stays valid: the app's args parse, the served model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli.serve_config import SERVE_CONFIG, fraud_app, served_model_dir, served_thresholds
from deployments.settings import AppArgs
from models.onnx import load_model


def test_serve_config_is_valid_and_safe_by_default() -> None:
    doc = yaml.safe_load(Path(SERVE_CONFIG).read_text())
    assert doc["http_options"]["host"] == "127.0.0.1"
    assert doc["logging_config"]["enable_access_log"] is False
    args = AppArgs(**fraud_app()["args"])
    assert args.state.backend == "sqlite" and args.n_user_shards >= 1
    model = load_model(served_model_dir())
    assert served_thresholds(model.card) == model.card.thresholds  # unset: the card's
    names = {d["name"] for d in fraud_app()["deployments"]}
    assert names == {"Ingress", "ModelScorer"}


def test_documented_defaults_are_the_settings_defaults() -> None:
    """docs/operations.md's settings tables repeat defaults for readers: each must be the
    one in deployments/settings.py (the only definition)."""
    import re

    from deployments.settings import AppArgs

    text = (Path(SERVE_CONFIG).parent / "docs" / "operations.md").read_text()
    rows = []
    for section in ("### Performance settings", "### Deadlines and degraded answers"):
        table = next(p for p in text.split(section)[1].split("\n\n") if p.startswith("|"))
        found = re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", table, flags=re.M)
        assert len(found) >= 5, section
        rows += found
    defaults = AppArgs().model_dump()
    for name, documented in rows:
        value: object = defaults
        for part in name.split("."):
            assert isinstance(value, dict) and part in value, f"{name}: no such setting"
            value = value[part]
        shown = documented.strip().strip("`").lower()
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert value == float(shown), name
        else:
            assert str(value).lower() == shown, name
    # serve_config.yaml overrides only what a deployment changes: the rest stays default.
    args = fraud_app()["args"]
    assert set(args) <= {"n_user_shards", "n_terminal_shards", "state"}, set(args)


CLUSTER_CONFIG = Path(SERVE_CONFIG).parent / "serve_config.cluster.yaml"


def test_cluster_config_is_valid_and_refuses_to_start_without_an_id_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Off one host, every node must hash ids with one key: the cluster config never makes
    a key, and without one the service does not start (it says how to make one)."""
    from deployments.scoring.service import ScoringService
    from features.id_key import IdKeyMissing

    args = AppArgs(**fraud_app(CLUSTER_CONFIG)["args"])
    assert args.state.backend == "redis" and args.access.keys_file is not None
    assert not args.id_key.create and args.id_key.file is None
    monkeypatch.delenv(args.id_key.env, raising=False)
    with pytest.raises(IdKeyMissing, match="fraud keygen"):
        ScoringService(None, args)  # before it touches shards or the model
    monkeypatch.setenv(args.id_key.env, "ab" * 32)
    assert args.id_key.load(tmp_path) == bytes([0xAB]) * 32
    doc = yaml.safe_load(CLUSTER_CONFIG.read_text())
    assert doc["proxy_location"] == "EveryNode"
    assert {d["name"] for d in fraud_app(CLUSTER_CONFIG)["deployments"]} == {
        "Ingress",
        "ModelScorer",
    }


def test_the_app_builder_takes_exactly_the_config_args() -> None:
    """Serve refuses a builder with more than one parameter (`serve run` would retry and
    never start): extra knobs live on `deployments.app.application`."""
    import inspect

    from deployments.app import build_app

    assert list(inspect.signature(build_app).parameters) == ["args"]


def test_the_kuberay_manifest_serves_the_cluster_config_in_the_fast_mode(tmp_path: Path) -> None:
    """rayservice.yaml embeds serve_config.cluster.yaml unchanged, and every Ray container
    starts with Serve's fast-mode environment, the id key and the API key file the config
    names; the head with the tuned failure detection, and GCS fault tolerance is on."""
    from deployments.failure_detection import HEALTH_CHECK_ENV
    from deployments.serve_mode import DEBIAN_HAPROXY, fast_env

    repo = Path(__file__).resolve().parents[2]
    manifest = yaml.safe_load((repo / "rayservice.yaml").read_text())
    cluster = yaml.safe_load((repo / "serve_config.cluster.yaml").read_text())
    assert yaml.safe_load(manifest["spec"]["serveConfigV2"]) == cluster
    binary = tmp_path / "haproxy"
    binary.write_text("")
    expected = fast_env(haproxy=binary) | {"RAY_SERVE_HAPROXY_BINARY_PATH": str(DEBIAN_HAPROXY)}
    ray_cluster = manifest["spec"]["rayClusterConfig"]
    assert ray_cluster["authOptions"]["mode"] == "token"
    assert ray_cluster["gcsFaultToleranceOptions"]["redisAddress"]
    groups = [ray_cluster["headGroupSpec"], *ray_cluster["workerGroupSpecs"]]
    keys_dir = str(Path(cluster["applications"][0]["args"]["access"]["keys_file"]).parent)
    for group in groups:
        (container,) = group["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in expected} == expected, container["name"]
        if group is ray_cluster["headGroupSpec"]:  # the GCS reads its failure detection
            assert {k: env.get(k) for k in HEALTH_CHECK_ENV} == HEALTH_CHECK_ENV
        assert "FRAUD_ID_KEY" in env  # the app refuses to start without it
        assert keys_dir in {m["mountPath"] for m in container["volumeMounts"]}


def test_the_grafana_dashboard_queries_only_series_the_service_exports() -> None:
    """docs/grafana-dashboard.json: every series a panel queries is one the service
    declares (deployments/scoring/metrics.py, with Prometheus's suffixes), and every
    declared series is shown somewhere: a renamed metric breaks the test, not the panel."""
    import json
    import re

    repo = Path(__file__).resolve().parents[2]
    source = (repo / "deployments" / "scoring" / "metrics.py").read_text()
    declared = set(re.findall(r'metrics\.(?:Counter|Gauge|Histogram)\(\s*"(fraud_\w+)"', source))
    dashboard = json.loads((repo / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {
        re.sub(r"_(total|bucket|sum|count)$", "", name)
        for e in exprs
        for name in re.findall(r"ray_(fraud_\w+)", e)
    }
    assert len(declared) >= 10
    assert queried <= declared, sorted(queried - declared)
    assert declared <= queried, sorted(declared - queried)


def test_relative_paths_in_the_settings_are_read_from_the_repository_root(
    tmp_path: Path,
) -> None:
    """One root for every process: a root one folder too deep (the `actors/` layout once
    made it `actors/`) put the state, the decision record and a made id key under
    `actors/data/`, beside the code, where the docs did not say and git's ignore list did
    not reach (an id key and record files were committed)."""
    from actors.paths import REPO_ROOT
    from actors.store.decisions import DecisionRecordConfig

    assert (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "serve_config.yaml").is_file()
    assert Path(SERVE_CONFIG).resolve().parent == REPO_ROOT
    record = DecisionRecordConfig().open(REPO_ROOT)
    assert record is not None and record.root == str((REPO_ROOT / "data" / "decisions").resolve())


def test_offline_commands_take_the_engine_settings_the_service_runs_with(tmp_path: Path) -> None:
    """`fraud features/train/score` read `args.engine` of serve_config.yaml (its currency
    table among them), so offline amounts are converted as online ones."""
    import yaml

    from cli.serve_config import served_engine

    config = tmp_path / "serve_config.yaml"
    engine = {
        "terminal_capacity": 5000,
        "currency": {"reporting": "EUR", "rates": {"EUR": 1.0, "CHF": 1.05}},
    }
    app = {"name": "fraud", "import_path": "deployments.app:build_app", "args": {"engine": engine}}
    config.write_text(yaml.safe_dump({"applications": [app]}))
    got = served_engine(config, label_delay_days=3)
    assert (got.terminal_capacity, got.label_delay_days) == (5000, 3)
    assert got.currency.reporting == "EUR" and got.currency.rate("CHF") == 1.05
    assert served_engine(tmp_path / "absent.yaml") == served_engine(config.with_name("none"))
    repo = served_engine()  # the repository's own file sets no engine: the defaults
    assert repo.currency.reporting == "USD" and repo.label_delay_days == 7
