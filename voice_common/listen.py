"""Where a server listens (--uri): claimed before the models load, opened once they have.

`Listener.claim` binds the TCP or Unix socket without listening on it, so a port
in use or a bad address is a one-line error at once instead of a traceback after
a minute of model loading, while clients are still refused until the server is
ready (`describe` is always instant). For stdio:// it takes over stdin and
stdout as the one connection; stdout is moved aside first, so whatever a library
prints lands on stderr with the logs and never in the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

from .config import URI_FORMS, ConfigError

ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

_REASONS = {
    errno.EADDRINUSE: "address already in use (another server listens there: stop it or choose another port)",
    errno.EADDRNOTAVAIL: "this host has no such address (use 0.0.0.0, 127.0.0.1 or one of its own addresses)",
    errno.EACCES: "permission denied (ports below 1024 need root; a socket path needs a writable directory)",
    errno.ENOENT: "the directory does not exist",
}


def _reason(err: OSError) -> str:
    return _REASONS.get(err.errno or 0, err.strerror or str(err))


class Listener:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._unix_path: str | None = None
        self._stdout: int | None = None
        #: For stdio://, the one connection's task (the process ends with it); else None.
        self.finished: asyncio.Task | None = None

    @classmethod
    def claim(cls, uri: str) -> Listener:
        """Bind the address now; a ConfigError naming --uri if that cannot be done."""
        listener = cls(uri)
        try:
            listener._claim()
        except OSError as err:
            listener.close()
            raise ConfigError(f"--uri {uri}: {_reason(err)}") from err
        except ConfigError:
            listener.close()
            raise
        return listener

    def _claim(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme == "tcp":
            self._bind_tcp(parsed.hostname or "0.0.0.0", parsed.port)
        elif parsed.scheme == "unix":
            self._bind_unix(parsed.netloc + parsed.path)
        elif parsed.scheme == "stdio":
            self._claim_stdio()
        else:
            raise ConfigError(f"--uri {self.uri}: not supported: use {URI_FORMS}")

    def _bind_tcp(self, host: str, port: int | None) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as err:
            raise ConfigError(f"--uri {self.uri}: unknown host {host!r} ({err.strerror})") from err
        seen = set()
        for family, kind, proto, _name, address in infos:  # "localhost": 127.0.0.1 and ::1
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            self._sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: IPv6 sockets do not take IPv4 too
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)

    def _bind_unix(self, path: str) -> None:
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise ConfigError(f"--uri {self.uri}: {path} exists and is not a socket "
                                  "(remove it or choose another path)")
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(ConnectionRefusedError):
                probe.connect(path)
                raise ConfigError(f"--uri {self.uri}: another server answers on {path} "
                                  "(stop it or choose another path)")
            os.unlink(path)  # left behind by a server that is gone
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sockets.append(sock)
        sock.bind(path)
        self._unix_path = path

    def _claim_stdio(self) -> None:
        for fd, name in ((0, "stdin"), (1, "stdout")):
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
                raise ConfigError(f"--uri {self.uri}: {name} must be a pipe or a socket, not a file")
        self._stdout = os.dup(1)
        os.dup2(2, 1)

    @property
    def port(self) -> int | None:
        for sock in self._sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                return name[1]
        return None

    async def open(self, on_client: ClientCallback, limit: int) -> None:
        """Start accepting (or, for stdio, start the one connection)."""
        if self._stdout is not None:
            reader, writer = await _stdio_streams(self._stdout, limit)
            self._stdout = None
            self.finished = asyncio.ensure_future(on_client(reader, writer))
            return
        try:
            for sock in self._sockets:
                if sock.family == socket.AF_UNIX:
                    server = await asyncio.start_unix_server(on_client, sock=sock, limit=limit)
                else:
                    server = await asyncio.start_server(on_client, sock=sock, limit=limit)
                self._servers.append(server)
        except OSError as err:  # two servers that bound one port while loading: the second fails here
            raise ConfigError(f"--uri {self.uri}: {_reason(err)}") from err

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self._servers:
            await server.wait_closed()

    def close(self) -> None:
        """Release the address (sockets, the socket file, the saved stdout)."""
        self.stop_accepting()
        for sock in self._sockets:
            sock.close()
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)
            self._unix_path = None
        if self._stdout is not None:
            os.close(self._stdout)
            self._stdout = None


async def _stdio_streams(stdout_fd: int, limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams on stdin and the saved stdout, as the `wyoming` package's AsyncStdioServer uses."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(0), "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(stdout_fd, "wb", buffering=0)
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
