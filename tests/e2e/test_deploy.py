"""The deployment files in deploy/, run as far as this machine can.

A virtualenv of `requirements-runtime.txt` alone (no test or benchmark tools) runs everything: the
Docker image's entry point migrates and starts one process, the systemd unit's own ExecStart starts a
second, both on a fresh PostgreSQL database and Redis; `deploy/nginx/imchat.conf` serves them over TLS
(a certificate made for the run) and the clients talk through it. The compose file and the Dockerfile
are not built (no Docker daemon here): they are checked against the files they name.
"""

import asyncio
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.e2e.harness import ROOT, Client, User, base_env, free_port, send_msg_frame, send_ok
from tests.services import POSTGRES_URL, REDIS_URL, missing, require_postgres, require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

DEPLOY = ROOT / "deploy"
TEST_AND_BENCH_TOOLS = ("pytest", "playwright", "schemathesis", "matplotlib", "psutil", "hypothesis", "websockets")


def run_checked(args: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **options)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the runtime requirements only."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    run_checked([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    run_checked([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", "-r",
                 str(ROOT / "requirements-runtime.txt")])
    return venv


def test_the_runtime_requirements_hold_no_test_or_benchmark_tool(runtime_venv):
    installed = run_checked([str(runtime_venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"]).stdout
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.splitlines()}

    assert not names & set(TEST_AND_BENCH_TOOLS), names & set(TEST_AND_BENCH_TOOLS)
    assert {"django", "channels", "daphne", "channels-redis"} <= names


@pytest.fixture(scope="module")
def deployment(runtime_venv, tmp_path_factory):
    """Two processes (the Docker entry point's and the systemd unit's) behind nginx with TLS."""
    require_postgres()
    require_redis()
    if not shutil.which("nginx"):
        missing("nginx", "the deployment test runs deploy/nginx/imchat.conf (apt-get install nginx)")
    work = tmp_path_factory.mktemp("deploy")
    database = f"imchat_deploy_{secrets.token_hex(6)}"
    admin_url = POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = base_env(str(work / "var"), DATABASE_URL=POSTGRES_URL.rsplit("/", 1)[0] + "/" + database,
                   REDIS_URL=REDIS_URL, IM_REDIS_PREFIX=f"deploy{secrets.token_hex(4)}",
                   IM_STATIC_ROOT=str(work / "static"), IM_HTTPS="1", IM_TRUSTED_PROXIES="1", IM_BIND="127.0.0.1",
                   PATH=f"{runtime_venv / 'bin'}:{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    processes: list[subprocess.Popen] = []
    try:
        entrypoint = str(DEPLOY / "docker" / "entrypoint.sh")
        run_checked([entrypoint], cwd=ROOT, env={**env, "IM_MIGRATE": "1"})
        docker_port, systemd_port = free_port(), free_port()
        processes.append(start(work / "docker.log", [entrypoint], {**env, "IM_PORT": str(docker_port)}))
        processes.append(start(work / "systemd.log", unit_command(runtime_venv, systemd_port), env))
        for port, process in zip((docker_port, systemd_port), processes):
            wait_healthy(port, process)
        nginx, tls_port, http_port, ca = start_nginx(work, [docker_port, systemd_port])
        processes.append(nginx)
        yield {"env": env, "tls": tls_port, "http": http_port, "ca": ca, "log": work / "imchat.log",
               "python": str(runtime_venv / "bin" / "python")}
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def unit_command(venv: Path, port: int) -> list[str]:
    """The systemd unit's ExecStart for instance `port`, with this checkout and venv for /srv/imchat."""
    unit = (DEPLOY / "systemd" / "imchat@.service").read_text()
    [line] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    command = line.removeprefix("ExecStart=").replace("%i", str(port))
    command = command.replace("/srv/imchat/.venv", str(venv)).replace("/srv/imchat", str(ROOT))
    return shlex.split(command)


def start(log: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the process on :{port} exited with {process.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the process on :{port} never became ready")


def start_nginx(work: Path, ports: list[int]) -> tuple[subprocess.Popen, int, int, str]:
    """deploy/nginx/imchat.conf as shipped, with this run's ports, certificate and log paths."""
    cert, key = work / "fullchain.pem", work / "privkey.pem"
    run_checked(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=im.mall.example",
                 "-addext", "subjectAltName=DNS:im.mall.example,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)])
    tls_port, http_port = free_port(), free_port()
    site = (DEPLOY / "nginx" / "imchat.conf").read_text()
    for shipped, here in (("listen 443 ", f"listen {tls_port} "), ("listen 80;", f"listen {http_port};"),
                          ("/etc/ssl/imchat/fullchain.pem", str(cert)), ("/etc/ssl/imchat/privkey.pem", str(key)),
                          ("/var/log/nginx/imchat.log", str(work / "imchat.log"))):
        assert shipped in site, shipped
        site = site.replace(shipped, here)
    (work / "imchat.conf").write_text(site)
    upstream = (DEPLOY / "nginx" / "upstream.conf").read_text()
    upstream = upstream.replace("127.0.0.1:9601", f"127.0.0.1:{ports[0]}").replace("127.0.0.1:9602",
                                                                                  f"127.0.0.1:{ports[1]}")
    (work / "upstream.conf").write_text(upstream)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n  include {work}/upstream.conf;\n  include {work}/imchat.conf;\n}}\n")
    run_checked(["nginx", "-t", "-p", f"{work}/", "-c", str(work / "nginx.conf")])
    nginx = subprocess.Popen(["nginx", "-p", f"{work}/", "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/", timeout=1, trust_env=False)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return nginx, tls_port, http_port, str(cert)


def users(deployment, count: int) -> list[User]:
    code = ("import json\nfrom accounts.services import user_create\nfrom accounts.tokens import token_mint\n"
            f"names = ['dep{secrets.token_hex(3)}' + str(n) for n in range({count})]\n"
            "print(json.dumps([{'id': u.pk, 'name': u.username, 'token': token_mint(user_id=u.pk)} "
            "for u in (user_create(username=n, nickname=n) for n in names)]))")
    out = run_checked([deployment["python"], "manage.py", "shell", "-c", code], cwd=ROOT, env=deployment["env"])
    import json

    return [User(**row) for row in json.loads(out.stdout.strip().splitlines()[-1])]


def test_through_nginx_with_tls_two_people_chat_and_the_log_keeps_no_token(deployment):
    context = ssl.create_default_context(cafile=deployment["ca"])
    base = f"https://127.0.0.1:{deployment['tls']}"
    alice, bob = users(deployment, 2)

    with httpx.Client(verify=context, trust_env=False, timeout=10) as https:
        ready = https.get(base + "/readyz")
        page = https.get(base + "/")  # X-Forwarded-Proto https from nginx: no redirect loop
        scraped = https.get(base + "/metrics")
        too_big = https.post(base + "/api/v1/uploads/", content=b"x" * (7 * 1024 * 1024),
                             headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"})
    plain = httpx.get(f"http://127.0.0.1:{deployment['http']}/chat/", trust_env=False, timeout=10)

    async def chat():
        url = f"wss://127.0.0.1:{deployment['tls']}/?token="
        alices = await Client.open(url + alice.token, ssl=context)
        bobs = await Client.open(url + bob.token, ssl=context)
        for client in (alices, bobs):
            await client.ready()
        await send_ok(alices, send_msg_frame(bob.id, "through nginx"))
        pushed = await bobs.expect_code(200)
        await asyncio.gather(alices.close(), bobs.close())
        return pushed

    pushed = asyncio.run(asyncio.wait_for(chat(), 30))

    assert ready.status_code == 200 and ready.json()["redis"] == "ok"
    assert page.status_code == 200 and page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert scraped.status_code == 404  # metrics are read from each process's own address only
    assert page.headers["X-Request-ID"]  # nginx's $request_id reached imchat and came back
    assert too_big.status_code == 413  # nginx's client_max_body_size, before imchat reads it
    assert plain.status_code == 301 and plain.headers["Location"] == "https://127.0.0.1/chat/"
    assert pushed["result"]["msg"] == "through nginx"
    log = deployment["log"].read_text()
    assert '"GET / HTTP/1.1" 101' in log and "token" not in log and "/readyz" not in log


def test_the_systemd_unit_verifies():
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (the unit's command line is run by the test above)")
    unit = (DEPLOY / "systemd" / "imchat@.service").read_text()
    with_paths = unit.replace("/srv/imchat/.venv", str(ROOT / ".venv")).replace("/srv/imchat", str(ROOT))
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"imchat-unit-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        env_file = work / "imchat.env"
        env_file.write_text("DJANGO_SECRET_KEY=x\n")
        (work / "imchat@9601.service").write_text(with_paths.replace("/etc/imchat/imchat.env", str(env_file)))
        done = subprocess.run(["systemd-analyze", "verify", str(work / "imchat@9601.service")], capture_output=True,
                              text=True, timeout=60)
    finally:
        shutil.rmtree(work)

    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_the_compose_file_and_the_dockerfile_name_what_exists():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    services = compose["services"]

    assert {"nginx", "imchat1", "imchat2", "postgres", "redis", "migrate"} <= set(services)
    for name in ("imchat1", "imchat2"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["environment"]["IM_MIGRATE"] == "1"
    for mount in services["nginx"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./") and source != "./certs":
            assert (DEPLOY / source).is_file(), source
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    for source in copied:
        assert (ROOT / source).exists(), source
    packages = {path.parent.name for path in ROOT.glob("*/apps.py")} | {"imchat"}
    assert packages <= set(copied), packages - set(copied)  # every app of the project is in the image
    assert "pip install -r requirements-runtime.txt" in dockerfile and "USER imchat" in dockerfile
    assert os.access(DEPLOY / "docker" / "entrypoint.sh", os.X_OK)
