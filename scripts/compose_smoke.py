#!/usr/bin/env python3
"""`make compose-smoke`: start compose.yaml for real, prove it works, tear it down.

No image registry is reachable from the development machines, so the images compose.yaml pulls
are built here from what is reachable (cached, so a second run builds nothing):

- ``social-triage/debian:bookworm``: a Debian base made with debootstrap from Debian's mirror;
- ``social-triage/kafka:4.1.1``: Apache's jars from Maven Central (docker/kafka);
- ``social-triage/ferretdb:2.7.0``: FerretDB 2 (its Go module) on PostgreSQL 15 with DocumentDB
  (built from ../shared/vendor), for MongoDB (docker/ferretdb);
- ``social-triage:latest``: the project's Dockerfile on that base; it also serves Prefect.

Then ``docker-compose -f compose.yaml -f compose.smoke.yaml up -d``, a wait for every
healthcheck, and the checks: the connector service replayed the sample posts and exited 0, the
workers queued them, the marketing export shows a trend over the last day, the bootstrapped
admin signs in to the dashboard, and a flow run completes on the Prefect server. The stack and
its volumes are removed whatever happened. Needs dockerd running and docker-compose; one line
on stderr and exit 1 when a step fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO.parent / "shared" / "vendor"
CACHE = Path(os.environ.get("TRIAGE_CACHE", Path.home() / ".cache" / "social-triage")) / "docker"
BASE = "social-triage/debian:bookworm"
HOST_AUTHORITIES = Path("/usr/local/share/ca-certificates")
KAFKA_VERSION, FERRETDB_VERSION = "4.1.1", "v2.7.0"
PROJECT = "triage-smoke"
COMPOSE = ["docker-compose", "-p", PROJECT, "-f", "compose.yaml", "-f", "compose.smoke.yaml"]
# Every secret compose.yaml declares needs its file, whichever profiles run.
SECRET_NAMES = tuple(yaml.safe_load((REPO / "compose.yaml").read_text())["secrets"])


class SmokeFailed(Exception):
    """One step did not work; the message says which and why."""


def say(message: str) -> None:
    print(f"compose-smoke: {message}", flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True,
        capture: bool = False, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=REPO, env=env, text=True, input=stdin,
                          capture_output=capture)
    if check and done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:] if capture else []
        raise SmokeFailed(f"`{' '.join(cmd[:4])} …` exited {done.returncode} {' '.join(tail)}")
    return done


def has_image(name: str) -> bool:
    return run(["docker", "image", "inspect", name], check=False, capture=True).returncode == 0


def build_base() -> None:
    """Debian bookworm with Python (the app's venv) from Debian's own mirror, imported once."""
    if has_image(BASE):
        return
    say(f"debootstrap {BASE} (once, a few minutes)")
    with tempfile.TemporaryDirectory(prefix="debian-rootfs-") as root:
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", root, "http://deb.debian.org/debian"], capture=True)
        trust_host_authorities(Path(root))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", "ENV LANG=C.UTF-8", "--change",
             'CMD ["/bin/bash"]', "-", BASE], stdin=tar.stdout, capture_output=True, text=True,
        )
        if tar.wait() != 0 or imported.returncode != 0:
            raise SmokeFailed(f"docker import of the Debian base failed: {imported.stderr}")


def trust_host_authorities(root: Path) -> None:
    """The certificate authorities this machine adds to Debian's (``/usr/local/share/
    ca-certificates``), trusted in the image too: where the registries are reached through a
    TLS-inspecting proxy, as here, pip in an image that does not trust its CA reaches nothing."""
    extra = sorted(HOST_AUTHORITIES.glob("**/*.crt")) if HOST_AUTHORITIES.is_dir() else []
    if not extra:
        return
    target = root / "usr" / "local" / "share" / "ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for crt in extra:
        shutil.copy2(crt, target / crt.name)
    run(["chroot", str(root), "update-ca-certificates"], capture=True)


def kafka_libs() -> Path:
    """The broker's and its tools' jars, copied from Maven Central once (docker/kafka/pom.xml)."""
    libs = CACHE / f"kafka-{KAFKA_VERSION}-libs"
    if not (libs / f"kafka-tools-{KAFKA_VERSION}.jar").exists():
        say("fetching Kafka's jars from Maven Central (once)")
        partial = libs.with_name(libs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        run(["mvn", "-q", "-B", "-f", str(REPO / "docker" / "kafka" / "pom.xml"),
             "dependency:copy-dependencies", f"-DoutputDirectory={partial}"], capture=True)
        partial.rename(libs)
    return libs


def ferretdb_binary() -> Path:
    """FerretDB 2, built once from its Go module (static, so it runs on the Debian base)."""
    binary = CACHE / f"ferretdb-{FERRETDB_VERSION}"
    if not binary.exists():
        say(f"building FerretDB {FERRETDB_VERSION} from its Go module (once)")
        with tempfile.TemporaryDirectory(prefix="ferretdb-") as gobin:
            env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
            run(["go", "install",
                 f"github.com/FerretDB/FerretDB/v2/cmd/ferretdb@{FERRETDB_VERSION}"], env=env,
                capture=True)
            binary.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(gobin) / "ferretdb", binary)
    return binary


def build_from(folder: str, tag: str, extra: Callable[[Path], None]) -> None:
    """docker build of docker/<folder> with what it needs copied into a temporary context."""
    with tempfile.TemporaryDirectory(prefix=f"{folder}-context-") as tmp:
        context = Path(tmp)
        shutil.copytree(REPO / "docker" / folder, context, dirs_exist_ok=True)
        extra(context)
        run(["docker", "build", "-q", "--build-arg", f"BASE={BASE}", "-t", tag, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture=True)


def build_images() -> None:
    build_base()
    say("building images (cached layers are reused)")

    def kafka(context: Path) -> None:
        shutil.copytree(kafka_libs(), context / "libs")

    def ferretdb(context: Path) -> None:
        (context / "vendor").mkdir()
        for tarball in sorted(VENDOR.glob("*.tar.gz")):
            shutil.copy2(tarball, context / "vendor" / tarball.name)
        shutil.copy2(ferretdb_binary(), context / "ferretdb")

    build_from("kafka", f"social-triage/kafka:{KAFKA_VERSION}", kafka)
    build_from("ferretdb", f"social-triage/ferretdb:{FERRETDB_VERSION.lstrip('v')}", ferretdb)
    run(["docker", "build", "-q", "--build-arg", f"BASE={BASE}", "-t", "social-triage:latest",
         "."], env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def containers(env: dict[str, str]) -> dict[str, dict[str, object]]:
    """Each container of the stack by name, with its state (health when it has a check)."""
    ids = run([*COMPOSE, "ps", "-q"], env=env, capture=True).stdout.split()
    if not ids:
        return {}
    found = json.loads(run(["docker", "inspect", *ids], capture=True).stdout)
    return {c["Name"].lstrip("/"): c["State"] for c in found}


def wait_for(what: str, ready: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SmokeFailed(f"{what}: not so after {timeout_s:.0f} s")
        time.sleep(3)


def healthy(env: dict[str, str]) -> bool:
    states = containers(env)
    for name, state in states.items():
        health = state.get("Health")
        if isinstance(health, dict) and health.get("Status") != "healthy":
            return False
        if not isinstance(health, dict) and not state.get("Running") and state.get("ExitCode"):
            raise SmokeFailed(f"{name} exited {state.get('ExitCode')}")
    return bool(states)


def exited_ok(env: dict[str, str], service: str) -> bool:
    states = {n: s for n, s in containers(env).items() if f"_{service}_" in n}
    if not states:
        raise SmokeFailed(f"no {service} container")
    for name, state in states.items():
        if state.get("Running"):
            return False
        if state.get("ExitCode") != 0:
            raise SmokeFailed(f"{name} exited {state.get('ExitCode')}")
    return True


def check_stack(env: dict[str, str], url: str, password: str) -> None:
    wait_for("every healthcheck healthy", lambda: healthy(env), 600)
    say("every healthcheck is healthy")
    wait_for("the admin bootstrapped", lambda: exited_ok(env, "bootstrap"), 120)
    wait_for("the sample posts replayed", lambda: exited_ok(env, "connector"), 300)
    say("the connector service replayed the sample posts")
    client = httpx.Client(base_url=url, timeout=30)
    signed = client.post("/api/v1/login", json={"name": "admin", "password": password})
    if signed.status_code != 200:
        raise SmokeFailed(f"admin sign-in: {signed.status_code} {signed.text[:200]}")
    if client.get("/agent").status_code != 200:
        raise SmokeFailed("the agent console did not open for the signed-in admin")
    say("the bootstrapped admin signed in to the dashboard")

    def queued() -> bool:
        status = client.get("/api/v1/status").json()
        return int(status["queued"]) > 0 and sum(status["open_by_band"].values()) > 0

    wait_for("posts queued by the workers", queued, 300)
    say(f"queued: {client.get('/api/v1/status').json()}")
    export = client.get("/marketing/export.csv", params={"hours": 24})
    rows = export.text.strip().splitlines()[1:]
    if export.status_code != 200 or not rows:
        raise SmokeFailed(f"no trend over the last day: {export.status_code} {export.text[:200]}")
    say(f"trend: {len(rows)} bucket-topic rows over the last day")
    run([*COMPOSE, "exec", "-T", "flows", "triage", "flows", "run", "trend-report",
         "--param", "period=day"], env=env, capture=True)
    runs = run([*COMPOSE, "exec", "-T", "flows", "python3", "-c",
                "import json, urllib.request as u; r = u.Request('http://prefect:4200/api/"
                "flow_runs/filter', data=b'{}', headers={'Content-Type': 'application/json'});"
                " print(json.dumps([[x['name'], x['state_type']] for x in"
                " json.load(u.urlopen(r))]))"], env=env, capture=True)
    states = [state for _, state in json.loads(runs.stdout)]
    if "COMPLETED" not in states:
        raise SmokeFailed(f"no completed flow run on the Prefect server: {states}")
    say("a trend-report flow run completed on the Prefect server")


def main() -> int:
    started = time.monotonic()
    for tool in ("docker", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            print(f"compose-smoke: {tool} is not on PATH", file=sys.stderr)
            return 1
    if run(["docker", "info"], check=False, capture=True).returncode != 0:
        print("compose-smoke: dockerd is not running (start it as root)", file=sys.stderr)
        return 1
    secrets_dir = Path(tempfile.mkdtemp(prefix="triage-smoke-secrets-"))
    password = secrets.token_urlsafe(16)
    for name in SECRET_NAMES:
        (secrets_dir / name).write_text(secrets.token_urlsafe(32) + "\n")
    (secrets_dir / "triage_admin_password").write_text(password + "\n")
    for path in secrets_dir.iterdir():
        path.chmod(0o644)  # read by the image's own user, not root
    port = free_port()
    env = {**os.environ, "TRIAGE_SECRETS_HOST": str(secrets_dir),
           "TRIAGE_DASHBOARD_PORT": str(port), "TRIAGE_PREFECT_PORT": str(free_port()),
           "TRIAGE_WEBHOOK_PORT": str(free_port())}
    try:
        build_images()
        say(f"images ready after {time.monotonic() - started:.0f} s; starting the stack")
        run([*COMPOSE, "up", "-d", "--no-build"], env=env, capture=True)
        check_stack(env, f"http://127.0.0.1:{port}", password)
    except (SmokeFailed, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"compose-smoke: FAILED: {exc}", file=sys.stderr)
        run([*COMPOSE, "logs", "--tail", "30"], env=env, check=False)
        return 1
    finally:
        run([*COMPOSE, "down", "-v", "--remove-orphans"], env=env, check=False, capture=True)
        shutil.rmtree(secrets_dir, ignore_errors=True)
    say(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
