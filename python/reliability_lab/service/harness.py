"""Helpers for tests and benchmarks: a throwaway PostgreSQL server and a service subprocess.

::

    with TempPostgres() as pg:                       # initdb + pg_ctl in a temp dir, free port
        url = pg.create_database("t1")
        with ServiceProcess(database=url, workdir=tmp) as svc:
            httpx.post(svc.url + "/orders", json={...})

PostgreSQL refuses to run as root: when we are root, its commands run as the ``postgres`` user
through ``runuser`` and the data directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return Path(cand)
    return None


class TempPostgres:
    """A PostgreSQL server in a temporary directory on a free loopback port (trust auth).

    Args:
        fsync: keep fsync on (real durability; slower). Tests turn it off: they kill the
            service, never the database.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        bindir = find_pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.fsync = fsync
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="rlab-pg-"))
        self.data = self.tmp / "data"
        self.sockdir = self.tmp / "sock"
        self._as_root = os.geteuid() == 0
        self.started = False
        self._frozen: list[int] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> TempPostgres:
        """Runs initdb and starts the server; waits until it accepts connections."""
        self.sockdir.mkdir(parents=True)
        if self._as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr}") from e
        self._pg_start()
        return self

    def _pg_start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=200 -c fsync={'on' if self.fsync else 'off'} "
            f"-c synchronous_commit={'on' if self.fsync else 'off'}"
        )
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.tmp / "log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            )
        except subprocess.CalledProcessError as e:
            log = (self.tmp / "log").read_text() if (self.tmp / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {e.stderr} {log}") from e
        self.started = True

    def pause(self) -> None:
        """Stops the server, keeping its data (an outage); :meth:`resume` starts it again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.started = False

    def resume(self) -> None:
        """Starts a paused server again on the same port."""
        self._pg_start()

    def pids(self) -> list[int]:
        """The postmaster's pid and those of its children (backends, background workers)."""
        try:
            pm = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                text = Path(stat).read_text()
            except OSError:
                continue
            # Fields after the parenthesised command name: state, ppid, ...
            rest = text[text.rfind(")") + 2 :].split()
            if len(rest) > 1 and int(rest[1]) == pm:
                children.append(int(text.split(" ", 1)[0]))
        return [pm, *children]

    def freeze(self) -> list[int]:
        """SIGSTOPs the whole server (postmaster first, so that it forks nothing new, then
        every child): connections stay open and the kernel keeps ACKing, but nothing answers.
        Always :meth:`thaw` in a ``finally``. Returns the pids stopped."""
        stopped: list[int] = []
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        # Children forked while we were stopping the others.
        for pid in self.pids():
            if pid not in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
        self._frozen = stopped
        return stopped

    def thaw(self) -> None:
        """SIGCONTs every process :meth:`freeze` stopped (idempotent)."""
        for pid in [*self._frozen, *self.pids()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Creates a fresh database and returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stops the server and removes its directory."""
        self.thaw()
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            self.started = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ServiceProcess:
    """``python -m reliability_lab.service`` in a subprocess on a free loopback port.

    Args:
        database: the ``--database`` value.
        workdir: where the port file and the log go.
        args: more command-line options.
        env: extra environment variables.
        nofile: if given, the process's RLIMIT_NOFILE (soft and hard), to test what happens
            when descriptors are scarce.
    """

    def __init__(
        self,
        *,
        database: str,
        workdir: str | os.PathLike[str],
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        self.database = database
        self.nofile = nofile
        self.workdir = Path(workdir)
        self.args = list(args or [])
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = self.workdir / f"service-{time.monotonic_ns()}.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Starts the process and waits until it is listening (its port file appears)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"port-{time.monotonic_ns()}.json"
        cmd = [
            sys.executable,
            "-m",
            "reliability_lab.service",
            "--port",
            "0",
            "--database",
            self.database,
            "--port-file",
            str(port_file),
            *self.args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        nofile = self.nofile

        def limit_descriptors() -> None:  # runs in the child, before exec
            import resource

            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            preexec_fn=limit_descriptors if nofile is not None else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists():
                self.port = int(json.loads(port_file.read_text())["port"])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the service exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"the service did not start in {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON lines of the log, parsed (other lines skipped)."""
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def terminate(self) -> None:
        """Sends SIGTERM (the graceful drain)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit; returns its status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then wait (SIGKILL if it does not exit in time)."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def read_ledger(path: str | os.PathLike[str]) -> list[str]:
    """The ledger's lines (one per applied charge); empty when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return []
    return [line for line in p.read_text().splitlines() if line.strip()]


def double_charges(lines: list[str]) -> dict[str, int]:
    """Lines (charge key + dependency) that appear more than once, with their counts."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return {k: n for k, n in counts.items() if n > 1}
