"""The Kubernetes manifests: schema-valid (strict) and wired the way the deployment needs.

Schema validation uses ``kubernetes-validate`` (installed by ``bash scripts/setup-kubeconform.sh``
into ``tools/k8s-venv``; see that script for why not kubeconform) and is skipped when it is absent.
The structural checks need only PyYAML.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VALIDATOR = REPO / "tools" / "k8s-venv" / "bin" / "kubernetes-validate"
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")

needs_validator = pytest.mark.skipif(
    not VALIDATOR.is_file() and shutil.which("kubernetes-validate") is None,
    reason="kubernetes-validate not installed (bash scripts/setup-kubeconform.sh)",
)


def validator() -> str:
    return str(VALIDATOR) if VALIDATOR.is_file() else str(shutil.which("kubernetes-validate"))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [validator(), "--strict", "--no-warn", "-k", KUBERNETES_VERSION, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, over every file."""
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@needs_validator
def test_manifests_pass_strict_schema_validation() -> None:
    result = validate(*MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_validator
@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("  replicaz: 2\n", "replicaz"),  # unknown field: strict mode must catch typos
        ("  replicas: two\n", "two"),  # wrong type
    ],
)
def test_validator_rejects_broken_manifests(tmp_path: Path, patch: str, expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n"
        + patch
        + "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i}]}\n"
    )
    result = validate(bad)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_triton_has_gpu_probes_and_model_volume() -> None:
    found = resources()
    pod = found[("Deployment", "triton")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "--model-repository=/models" in container["args"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"triton-models"}
    assert ("PersistentVolumeClaim", "triton-models") in found
    ports = {p["port"] for p in found[("Service", "triton")]["spec"]["ports"]}
    assert {8000, 8001} <= ports


def test_api_is_stateless_autoscaled_and_configured_for_triton() -> None:
    found = resources()
    deployment = found[("Deployment", "customs-vision-api")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert not any("persistentVolumeClaim" in v for v in deployment["spec"]["template"]["spec"]["volumes"])
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"customs-vision-config", "customs-vision-secrets"}
    hpa = found[("HorizontalPodAutoscaler", "customs-vision-api")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "customs-vision-api"
    assert hpa["spec"]["minReplicas"] >= 2
    config = found[("ConfigMap", "customs-vision-config")]["data"]
    assert config["CV_BACKEND"] == "triton"
    assert config["CV_TRITON_URL"].startswith("triton.") and config["CV_TRITON_URL"].endswith(":8001")
    assert config["CV_TRITON_PROTOCOL"] == "grpc"
    secret = found[("Secret", "customs-vision-secrets")]["stringData"]
    assert secret["CV_DATABASE_URL"].startswith("postgresql")


def test_settings_keys_in_the_configmap_exist() -> None:
    """Every CV_* key the manifests set is a real setting (a typo would be silently ignored)."""
    from service.settings import Settings

    found = resources()
    keys = set(found[("ConfigMap", "customs-vision-config")]["data"]) | set(
        found[("Secret", "customs-vision-secrets")]["stringData"]
    )
    fields = {f"CV_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in keys if k.startswith("CV_")} <= fields


def test_kustomization_lists_every_long_running_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    # The engine-build Job runs on demand, so it is applied by hand, not with the rest.
    expected = {p.name for p in MANIFESTS} - {"engine-build-job.yaml"}
    assert set(kustomization["resources"]) == expected
