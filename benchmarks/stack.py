"""The multi-worker stack on one machine: PostgreSQL databases, an MLflow tracking server with basic
authentication in front of them, and N ``tune`` workers sharing one Optuna study.

    python benchmarks/stack.py --workers 3 --dataset digits --encoder raw --n_trials 10

The tests start the same server (``tracking_server``) on a free loopback port. Across machines the
pieces are the same: one PostgreSQL, one ``mlflow server``, workers anywhere that can reach both.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from selector.study.tracking import mask_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ sits in the project's root
ADMIN = "admin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def model_server(model: str, env: dict | None = None, host: str = "127.0.0.1"):
    """``mlflow models serve -m model --env-manager local`` on a free port, as a user starts it; yields
    ``(port, seconds from process start until /ping answers)`` and stops the server on exit."""
    import tempfile
    import urllib.request

    port = free_port(host)
    with tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False) as log:
        start = time.perf_counter()
        server = subprocess.Popen(["mlflow", "models", "serve", "-m", str(model), "--env-manager", "local",
                                   "-h", host, "-p", str(port)], stdout=log, stderr=log,
                                  env={**os.environ, **(env or {})})
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"the server for {model} exited; see {log.name}")
                time.sleep(0.05)
        yield port, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)


def create_database(server_url: str, prefix: str) -> str:
    """A fresh database ``<prefix>_<random>`` on the PostgreSQL server at ``server_url``; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server_url.rstrip('/')}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rstrip('/')}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    server_url, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_auth_config(path: Path, database_uri: str, default_permission: str = "READ") -> Path:
    """MLflow's basic-auth settings: users live in ``database_uri``; authenticated users may read
    everything and write what they created (or were granted); anonymous requests get 401."""
    path.write_text("[mlflow]\n"
                    f"default_permission = {default_permission}\n"
                    f"database_uri = {database_uri}\n"
                    f"admin_username = {ADMIN}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


@contextlib.contextmanager
def tracking_server(backend_store_uri: str, auth_database_uri: str, workdir: Path, admin_password: str,
                    host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0):
    """``mlflow server --app-name basic-auth`` on ``backend_store_uri`` with served artifacts under
    ``workdir``; yields its URL once ``/health`` answers and stops it on exit."""
    import requests

    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    env = {**os.environ,
           "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(workdir / "basic_auth.ini", auth_database_uri)),
           "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
           # Basic-auth's CSRF protection needs a key shared by the server's workers.
           "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(16)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    log = open(workdir / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(workdir / "artifacts"),
         "--host", host, "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {server.returncode}:\n"
                                   + mask_url((workdir / "server.log").read_text()[-3000:]))
            # A server still starting may accept the connection and answer late: wait on, to the deadline.
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server on {url} did not answer /health within {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def add_user(url: str, admin_password: str, username: str, password: str, experiment_name: str) -> str:
    """Create a (non-admin) user and, as that user, the experiment the workers log to: its creator
    may write to it, everyone authenticated may read it. Returns the experiment id."""
    import requests

    api = f"{url}/api/2.0/mlflow"
    response = requests.post(f"{api}/users/create", json={"username": username, "password": password},
                             auth=(ADMIN, admin_password), timeout=30)
    response.raise_for_status()
    response = requests.post(f"{api}/experiments/create", json={"name": experiment_name},
                             auth=(username, password), timeout=30)
    response.raise_for_status()
    return response.json()["experiment_id"]


def worker_command(dataset: str, encoder: str, n_trials: int, study_name: str, storage: str,
                   clusterers: str = "all", seed: int = 0) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "entrypoints" / "tune.py"), "--dataset", dataset,
            "--encoder", encoder, "--n_trials", str(n_trials), "--study_name", study_name,
            "--storage", storage, "--clusterers", clusterers, "--seed", str(seed), "--workers", "1"]


def run_stack(postgres: str, workers: int, n_trials: int, workdir: Path, dataset: str = "digits",
              encoder: str = "raw", clusterers: str = "all", keep: bool = False) -> dict:
    """Fresh databases, a basic-auth tracking server and ``workers`` tune processes on one new study.
    Returns the wall time, the exit codes and what the study holds at the end."""
    import optuna

    workdir = workdir.resolve()
    databases = {kind: create_database(postgres, f"selector_{kind}") for kind in ("optuna", "mlflow", "auth")}
    admin_password, password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    study_name = f"stack-{uuid.uuid4().hex[:6]}"
    try:
        with tracking_server(databases["mlflow"], databases["auth"], workdir, admin_password) as url:
            add_user(url, admin_password, "selector", password, study_name)
            env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": "selector",
                   "MLFLOW_TRACKING_PASSWORD": password, "MLFLOW_EXPERIMENT_NAME": study_name}
            print(f"tracking server {url} (user selector), study {study_name!r} in {mask_url(databases['optuna'])}")
            command = worker_command(dataset, encoder, n_trials, study_name, databases["optuna"], clusterers)
            start = time.perf_counter()
            processes = [subprocess.Popen(command, env=env, cwd=workdir, stdout=open(workdir / f"worker{i}.log", "w"),
                                          stderr=subprocess.STDOUT) for i in range(workers)]
            codes = [process.wait() for process in processes]
            seconds = time.perf_counter() - start
            trials = optuna.load_study(study_name=study_name, storage=databases["optuna"]).trials
            result = {"workers": workers, "exit_codes": codes, "seconds": seconds,
                      "complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
                      "trial_seconds": [(t.datetime_complete - t.datetime_start).total_seconds()
                                        for t in trials if t.datetime_complete]}
            print(f"{workers} workers × {n_trials} trials: exit codes {codes}, {seconds / 60:.2f} min, "
                  f"{result['complete']} complete, {result['complete'] / seconds * 60:.1f} trials/min "
                  f"(logs in {workdir}/worker*.log)")
            if keep:
                print(f"MLflow UI: {url} (admin password {admin_password}); Ctrl-C to stop")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            return result
    finally:
        if not keep:
            for url in databases.values():
                drop_database(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (no database; a password comes from PGPASSWORD or ~/.pgpass)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--clusterers", default="all")
    parser.add_argument("--n_trials", type=int, default=10, help="trials per worker")
    parser.add_argument("--workdir", type=Path, default=Path("stack"))
    parser.add_argument("--keep", action="store_true", help="keep the databases and the server until Ctrl-C")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.n_trials < 1:
        parser.error(f"--workers and --n_trials must be >= 1; got {args.workers} and {args.n_trials}")
    result = run_stack(args.postgres, args.workers, args.n_trials, args.workdir, args.dataset, args.encoder,
                       args.clusterers, args.keep)
    return 0 if not any(result["exit_codes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
