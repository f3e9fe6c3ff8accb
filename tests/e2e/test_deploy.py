"""The container image and the Kubernetes manifests (SPEC §10, deploy/).

Docker is not needed: the Dockerfile is read as text. The manifests are validated offline
against Kubernetes' own schemas (``kubernetes-validate``, strict: an unknown field is an
error), then checked against each other and against the config they carry: the probes,
the grace period against ``drain_timeout_s``, the pod's memory against ``[pool]``, the
Secret for ``DAILY_API_KEY``. The entry point is run for real, in front of a real supervisor.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from supervisor import config as config_mod
from supervisor.daemon import STOP_MARGIN_S, STOP_NOW_S
from tests.conftest import REPO, free_port

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
# Every manifest kubectl applies from the folder, plus the example Secret it must skip.
MANIFESTS = [*sorted(K8S.glob("*.yaml")), K8S / "secret.yaml.example"]
# The oldest release the manifests target (preStop `sleep` is on by default from 1.30;
# 1.31 is the oldest still patched when this was written) and the newest the package ships.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
# What the entry point renders the template with: the downward API's and the Secret's.
POD = {"POD_NAME": "callfleet-7d4b9c6f8-x2x9z", "POD_IP": "10.244.1.17", "REDIS_PASSWORD": "9f86d081884c7d65"}
# Measured (README "Performance", docs/deploying.md): per-process PSS the pod is sized from.
SUPERVISOR_MIB = 60
WORKER_MIB = 30  # a hosted Pipecat bot; echo workers are 10-15
KILL_AT = 1.5  # the supervisor kills a worker at this multiple of worker_memory_limit_mb


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [doc for path in MANIFESTS for doc in documents(path)
             if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("callfleet_entrypoint", DEPLOY / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_template() -> str:
    return str(resource("ConfigMap", "callfleet-config")["data"]["callfleet.toml"])


def rendered_config() -> config_mod.Config:
    return config_mod.parse(entrypoint().render(config_template(), POD), "configmap callfleet.toml")


def supervisor_pod() -> dict[str, Any]:
    return dict(resource("Deployment", "callfleet")["spec"]["template"]["spec"])


def supervisor_container() -> dict[str, Any]:
    (container,) = supervisor_pod()["containers"]
    return dict(container)


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", quantity)
    assert match, f"unexpected quantity {quantity!r}"
    number, unit = float(match.group(1)), match.group(2)
    return number * units[unit] if unit else number / 2**20


# -- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs, f"{path.name} holds no manifest"
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(resource("Deployment", "callfleet"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_folder_holds_the_resources_spec_10_names() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for path in MANIFESTS for doc in documents(path)}
    assert {("Deployment", "callfleet"), ("Service", "callfleet"), ("ConfigMap", "callfleet-config"),
            ("Secret", "callfleet-keys"), ("PodDisruptionBudget", "callfleet"),
            ("HorizontalPodAutoscaler", "callfleet"), ("Deployment", "callfleet-redis"),
            ("Service", "callfleet-redis"), ("NetworkPolicy", "callfleet"), ("NetworkPolicy", "callfleet-redis")} <= kinds


# -- the config the ConfigMap carries --------------------------------------------------------


def test_configmap_toml_is_a_valid_cloud_cluster_config_once_rendered() -> None:
    config = rendered_config()
    assert config.daily.mode == "cloud"
    assert config.daily.api_key_env == "DAILY_API_KEY"
    assert config.cluster.node_id == POD["POD_NAME"]
    assert config.cluster.advertise_url == f"http://{POD['POD_IP']}:{config.supervisor.http_port}"
    assert config.supervisor.http_host == "0.0.0.0"  # probes and other nodes come from outside the pod
    assert (REPO / config.supervisor.profiles).is_file()  # the image's /app mirrors the repo's paths


def test_configmap_redis_url_names_the_redis_service_with_the_secrets_password() -> None:
    config = rendered_config()
    service = resource("Service", "callfleet-redis")
    (port,) = service["spec"]["ports"]
    assert config.cluster.redis_url is not None
    url = urlsplit(config.cluster.redis_url)
    assert (url.scheme, url.hostname, url.port, url.path) == ("redis", service["metadata"]["name"], port["port"], "/0")
    assert url.password == POD["REDIS_PASSWORD"]


def secret_ref(container: dict[str, Any], name: str) -> str:
    """The key of the Secret callfleet-keys that env var ``name`` of ``container`` comes from."""
    (var,) = [e for e in container.get("env", []) if e["name"] == name]
    assert "value" not in var, f"{name} is a literal"
    ref = var["valueFrom"]["secretKeyRef"]
    assert ref["name"] == resource("Secret", "callfleet-keys")["metadata"]["name"]
    return str(ref["key"])


def test_redis_asks_for_the_password_the_supervisors_put_in_redis_url() -> None:
    (redis,) = resource("Deployment", "callfleet-redis")["spec"]["template"]["spec"]["containers"]
    args = redis["args"]
    assert args[0] == "redis-server" and args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    key = secret_ref(redis, "REDIS_PASSWORD")
    assert secret_ref(supervisor_container(), "REDIS_PASSWORD") == key  # what the template's ${REDIS_PASSWORD} gets
    assert "${REDIS_PASSWORD}" in config_template()
    assert resource("Secret", "callfleet-keys")["stringData"][key].startswith("REPLACE-")


def test_every_node_gets_the_node_secret_from_the_secret() -> None:
    name = rendered_config().cluster.node_secret_env
    assert name is not None
    key = secret_ref(supervisor_container(), name)
    assert resource("Secret", "callfleet-keys")["stringData"][key].startswith("REPLACE-")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as the manifests use) selects ``labels``."""
    assert set(selector) <= {"matchLabels"}, selector
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def pod_labels(deployment: str) -> dict[str, str]:
    return dict(resource("Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def test_only_supervisor_pods_reach_redis() -> None:
    policy = resource("NetworkPolicy", "callfleet-redis")["spec"]
    assert selects(policy["podSelector"], pod_labels("callfleet-redis"))
    assert "Ingress" in policy["policyTypes"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # this namespace's pods, no ipBlock, no other namespace
    assert selects(peer["podSelector"], pod_labels("callfleet"))
    assert not selects(peer["podSelector"], pod_labels("callfleet-redis"))
    (redis,) = resource("Deployment", "callfleet-redis")["spec"]["template"]["spec"]["containers"]
    assert [p["port"] for p in rule["ports"]] == [port["name"] for port in redis["ports"]]
    assert policy["egress"] == [] and "Egress" in policy["policyTypes"]  # and Redis connects nowhere


def test_supervisors_http_port_is_open_to_each_other_and_to_labelled_clients_only() -> None:
    policy = resource("NetworkPolicy", "callfleet")["spec"]
    supervisor = pod_labels("callfleet")
    assert selects(policy["podSelector"], supervisor) and "Ingress" in policy["policyTypes"]
    (rule,) = policy["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["http"]
    peers = rule["from"]
    assert {"podSelector": policy["podSelector"]} in peers  # node to node, in this namespace
    for peer in peers:
        assert "ipBlock" not in peer
        # Every peer names a label: none lets in every pod of a namespace or of the cluster.
        chosen = [sel for sel in (peer.get("podSelector"), peer.get("namespaceSelector")) if sel]
        assert chosen, peer
    egress = [block for rule in policy["egress"] for peer in rule["to"] for block in [peer.get("ipBlock")] if block]
    assert all("169.254.169.254/32" in b.get("except", []) for b in egress if b["cidr"] == "0.0.0.0/0")


def test_configmap_run_dir_is_below_a_writable_mount() -> None:
    run_dir = Path(rendered_config().supervisor.run_dir)
    mounts = {Path(m["mountPath"]): m for m in supervisor_container()["volumeMounts"]}
    emptydirs = {v["name"] for v in supervisor_pod()["volumes"] if "emptyDir" in v}
    # A subdirectory: the daemon creates run_dir and chmods it 0700, which it cannot do to
    # an emptyDir's root, which it does not own.
    holder = mounts.get(run_dir.parent)
    assert holder is not None and holder["name"] in emptydirs and not holder.get("readOnly", False)
    assert mounts[Path("/tmp")]["name"] in emptydirs  # forkserver socket, the rendered config


def test_entrypoint_refuses_a_template_whose_variable_is_unset() -> None:
    ep = entrypoint()
    with pytest.raises(ep.TemplateError, match=r"POD_IP"):
        ep.render(config_template(), {k: v for k, v in POD.items() if k != "POD_IP"})


def test_entrypoint_leaves_a_bare_dollar_alone() -> None:
    assert entrypoint().render('a = "^x$"\nb = "${X}"\n', {"X": "1"}) == 'a = "^x$"\nb = "1"\n'


# -- the Deployment --------------------------------------------------------------------------


def test_probes_are_readyz_for_readiness_and_livez_for_liveness() -> None:
    container = supervisor_container()
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["http"] == rendered_config().supervisor.http_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"


def test_grace_period_outlasts_the_drain_and_the_daemons_own_stop() -> None:
    pod = supervisor_pod()
    pre_stop = supervisor_container().get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    drain = tomllib.loads(entrypoint().render(config_template(), POD))["supervisor"]["drain_timeout_s"]
    needed = pre_stop + drain + STOP_NOW_S + STOP_MARGIN_S
    # At least 10 s of margin: SIGKILL before the drain ends would cut the calls it keeps.
    assert pod["terminationGracePeriodSeconds"] >= needed + 10, (pod["terminationGracePeriodSeconds"], needed)


def test_pod_starts_as_root_with_only_the_three_capabilities_the_supervisor_keeps() -> None:
    """The entry point needs root for an instant to hand the supervisor CAP_SETUID,
    CAP_SETGID and CAP_KILL as its own user; the container holds no other capability."""
    pod, container = supervisor_pod(), supervisor_container()
    assert pod["securityContext"]["runAsUser"] == 0 == container["securityContext"]["runAsUser"]
    assert "runAsNonRoot" not in pod["securityContext"] and "runAsNonRoot" not in container["securityContext"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert sorted(container["securityContext"]["capabilities"]["add"]) == ["KILL", "SETGID", "SETUID"]
    assert entrypoint().SUPERVISOR_CAPS == "-all,+setuid,+setgid,+kill"
    assert pod["securityContext"]["fsGroup"] == dockerfile_uid("callfleet")  # run_dir is the supervisor's to write


def test_daily_api_key_comes_from_the_secret_never_from_a_literal() -> None:
    env = {e["name"]: e for e in supervisor_container()["env"]}
    secret = resource("Secret", "callfleet-keys")
    config = rendered_config()
    for name in (config.daily.api_key_env, config.supervisor.api_key_env):
        assert name is not None and "value" not in env[name]
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        assert secret["stringData"][ref["key"]].startswith("REPLACE-")  # the example holds placeholders only


def test_node_id_and_advertise_url_come_from_the_downward_api() -> None:
    env = {e["name"]: e for e in supervisor_container()["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_memory_fits_max_workers_and_one_worker_at_its_kill_threshold() -> None:
    pool = rendered_config().pool
    resources = supervisor_container()["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= SUPERVISOR_MIB + pool.max_workers * WORKER_MIB
    # The supervisor's PSS guard must act before the kernel's OOM killer takes the whole pod.
    worst = SUPERVISOR_MIB + (pool.max_workers - 1) * WORKER_MIB + KILL_AT * pool.worker_memory_limit_mb
    assert mebibytes(resources["limits"]["memory"]) >= worst
    assert "cpu" in resources["requests"]


def test_the_config_template_is_what_the_container_is_given() -> None:
    container, pod = supervisor_container(), supervisor_pod()
    (path,) = container["args"]
    mount = next(m for m in container["volumeMounts"] if Path(path).parent == Path(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "callfleet-config"
    assert Path(path).name in resource("ConfigMap", "callfleet-config")["data"]


def test_service_pdb_and_hpa_select_the_supervisor_pods() -> None:
    labels = resource("Deployment", "callfleet")["spec"]["template"]["metadata"]["labels"]
    selectors = [resource("Service", "callfleet")["spec"]["selector"],
                 resource("PodDisruptionBudget", "callfleet")["spec"]["selector"]["matchLabels"],
                 resource("Deployment", "callfleet")["spec"]["selector"]["matchLabels"]]
    for selector in selectors:
        assert selector.items() <= labels.items()
    target = resource("HorizontalPodAutoscaler", "callfleet")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "callfleet")


def test_hpa_keeps_spare_workers_in_every_pod() -> None:
    (metric,) = resource("HorizontalPodAutoscaler", "callfleet")["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "callfleet_workers_in_use"
    target = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target < rendered_config().pool.max_workers  # at the target, each pod still has free workers


# -- the image -------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in (DEPLOY / "Dockerfile").read_text().splitlines()
                                            if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in joined.splitlines()) if line]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def dockerfile_uid(name: str) -> int:
    """The UID the image's useradd gives ``name``."""
    for op, args in final_stage():
        if op == "RUN" and "useradd" in args:
            for command in args.split("&&"):
                words = shlex.split(command)
                if "useradd" in words and words[-1] == name:
                    return int(words[words.index("--uid") + 1])
    raise AssertionError(f"the image creates no user {name}")


def test_image_is_python_311_slim_with_a_user_for_the_supervisor_and_another_for_the_bots() -> None:
    args = dict(a.split("=", 1) for op, a in dockerfile() if op == "ARG" and "=" in a)
    bases = [a.split()[0].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for op, a in dockerfile() if op == "FROM"]
    assert bases and all(base.startswith("python:3.11-slim") for base in bases)
    assert 0 < dockerfile_uid("callfleet") != dockerfile_uid("callfleet-bot") > 0
    env = " ".join(a for op, a in final_stage() if op == "ENV")
    assert "CALLFLEET_SUPERVISOR_USER=callfleet" in env  # the entry point becomes it (deploy/entrypoint.py)
    assert rendered_config().pool.worker_user in (None, "callfleet-bot")  # workers: the other user


def test_image_entry_point_is_exec_form_tini_then_the_supervisor() -> None:
    (entry,) = [json.loads(a) for op, a in final_stage() if op == "ENTRYPOINT"]
    (cmd,) = [json.loads(a) for op, a in final_stage() if op == "CMD"]
    assert entry[:2] == ["/usr/bin/tini", "--"]  # no "-g": workers must not get the pod's SIGTERM
    assert entry[-1] == "/usr/local/bin/callfleet-entrypoint" and cmd == supervisor_container()["args"]
    assert any(op == "RUN" and "install" in a and "tini" in a for op, a in final_stage())


def test_image_installs_the_pipecat_extra_from_local_files_only() -> None:
    instructions = dockerfile()
    assert not [a for op, a in instructions if op == "ADD"]  # COPY only: no URLs, no archives unpacked
    assert any(op == "RUN" and '".[pipecat]"' in a for op, a in instructions)
    assert ("EXPOSE", "7940") in instructions


def test_every_copied_path_exists_and_the_dockerignore_lets_it_through() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # the context is the repo root: everything else (.venv, run/) stays out
    for op, args in dockerfile():
        if op != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), source
            assert f"!{source}" in ignore or f"!{source}/" in ignore, f".dockerignore excludes {source}"


# -- the entry point, end to end -------------------------------------------------------------


def test_entrypoint_renders_the_template_and_becomes_the_supervisor_that_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    template = tmp_path / "callfleet.toml"
    template.write_text(f"""
[supervisor]
http_port = ${{HTTP_PORT}}
run_dir = "{tmp_path / 'run'}"
drain_timeout_s = 15
profiles = "configs/profiles.toml"
[pool]
min_idle = 0
max_workers = 1
[daily]
mode = "sandbox"
[sandbox]
port = {free_port()}
[cluster]
node_id = "${{POD_NAME}}"
""")
    rendered = tmp_path / "rendered.toml"
    env = {**os.environ, "HTTP_PORT": str(port), "POD_NAME": POD["POD_NAME"],
           "CALLFLEET_RENDERED_CONFIG": str(rendered), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    # cwd is the repo: the image's WORKDIR /app holds the same configs/ and examples/.
    proc = subprocess.Popen([sys.executable, str(DEPLOY / "entrypoint.py"), str(template)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"exited {proc.returncode} before answering"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the supervisor never answered /livez"
                time.sleep(0.2)
        assert config_mod.load(rendered).cluster.node_id == POD["POD_NAME"]
        # The process Kubernetes (through tini) signals is the supervisor itself: exec kept the pid.
        assert "supervisor" in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
