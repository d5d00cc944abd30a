#!/usr/bin/env python3
"""Checks what the Kubernetes schemas cannot: that the manifests keep the promises of the README's
"Deploy" section, and that their parts point at each other.

Usage: check_manifests.py <rendered base.yaml> <rendered dev overlay.yaml>

Each file is a multi-document YAML stream (kustomize output, or the raw files concatenated when no
kustomize is available). Prints one line per check and exits 1 on the first broken promise.
"""

import sys

import yaml

# How long the drain can take after SIGTERM: the config's redis_timeout default
# (src/store/redis/mod.rs) plus the second after which src/app.rs cuts what is still open; and
# the OTLP exporter's default export timeout, for the span flush that follows the drain.
DRAIN_S = 2 + 1
OTLP_EXPORT_TIMEOUT_S = 10
GRPC_PORT, HTTP_PORT = 50051, 8080


class Broken(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Broken(what)
    print(f"ok: {what}")


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def one(by_kind, kind, name):
    found = [d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name]
    if len(found) != 1:
        raise Broken(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_cart_service(by_kind, where):
    print(f"-- {where}")
    deployment = one(by_kind, "Deployment", "cart-service")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    check(selects(spec["selector"]["matchLabels"], pod_labels), "Deployment selects its own pods")
    check(spec.get("replicas", 1) >= 2, f"Deployment runs {spec.get('replicas', 1)} >= 2 replicas")
    [container] = [c for c in pod["containers"] if c["name"] == "cart-service"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"grpc": GRPC_PORT, "http": HTTP_PORT}, "container ports grpc 50051, http 8080")

    def http_port(probe):
        port = probe["httpGet"]["port"]
        return ports.get(port, port)

    startup = container["startupProbe"]
    check("httpGet" in startup or "grpc" in startup, "a startup probe")
    readiness = container["readinessProbe"]
    if "grpc" in readiness:
        check(
            readiness["grpc"]["port"] == GRPC_PORT
            and readiness["grpc"].get("service", "") in ("", "cart.v1.CartService"),
            "readiness: the native gRPC probe of the health service on the gRPC port",
        )
    else:
        check(
            readiness["httpGet"]["path"] == "/readyz" and http_port(readiness) == HTTP_PORT,
            "readiness: GET /readyz on the HTTP port",
        )
    liveness = container["livenessProbe"]
    check(
        liveness["httpGet"]["path"] == "/healthz" and http_port(liveness) == HTTP_PORT,
        "liveness: GET /healthz on the HTTP port (it does not look at Redis)",
    )

    resources = container["resources"]
    for kind in ("cpu", "memory"):
        check(
            kind in resources["requests"] and kind in resources["limits"],
            f"{kind}: a request and a limit",
        )

    pod_security = pod["securityContext"]
    check(pod_security.get("runAsNonRoot") is True, "runAsNonRoot")
    check(pod_security.get("runAsUser", 0) != 0, f"runAsUser {pod_security.get('runAsUser')}")
    security = container["securityContext"]
    check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "every capability dropped")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    check(pre_stop > 0, f"preStop sleeps {pre_stop} s while the endpoints' removal spreads")
    needed = pre_stop + DRAIN_S + OTLP_EXPORT_TIMEOUT_S
    check(
        grace > needed,
        f"terminationGracePeriodSeconds {grace} > preStop {pre_stop} + drain {DRAIN_S}"
        f" + span flush {OTLP_EXPORT_TIMEOUT_S} = {needed}",
    )

    env = {e["name"]: e for e in container["env"]}
    check(
        env["CART_GRPC_ADDR"]["value"] == f"0.0.0.0:{GRPC_PORT}"
        and env["CART_HTTP_ADDR"]["value"] == f"0.0.0.0:{HTTP_PORT}",
        "binds 0.0.0.0 on both ports",
    )
    url_ref = env["CART_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    config_path = env["CART_CONFIG"]["value"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [
        m
        for m in container["volumeMounts"]
        if config_path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    check(len(mounts) == 1 and mounts[0].get("readOnly"), f"{config_path} is on a read-only mount")
    secret_volume = volumes[mounts[0]["name"]]["secret"]
    relative = config_path[len(mounts[0]["mountPath"].rstrip("/")) + 1 :]
    check(
        any(i["path"] == relative for i in secret_volume.get("items", []))
        or "items" not in secret_volume,
        f"the Secret's volume holds {relative}",
    )
    check(
        secret_volume["secretName"] == url_ref["name"],
        f"the config file and the Redis URL come from one Secret ({url_ref['name']})",
    )

    service = one(by_kind, "Service", "cart-service")
    check(selects(service["spec"]["selector"], pod_labels), "Service selects the pods")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    check(
        service_ports["grpc"]["port"] == GRPC_PORT
        and service_ports["grpc"].get("appProtocol") == "grpc",
        "Service port grpc 50051 with appProtocol: grpc",
    )
    check(service_ports["http"]["port"] == HTTP_PORT, "Service port http 8080")
    for p in service_ports.values():
        check(p["targetPort"] in ports, f"Service port {p['name']} targets a named container port")

    pdb = one(by_kind, "PodDisruptionBudget", "cart-service")
    check(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selects the pods")
    check(
        pdb["spec"].get("maxUnavailable", 0) >= 1
        or pdb["spec"].get("minAvailable", spec["replicas"]) < spec["replicas"],
        "PDB lets a drain evict one pod at a time",
    )

    hpa = one(by_kind, "HorizontalPodAutoscaler", "cart-service")
    target = hpa["spec"]["scaleTargetRef"]
    check(
        (target["kind"], target["name"]) == ("Deployment", "cart-service"),
        "HPA scales the Deployment",
    )
    check(hpa["spec"]["minReplicas"] >= 2, f"HPA keeps {hpa['spec']['minReplicas']} >= 2 pods")
    [metric] = hpa["spec"]["metrics"]
    check(metric["resource"]["name"] == "cpu", "HPA on CPU")
    return url_ref["name"]


def main():
    base_path, dev_path = sys.argv[1], sys.argv[2]
    try:
        check_cart_service(load(base_path), "base")
        dev = load(dev_path)
        secret_name = check_cart_service(dev, "overlays/dev")
        secret = one(dev, "Secret", secret_name)
        check(
            {"config.toml", "redis-url"} <= set(secret.get("data", {}))
            | set(secret.get("stringData", {})),
            f"dev Secret {secret_name} holds config.toml and redis-url",
        )
        redis = one(dev, "Deployment", "redis")
        args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
        check(
            args[args.index("--maxmemory-policy") + 1] == "noeviction",
            "dev Redis: maxmemory-policy noeviction",
        )
    except (Broken, KeyError, ValueError, IndexError, TypeError) as error:
        print(f"FAILED: {type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
