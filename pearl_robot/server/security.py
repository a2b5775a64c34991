"""Who may talk to a robot server: loopback by default, CurveZMQ keys for anything else.

Key files are ZeroMQ certificates as ``zmq.auth.create_certificates`` writes them: ``NAME.key`` holds
the public key (share it), ``NAME.key_secret`` both keys (keep it; written mode 0600).
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from pearl_robot.errors import ConfigError, PearlRobotError

LOCAL_HOSTNAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def endpoint_is_local(endpoint: str) -> bool:
    """True for ipc:// and inproc:// endpoints and tcp on a loopback address (127.0.0.0/8, ::1, localhost).

    Wildcards (``*``, ``0.0.0.0``), interface names and other host names count as off-host."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise PearlRobotError(f"'{endpoint}' is not a ZeroMQ endpoint (tcp://HOST:PORT or ipc://PATH)")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.split(";")[-1]  # tcp://source;dest form: the bound/connected side is after ';'
    host = host.strip("[]")
    if host.lower() in LOCAL_HOSTNAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # z85, 40 bytes
    secret: bytes | None  # z85, 40 bytes; None for a public-only certificate


def load_key(path: str | os.PathLike[str], *, secret: bool) -> KeyPair:
    """Load a ZeroMQ certificate file; ``secret=True`` requires the secret key in it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(path, "<file>", "key file not found (create key pairs with `pearl-robot keys`)")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(path, "<file>", f"not a ZeroMQ certificate: {exc}") from None
    if len(public) != 40:
        raise ConfigError(path, "public-key", "expected a 40-character Z85 key")
    if secret:
        if not secret_key:
            raise ConfigError(path, "secret-key", "this is a public key; give the NAME.key_secret file")
        if len(secret_key) != 40:
            raise ConfigError(path, "secret-key", "expected a 40-character Z85 key")
    return KeyPair(public, secret_key if secret else None)


def load_public_keys(paths: Iterable[str | os.PathLike[str]]) -> frozenset[bytes]:
    """Public keys from certificate files and from every ``*.key`` file in directories."""
    keys: set[bytes] = set()
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.key"))
            if not files:
                raise ConfigError(path, "<dir>", "no *.key public key files in this directory")
            keys.update(load_key(f, secret=False).public for f in files)
        else:
            keys.add(load_key(path, secret=False).public)
    return frozenset(keys)


def create_key_pair(directory: str | os.PathLike[str], name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) into ``directory``; returns both paths."""
    directory = Path(directory).expanduser()
    if not name or "/" in name or name.startswith("."):
        raise PearlRobotError(f"key name '{name}' must be a plain file name")
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not overwrite:
        for path in (public, secret):
            if path.exists():
                raise PearlRobotError(f"{path} exists; pass --force to replace it (clients holding it lose access)")
    directory.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return public, secret


@dataclass(frozen=True)
class CurveConfig:
    """Server side of CurveZMQ: the server's key pair and the client public keys it accepts."""

    server: KeyPair
    allowed_clients: frozenset[bytes]

    @classmethod
    def from_files(
        cls, server_secret: str | os.PathLike[str], allowed: Iterable[str | os.PathLike[str]]
    ) -> CurveConfig:
        server = load_key(server_secret, secret=True)
        allowed_keys = load_public_keys(allowed)
        if not allowed_keys:
            raise PearlRobotError("CURVE needs at least one allowed client key (--allow FILE_OR_DIR)")
        return cls(server, allowed_keys)


class AllowList:
    """ZAP credentials provider: accepts exactly the listed client keys and counts the refusals."""

    def __init__(self, keys: frozenset[bytes], events: Counter[str], lock: threading.Lock) -> None:
        self.keys = keys
        self.events = events
        self.lock = lock

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self.keys
        if not allowed:
            with self.lock:
                self.events["refused_unknown_key"] += 1
        return allowed


def apply_client_curve(socket: zmq.Socket, server_public: bytes, client: KeyPair) -> None:
    socket.curve_serverkey = server_public
    socket.curve_publickey = client.public
    socket.curve_secretkey = client.secret
