"""A throw-away PostgreSQL server for the tests that need one: Debian's binaries (installed when
missing), its own data directory and port, the topology's databases made by the compose file's
own init script (deploy/postgres-init-databases.sh)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import REPO
from tests.support.system import apt_get_install, free_port

PG_SUPERUSER_PASSWORD = "pg-super-secret"
AIRFLOW_DB_PASSWORD = "airflow-db-secret"
MLFLOW_DB_PASSWORD = "mlflow-db-secret"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def postgres_bindir() -> Path | None:
    """The PostgreSQL server binaries: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    if (found := shutil.which("pg_ctl")) and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def install_postgres() -> Path:
    """Install the server from Debian's packages (CI is a clean Debian machine, as root)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("PostgreSQL (initdb, pg_ctl) is missing and cannot be installed here: install Debian's `postgresql` package")
    # the package would create and start a cluster of its own on port 5432: not wanted here
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists():
        conf.write_text("create_main_cluster = false\n")
    ok, why = apt_get_install(["postgresql"], timeout=600,
                              options=["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"])
    assert ok, why
    bindir = postgres_bindir()
    assert bindir is not None, "apt-get installed postgresql but no pg_ctl was found"
    return bindir


@dataclass
class Postgres:
    bindir: Path
    base: Path
    port: int
    uid: int | None  # the user the server runs as (PostgreSQL refuses root)
    gid: int | None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.base / "postgres.log"

    @property
    def data(self) -> Path:
        return self.base / "data"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
            user=self.uid, group=self.gid, extra_groups=[] if self.uid is not None else None,
        )
        assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc

    def url(self, user: str, password: str, db: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def query(self, user: str, password: str, db: str, sql: str, *params: Any) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password, dbname=db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


def server_user() -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    pytest.fail("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


@contextlib.contextmanager
def topology_databases() -> Iterator[Postgres]:
    """A throw-away PostgreSQL on loopback (its own data directory, a free port) with the
    topology's roles and databases (deploy/postgres-init-databases.sh): airflow, mlflow,
    mlflow_auth. Stopped, and checked gone, on exit."""
    bindir = postgres_bindir() or install_postgres()
    uid, gid = server_user()
    base = Path(tempfile.mkdtemp(prefix="pg-topology-"))  # not under pytest's 0700 root-only tmp
    if uid is not None:
        os.chown(base, uid, gid)
    pg = Postgres(bindir=bindir, base=base, port=free_port(), uid=uid, gid=gid)
    pwfile = base / "pwfile"
    pwfile.write_text(PG_SUPERUSER_PASSWORD + "\n")
    if uid is not None:
        os.chown(pwfile, uid, gid)
    pg.run("initdb", "-D", str(pg.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
           "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
    pg.run("pg_ctl", "-D", str(pg.data), "-l", str(pg.log), "-w", "-t", "60", "start",
           "-o", f"-h 127.0.0.1 -p {pg.port} -k {base}")
    try:
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PGHOST": "127.0.0.1",
               "PGPORT": str(pg.port), "PGPASSWORD": PG_SUPERUSER_PASSWORD, "POSTGRES_USER": "postgres",
               "POSTGRES_DB": "postgres", "AIRFLOW_DB_PASSWORD": AIRFLOW_DB_PASSWORD, "MLFLOW_DB_PASSWORD": MLFLOW_DB_PASSWORD}
        init = subprocess.run(
            [str(REPO / "deploy/postgres-init-databases.sh")], env=env, capture_output=True, text=True, timeout=60
        )
        assert init.returncode == 0, init.stderr
        yield pg
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(pg.data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60, user=uid, group=gid, extra_groups=[] if uid is not None else None)
        left = subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.split()
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"PostgreSQL processes left running: {left}"
        assert not port_open(pg.port), "the PostgreSQL port is still open"
