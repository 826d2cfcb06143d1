"""The service knows, and says, whether Serve runs in its throughput-optimized mode."""

from __future__ import annotations

from pathlib import Path

from deployments.serve_mode import HAPROXY, THROUGHPUT_OPTIMIZED, fast_env, serve_mode


def test_without_the_fast_mode_the_hint_names_the_variables() -> None:
    mode = serve_mode({})
    assert mode["throughput_optimized"] is False and mode["haproxy"] is False
    assert f"{THROUGHPUT_OPTIMIZED}=1" in str(mode["hint"]) and HAPROXY in str(mode["hint"])
    assert serve_mode({THROUGHPUT_OPTIMIZED: "0"})["throughput_optimized"] is False


def test_the_fast_environment_is_recognised_as_fast(tmp_path: Path) -> None:
    assert fast_env(haproxy=None) == {THROUGHPUT_OPTIMIZED: "1"}
    assert HAPROXY not in fast_env(haproxy=tmp_path / "no-haproxy-here")
    binary = tmp_path / "haproxy"
    binary.write_text("")
    env = fast_env(haproxy=binary)
    assert env[HAPROXY] == "1" and str(binary) in env.values()
    mode = serve_mode(env)
    assert mode == {"throughput_optimized": True, "haproxy": True}  # no hint
