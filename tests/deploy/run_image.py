#!/usr/bin/env python3
"""Runs the container image as Kubernetes would, and checks it from outside.

Usage: run_image.py <image> <rendered base.yaml> <config.toml>   (scripts/test-image runs it)

It must run in a network namespace of its own (scripts/test-image starts it under
`unshare --net`): only that namespace's loopback exists there, so the service binds the image's
default 0.0.0.0:50051 and 0.0.0.0:8080 as in a pod, beside nothing else, and no packet can leave.
In it, it starts a redis-server (noeviction, as the manifests require), a TLS listener for
OTLP, and a DNS server that knows two names, `redis.cart.svc.cluster.local` (and the collector's): the image resolves `redis://redis:PORT` through
its search domain and its nameserver, as in a cluster.

Each run is `buildah run --isolation chroot` of the image's own entrypoint, environment and user;
the config file (the given one, with redis_timeout raised to 10 s) is mounted read-only as the
Secret would be. Checked:
- the image holds exactly the files scripts/image puts there: no libc, no shell;
- without a config file the image refuses to bind 0.0.0.0 and exits 2 (dev mode's loopback rule);
- with one, against Redis by a DNS name: the process runs as the Deployment's runAsUser; every
  probe of the Deployment (startup, readiness, liveness) passes as the kubelet would run it;
  gRPC health answers SERVING; /readyz answers 200; an unauthenticated Create is refused; a Create
  and a Get with the config's API key work; SIGTERM with a Get in flight (Redis paused under it by CLIENT PAUSE)
  lets that Get finish and exits 0 well within terminationGracePeriodSeconds less the preStop;
- OTLP over TLS: with SSL_CERT_FILE naming the test's CA, the exporter's handshake with a TLS
  listener at `https://otel-collector` succeeds (ALPN h2);
- with the given config file as it is, against Redis by `localhost` (the /etc/hosts path of
  name resolution): SERVING, the cart of the last run is there, and with the image's own CA
  bundle the exporter refuses the test CA's certificate (unknown CA: the bundle's roots were
  loaded, and are the only ones); SIGTERM with a health Watch open (a stream that never ends):
  the drain cuts it after redis_timeout + 1 s and exits 0;
- the runs wrote nothing into the image's filesystem (readOnlyRootFilesystem holds).
Everything it starts or creates is removed when it ends, also on failure.
"""

import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import yaml

BUILDAH = ["buildah", "--storage-driver", os.environ.get("STORAGE_DRIVER", "vfs")]
VENV_BIN = Path(sys.executable).parent
GRPCURL = str(VENV_BIN / "grpcurl")
DNS_ADDR = "127.0.0.53"
SEARCH_DOMAIN = "cart.svc.cluster.local"
REDIS_NAME = f"redis.{SEARCH_DOMAIN}"
COLLECTOR = "otel-collector"
CONFIG_DIR = "/etc/cart-service"
# A Get waits on Redis paused this long, and may (redis_timeout of the mounted config).
PAUSE_MS = 3000
REDIS_TIMEOUT_S = 10
# What scripts/image puts in the image, and nothing else.
IMAGE_FILES = {
    "usr/local/bin/cart-service",
    "etc/passwd",
    "etc/group",
    "etc/nsswitch.conf",
    "etc/hosts",
    "etc/ssl/certs/ca-certificates.crt",
}


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


class Dns:
    """A UDP name server for one A record; it records every question it is asked."""

    def __init__(self, addr, names):
        self.names = names
        self.questions = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            try:
                self.sock.sendto(self.answer(query), peer)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue

    def answer(self, query):
        (tid,) = struct.unpack("!H", query[:2])
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode("ascii"))
            i += 1 + query[i]
        (qtype,) = struct.unpack("!H", query[i + 1 : i + 3])
        question = query[12 : i + 5]
        name = ".".join(labels).lower()
        self.questions.append((name, qtype))
        ip = self.names.get(name)
        if ip is None:  # NXDOMAIN
            return struct.pack("!HHHHHH", tid, 0x8183, 1, 0, 0, 0) + question
        if qtype != 1:  # the name exists, with no record of that type (AAAA)
            return struct.pack("!HHHHHH", tid, 0x8180, 1, 0, 0, 0) + question
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", tid, 0x8180, 1, 1, 0, 0) + question + record

    def close(self):
        self.stopped.set()
        self.thread.join()
        self.sock.close()


class TlsCollector:
    """Where OTLP goes: a TLS listener that completes (or fails) the handshake and hangs up.

    Enough to see the image's exporter speak TLS and check the certificate against its roots;
    what it would send after the handshake is the telemetry tests' business.
    """

    def __init__(self, port, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.set_alpn_protocols(["h2"])
        self.handshakes = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.handshakes.append(("ok", tls.selected_alpn_protocol()))
            except (ssl.SSLError, OSError) as error:
                self.handshakes.append(("failed", str(error)))
                conn.close()

    def close(self):
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def certificates(dir, name):
    """A throwaway CA, and a server certificate for `name` that it signed."""

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=dir, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=cart-image-test-ca")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}")
    (Path(dir) / "san.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")
    return Path(dir) / "ca.pem", Path(dir) / "server.pem", Path(dir) / "server.key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_command(port, *args, timeout=5.0):
    """One command over RESP; returns the raw reply line."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload.encode())
        return s.recv(4096).decode(errors="replace")


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def grpcurl(*args, timeout=10):
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "5", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def health(port, service):
    out = grpcurl("-d", json.dumps({"service": service}), f"127.0.0.1:{port}", "grpc.health.v1.Health/Check")
    return json.loads(out.stdout).get("status") if out.returncode == 0 else None


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise Failed(f"timed out after {timeout} s waiting for {what}")


def descendants(pid):
    """Every process under `pid` (buildah run forks the container's process below itself)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ids(pid):
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    field = {line.split(":")[0]: line.split()[1:] for line in status}
    return {int(u) for u in field["Uid"]}, {int(g) for g in field["Gid"]}


class Container:
    """`buildah run` of the image's entrypoint in one working container."""

    def __init__(self, name, entrypoint, env, mounts, log_dir):
        self.name, self.entrypoint, self.env, self.mounts = name, entrypoint, env, mounts
        self.log_path = Path(log_dir) / f"{name}.log"
        self.process = None
        self.started = None

    def start(self):
        argv = [*BUILDAH, "run", "--isolation", "chroot"]
        for source, target in self.mounts:
            argv += ["-v", f"{source}:{target}:ro"]
        for key, value in self.env.items():
            argv += ["-e", f"{key}={value}"]
        self.log = open(self.log_path, "w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [*argv, self.name, "--", *self.entrypoint], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.started = time.monotonic()

    def output(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def service_pid(self):
        for pid in descendants(self.process.pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "cart-service":
                    return pid
            except OSError:
                continue
        return None

    def wait(self, timeout):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name} still running after {timeout} s:\n{self.output()}")

    def kill(self):
        if self.process and self.process.poll() is None:
            pid = self.service_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process:
            self.log.close()


def image_config(image):
    out = subprocess.run(
        [*BUILDAH, "inspect", "--type", "image", image], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)["OCIv1"]["config"]


def files_of(name):
    """Regular files and symlinks of a working container's root, relative, with their sizes."""
    root = subprocess.run(
        [*BUILDAH, "mount", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        found = {}
        for dirpath, _, filenames in os.walk(root):
            for filename in filenames:
                path = Path(dirpath) / filename
                found[str(path.relative_to(root))] = path.lstat().st_size
        return found
    finally:
        subprocess.run([*BUILDAH, "umount", name], capture_output=True, check=False)


def main():
    image, manifest_path, config_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    # Stopped from outside (a CI timeout, Ctrl-C of the script): clean up on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open(manifest_path, encoding="utf-8") as f:
        [deployment] = [
            d for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment"
        ]
    pod = deployment["spec"]["template"]["spec"]
    [spec] = [c for c in pod["containers"] if c["name"] == "cart-service"]
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    grpc_port, http_port = ports["grpc"], ports["http"]

    config = image_config(image)
    entrypoint = config["Entrypoint"]
    check(
        config["User"] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}",
        f"the image's USER {config['User']} is the Deployment's runAsUser:runAsGroup",
    )
    check(
        set(config.get("ExposedPorts", {})) == {f"{grpc_port}/tcp", f"{http_port}/tcp"},
        f"the image exposes {sorted(config.get('ExposedPorts', {}))}",
    )

    temp = Path(tempfile.mkdtemp(prefix="cart-image-test-"))
    created, containers, redis, dns, collector, watchers = [], [], None, None, None, []
    try:
        config_dir = temp / "config"
        config_dir.mkdir()
        # Mounted as a Secret volume would be: a directory holding config.toml, readable by
        # the image's user (mkdtemp makes 0700 directories).
        # The given file, with room for a call to wait on a paused Redis (top-level keys first).
        (config_dir / "config.toml").write_text(
            f'redis_timeout = "{REDIS_TIMEOUT_S}s"\n' + config_path.read_text(encoding="utf-8")
        )
        os.chmod(temp, 0o755)
        os.chmod(config_dir, 0o755)
        os.chmod(config_dir / "config.toml", 0o444)
        # The given file as it is, for the last run.
        plain_dir = temp / "plain"
        plain_dir.mkdir()
        (plain_dir / "config.toml").write_text(config_path.read_text(encoding="utf-8"))
        os.chmod(plain_dir, 0o755)
        os.chmod(plain_dir / "config.toml", 0o444)
        api_key = tomllib.loads(config_path.read_text(encoding="utf-8"))["tenants"][0]["api_keys"][0]["key"]

        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server", lambda: _ping(redis_port), 10)
        dns = Dns(DNS_ADDR, {REDIS_NAME: "127.0.0.1", f"{COLLECTOR}.{SEARCH_DOMAIN}": "127.0.0.1"})
        (temp / "tls").mkdir()
        test_ca, server_cert, server_key = certificates(temp / "tls", COLLECTOR)
        (config_dir / "otlp-ca.pem").write_bytes(test_ca.read_bytes())
        os.chmod(config_dir / "otlp-ca.pem", 0o444)
        otlp_port = free_port()
        collector = TlsCollector(otlp_port, server_cert, server_key)
        otlp = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://{COLLECTOR}:{otlp_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
        }

        def container(tag):
            name = f"cart-image-test-{os.getpid()}-{tag}"
            subprocess.run(
                [*BUILDAH, "from", "--quiet", "--name", name, "--pull-never",
                 "--dns", DNS_ADDR, "--dns-search", SEARCH_DOMAIN, "--dns-option", "ndots:5",
                 image],
                capture_output=True, text=True, check=True,
            )
            created.append(name)
            return name

        # The image's own files, before anything ran in it.
        first = container("refuse")
        before = files_of(first)
        check(set(before) == IMAGE_FILES, f"the image holds only {sorted(IMAGE_FILES)}")
        check(
            not any(Path(p).name.startswith(("ld-linux", "libc.so")) for p in before),
            "no dynamic loader, no libc",
        )

        # 1. Dev mode: no config file, and the image's 0.0.0.0 binds are refused.
        refuse = Container(first, entrypoint, {}, [], temp)
        containers.append(refuse)
        refuse.start()
        code = refuse.wait(20)
        check(
            code == 2 and f"refusing to bind 0.0.0.0:{grpc_port} without a config file" in refuse.output(),
            f"without a config file the image refuses 0.0.0.0:{grpc_port} and exits {code}",
        )

        # 2. As in a pod: the Secret's config file, Redis by its cluster DNS name.
        # OTLP over TLS to a collector whose certificate the test's CA signed (SSL_CERT_FILE).
        env = {
            "CART_CONFIG": f"{CONFIG_DIR}/config.toml",
            "CART_REDIS_URL": f"redis://redis:{redis_port}/",
            **otlp,
            "SSL_CERT_FILE": f"{CONFIG_DIR}/otlp-ca.pem",
        }
        run = Container(container("serve"), entrypoint, env, [(config_dir, CONFIG_DIR)], temp)
        containers.append(run)
        run.start()
        wait_for("the log line 'cart-service listening'", lambda: "cart-service listening" in run.output() or run.process.poll() is not None, 30)
        if run.process.poll() is not None:
            raise Failed("the image did not start with a config file")
        check(True, "the image starts with a config file")
        pid = wait_for("the service's process", run.service_pid, 5)
        uids, gids = ids(pid)
        check(
            uids == {pod["securityContext"]["runAsUser"]} and gids == {pod["securityContext"]["runAsGroup"]},
            f"the service runs as uid {sorted(uids)} gid {sorted(gids)}, not root",
        )
        bound = f"grpc_addr=0.0.0.0:{grpc_port}"
        check(bound in run.output() and f"http_addr=0.0.0.0:{http_port}" in run.output(), f"it listens on 0.0.0.0:{grpc_port} and 0.0.0.0:{http_port}")

        def probe(name):
            spec_probe = spec[name]
            if "httpGet" in spec_probe:
                port = ports.get(spec_probe["httpGet"]["port"], spec_probe["httpGet"]["port"])
                status, _ = http_get(port, spec_probe["httpGet"]["path"])
                return 200 <= status < 400
            service = spec_probe["grpc"].get("service", "")
            return health(spec_probe["grpc"]["port"], service) == "SERVING"

        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            wait_for(f"the Deployment's {name}", lambda: probe(name), 15)
            check(True, f"the Deployment's {name} passes: {json.dumps({k: v for k, v in spec[name].items() if k in ('httpGet', 'grpc')})}")
        check(health(grpc_port, "") == "SERVING", "grpc.health.v1 Check (server) answers SERVING")
        check(health(grpc_port, "cart.v1.CartService") == "SERVING", "grpc.health.v1 Check cart.v1.CartService answers SERVING")
        status, body = http_get(http_port, "/readyz")
        check(status == 200, f"/readyz answers {status} {body.strip()!r}")
        check(
            any(name == REDIS_NAME and qtype == 1 for name, qtype in dns.questions),
            f"the image resolved redis through DNS: asked {sorted(set(n for n, _ in dns.questions))}",
        )

        create_body = json.dumps({"currency": "USD", "items": [{"sku": "SKU-1", "title": "Mug", "quantity": 2, "unit_price": 1250}]})
        refused = grpcurl("-d", create_body, f"127.0.0.1:{grpc_port}", "cart.v1.CartService/Create")
        check(refused.returncode != 0 and "Unauthenticated" in refused.stderr + refused.stdout, "Create without an API key: UNAUTHENTICATED (the config file is in force)")
        auth = ["-H", f"authorization: Bearer {api_key}"]
        created_cart = grpcurl(*auth, "-d", create_body, f"127.0.0.1:{grpc_port}", "cart.v1.CartService/Create")
        check(created_cart.returncode == 0, f"Create over gRPC {created_cart.stderr.strip()}".strip())
        cart = json.loads(created_cart.stdout)
        got = grpcurl(*auth, "-d", json.dumps({"cart_id": cart["id"]}), f"127.0.0.1:{grpc_port}", "cart.v1.CartService/Get")
        check(got.returncode == 0, f"Get over gRPC {got.stderr.strip()}".strip())
        read = json.loads(got.stdout)
        check(
            read["id"] == cart["id"] and read["items"][0]["sku"] == "SKU-1" and int(read["items"][0]["quantity"]) == 2,
            f"Get returns the cart Create made ({cart['id']}, 2 × SKU-1)",
        )

        handshake = wait_for("a TLS handshake from the OTLP exporter", lambda: collector.handshakes[:1], 10)[0]
        check(
            handshake == ("ok", "h2"),
            f"OTLP over TLS: the exporter's handshake with https://{COLLECTOR} (resolved by DNS) "
            f"succeeded, verified against SSL_CERT_FILE, ALPN h2: {handshake}",
        )

        # SIGTERM with a call in flight: Redis sleeps under a Get, the gauge shows it running.
        paused = redis_command(redis_port, "CLIENT", "PAUSE", str(PAUSE_MS), "ALL")
        check(paused.startswith("+OK"), f"Redis paused for {PAUSE_MS} ms: {paused.strip()}")
        in_flight = subprocess.Popen(
            [GRPCURL, "-plaintext", "-max-time", "10", *auth, "-d", json.dumps({"cart_id": cart["id"]}),
             f"127.0.0.1:{grpc_port}", "cart.v1.CartService/Get"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        def gauge():
            text = http_get(http_port, "/metrics")[1]
            return [line for line in text.splitlines() if line.startswith("cart_in_flight_requests")]

        try:
            wait_for("a Get in flight (cart_in_flight_requests 1)", lambda: gauge() == ["cart_in_flight_requests 1"], PAUSE_MS / 1000 - 0.5)
        except Failed:
            print(gauge(), in_flight.poll(), flush=True)
            if in_flight.poll() is not None:
                print(in_flight.communicate(), flush=True)
            raise
        terminated = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        out, err = in_flight.communicate(timeout=15)
        check(in_flight.returncode == 0 and cart["id"] in out, f"the Get in flight at SIGTERM finishes with the cart {err.strip()}".strip())
        code = run.wait(grace)
        took = time.monotonic() - terminated
        budget = grace - pre_stop
        check(code == 0, f"SIGTERM: exit code {code}")
        check(took < budget, f"SIGTERM → exit in {took:.2f} s (Redis paused {PAUSE_MS} ms under the Get in flight), within terminationGracePeriodSeconds {grace} − preStop {pre_stop} = {budget} s")
        check("stopped" in run.output(), "the log says it drained and stopped")

        # 3. Redis as `localhost`: glibc's files module, through the image's nsswitch.conf.
        # The image's own CA bundle this time: the test's CA is not in it.
        env_local = dict(env, CART_REDIS_URL=f"redis://localhost:{redis_port}/")
        del env_local["SSL_CERT_FILE"]
        seen = len(collector.handshakes)
        local = Container(container("localhost"), entrypoint, env_local, [(plain_dir, CONFIG_DIR)], temp)
        containers.append(local)
        local.start()
        wait_for("SERVING against redis://localhost", lambda: health(grpc_port, "cart.v1.CartService") == "SERVING" or local.process.poll() is not None, 30)
        check(local.process.poll() is None, "SERVING against redis://localhost (resolved from /etc/hosts)")
        local_pid = wait_for("the service's process", local.service_pid, 5)
        again = grpcurl(*auth, "-d", json.dumps({"cart_id": cart["id"]}), f"127.0.0.1:{grpc_port}", "cart.v1.CartService/Get")
        check(again.returncode == 0 and json.loads(again.stdout)["id"] == cart["id"], "a new container reads the cart the last one made (it is in Redis)")
        refused_tls = wait_for("a TLS handshake from the OTLP exporter", lambda: collector.handshakes[seen:seen + 1], 10)[0]
        check(
            refused_tls[0] == "failed" and "unknown ca" in refused_tls[1].lower(),
            "with the image's CA bundle the exporter loads its roots and refuses the test CA's "
            f"certificate: {refused_tls[1]}",
        )
        # A client's health Watch never ends by itself: the drain cuts it after its limit.
        watch = subprocess.Popen(
            [GRPCURL, "-plaintext", "-d", "{}", f"127.0.0.1:{grpc_port}", "grpc.health.v1.Health/Watch"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        watchers.append(watch)
        wait_for("a Watch stream open", lambda: _watching(grpc_port), 10)
        terminated = time.monotonic()
        os.kill(local_pid, signal.SIGTERM)
        code = local.wait(grace)
        took = time.monotonic() - terminated
        check(code == 0, f"SIGTERM with a health Watch open: exit code {code}")
        check(
            took < budget and "drain cut" in local.output(),
            f"the drain cut the Watch and exited in {took:.2f} s (redis_timeout 2 s + 1 s), within {budget} s",
        )

        after = files_of(run.name)
        written = {p: size for p, size in after.items() if p not in IMAGE_FILES and size > 0}
        check(not written, f"nothing written into the image's filesystem ({written or 'none'})")
        return 0
    except (Failed, KeyError, ValueError, IndexError, OSError, subprocess.SubprocessError) as failure:
        print(f"FAILED: {type(failure).__name__}: {failure}", flush=True)
        for c in containers:
            if c.process is not None:
                print(f"--- output of {c.name}:\n{c.output()}", flush=True)
        return 1
    finally:
        for c in containers:
            c.kill()
        for w in watchers:
            if w.poll() is None:
                w.kill()
            w.communicate()
        for name in created:
            subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False)
        if dns:
            dns.close()
        if collector:
            collector.close()
        if redis:
            redis.terminate()
            redis.wait(timeout=10)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _watching(port):
    """Whether a connection to `port` is established in this network namespace (the Watch's:
    every other client of the test has hung up)."""
    established = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            established += state == "01" and int(local.split(":")[1], 16) == port
    return established > 0


def _ping(port):
    try:
        return redis_command(port, "PING", timeout=0.5).startswith("+PONG")
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
