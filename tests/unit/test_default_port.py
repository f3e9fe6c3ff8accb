"""The HTTP API's default port collides with nothing a callfleet user runs beside it:
Pipecat's development runner (and Gradio) take 7860, LiveKit 7880/7881, and the usual
development servers 3000, 5000, 8000, 8080, 8765 and 8787. Every shipped file says the same port."""

from __future__ import annotations

import re
import tomllib

from supervisor.config import SupervisorSection
from tests.conftest import REPO

TAKEN = {7860: "Pipecat's development runner, Gradio", 7880: "LiveKit", 7881: "LiveKit",
         3000: "dev servers", 5000: "Flask", 8000: "dev servers", 8080: "dev servers", 8765: "dev servers",
         8787: "dev servers"}
DEFAULT = SupervisorSection().http_port


def test_the_default_port_is_none_that_pipecat_livekit_or_a_dev_server_takes() -> None:
    assert DEFAULT not in TAKEN, f"{DEFAULT} is {TAKEN.get(DEFAULT)}'s"
    assert DEFAULT == 7940


def test_the_shipped_configs_and_deploy_files_use_the_default_port() -> None:
    for name in ("sandbox.toml", "daily.toml"):
        with open(REPO / "configs" / name, "rb") as f:
            assert tomllib.load(f)["supervisor"]["http_port"] == DEFAULT, name
    ports = {
        "deploy/Dockerfile": r"EXPOSE (\d+)",
        "deploy/kubernetes/service.yaml": r"port: (\d+)",
        "deploy/kubernetes/deployment.yaml": r"containerPort: (\d+)",
        "deploy/kubernetes/configmap.yaml": r"http_port = (\d+)",
    }
    for path, pattern in ports.items():
        found = {int(p) for p in re.findall(pattern, (REPO / path).read_text())}
        assert found == {DEFAULT}, (path, found)


def test_the_readme_and_docs_show_the_default_port_and_say_why() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"127.0.0.1:{DEFAULT}" in readme and "Why 7940" in readme
    for path in ("README.md", "docs/deploying.md", "sandbox/telephony/command.py", "scripts/stream_engine_example.py"):
        text = (REPO / path).read_text()
        assert not re.search(r"(127\.0\.0\.1|localhost):7860\b", text), path  # 7860 is the runner's, never ours
