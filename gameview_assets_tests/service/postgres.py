"""A real PostgreSQL server for the tests: Debian's binaries (`.ci/run` installs them), a
fresh cluster on 127.0.0.1 and a free port, removed afterwards.

PostgreSQL refuses to run as root; as root (CI, these machines) the cluster is owned and
run by the `postgres` system user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "gameview"
PASSWORD = "gameview-test"  # checked: the cluster asks for it (scram-sha-256)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    installed = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found = sorted(installed, key=lambda path: int(Path(path).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int

    def env(self, database: str) -> dict[str, str]:
        """The DAGSTER_PG_* settings deploy/dagster.yaml reads, for one database."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": PASSWORD,
            "DAGSTER_PG_DB": database,
        }

    def create_database(self, name: str) -> dict[str, str]:
        """A new empty database; its DAGSTER_PG_* settings."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.env(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb, start on 127.0.0.1:<free port>, yield; stop and remove the cluster. The
    cluster lives in a new folder under the system's temporary folder, which the `postgres`
    user can reach (pytest's own temporary folders are root's alone)."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries: apt-get install postgresql")
    as_root = os.geteuid() == 0
    owner = pwd.getpwnam("postgres") if as_root else None
    base = Path(tempfile.mkdtemp(prefix="gameview-pg-"))
    data = base / "data"
    password_file = base / "password"
    password_file.write_text(PASSWORD, encoding="utf-8")
    if owner is not None:
        for path in (base, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> None:
        subprocess.run(
            [str(bin_dir / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            cwd=base,
        )

    port = free_port()
    run("initdb", "-D", str(data), "-U", USER, "--pwfile", str(password_file),
        "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync")  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    run("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
    try:
        yield PostgresServer("127.0.0.1", port)
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
