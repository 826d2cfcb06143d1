"""The service knows, and says, whether Serve runs in its throughput-optimized mode."""

from __future__ import annotations

import re
from pathlib import Path

from deployments.serve_mode import (
    DEBIAN_HAPROXY,
    HAPROXY,
    THROUGHPUT_OPTIMIZED,
    fast_env,
    serve_mode,
)


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


def _assignments(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(RAY_SERVE_[A-Z_]+)=(\S+?)(?=[\s)\\]|$)", text))


def test_the_makefile_and_the_readme_set_the_same_environment_as_fast_env(
    tmp_path: Path,
) -> None:
    """Three spellings of one environment (Python, make, the README's shell lines): a
    variable added to one and not the others would start the documented paths differently."""
    repo = Path(__file__).resolve().parents[2]
    binary = tmp_path / "haproxy"
    binary.write_text("")
    expected = fast_env(haproxy=binary)
    assert expected.pop("RAY_SERVE_HAPROXY_BINARY_PATH") == str(binary)
    makefile = next(
        ln for ln in (repo / "Makefile").read_text().splitlines() if ln.startswith("FAST_ENV")
    )
    readme = (repo / "README.md").read_text()
    start = readme.index("export RAY_SERVE_")
    export = readme[start : readme.index("serve run serve_config", start)]
    for text in (makefile, export):
        found = _assignments(text)
        assert found.pop("RAY_SERVE_HAPROXY_BINARY_PATH") == str(DEBIAN_HAPROXY)
        assert found == expected, text
