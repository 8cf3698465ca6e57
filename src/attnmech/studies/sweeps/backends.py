"""Processes behind a sweep: connecting to a Ray cluster in bounded time, and pool workers that
end with their driver.

:func:`connect_ray` checks that the address of an existing Ray cluster answers (a TCP connection to
its GCS port, retried until ``connect_timeout`` seconds have passed) before handing it to
``ray.init``, so a dead or mistyped address gives one clear error within the timeout instead of
Ray's own retries (13.5 minutes).

:func:`bind_to_driver` runs in every worker of a local process pool (its initializer): on Linux it
asks the kernel to send the worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
and everywhere it starts a daemon thread that ends the worker when its parent process changes
(``os.getppid()``), so a driver killed with SIGKILL does not leave workers computing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import Any, TypeVar

from ...errors import InvalidParameterError

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "bind_to_driver", "connect_ray", "on_node", "probe_address"]

DEFAULT_CONNECT_TIMEOUT = 30.0
"""Seconds ``--connect-timeout`` waits for a Ray cluster by default."""

_PR_SET_PDEATHSIG = 1
_WATCH_PERIOD_S = 0.5


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port`` or ``ray://host:port``; None for ``auto``/``local``.

    Raises
    ------
    InvalidParameterError
        The address has no port, or its port is not a number in 1..65535.
    """
    text = address.strip()
    if text in ("auto", "local"):
        return None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme not in ("ray", "http", "https"):
            raise InvalidParameterError(
                f"--address {address!r}: write HOST:PORT (the head node's GCS port, e.g. "
                "127.0.0.1:6379), ray://HOST:PORT or auto"
            )
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameterError(
            f"--address {address!r}: write HOST:PORT (the head node's GCS port, e.g. "
            "127.0.0.1:6379), ray://HOST:PORT or auto"
        )
    return host, int(port)


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_http2(conn: socket.socket, timeout: float) -> bool:
    """Whether the server on ``conn`` answers an HTTP/2 connection preface with a SETTINGS frame
    (what every gRPC server, Ray's GCS included, sends first)."""
    conn.settimeout(min(timeout, 5.0))
    try:
        conn.sendall(_HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:
        return False
    return head[3] == 0x04  # frame type SETTINGS


def probe_address(address: str, timeout: float) -> None:
    """Wait until ``address`` accepts a TCP connection, at most ``timeout`` seconds.

    The server must also answer an HTTP/2 connection preface (Ray's GCS is a gRPC server), so
    an address where something else listens is refused too. ``auto`` and ``local`` are not
    probed (Ray resolves them itself, quickly).

    Raises
    ------
    InvalidParameterError
        Nothing answered within ``timeout`` seconds, or what answered is not a gRPC server: the
        message names the address, the last reason (refused, no route, unknown host) and what
        to do.
    """
    target = _host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.create_connection(target, timeout=max(0.05, min(left, 5.0))) as conn:
                if _speaks_http2(conn, max(0.05, deadline - time.monotonic())):
                    return
                raise InvalidParameterError(
                    f"{address!r} answers but is not a Ray cluster (no gRPC server there: Ray's "
                    "GCS speaks HTTP/2); give the head node's GCS address (default port 6379)"
                )
        except socket.gaierror as exc:  # an unknown host does not become known by waiting
            reason = f"unknown host: {exc.strerror or exc}"
            break
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
                reason = "timed out"
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    raise InvalidParameterError(
        f"cannot reach a Ray cluster at {address!r} within {timeout:g} s ({reason}); check the "
        "address (the head node's 'ray start --head' prints it), start the cluster, or raise "
        "--connect-timeout"
    )


def connect_ray(address: str | None, workers: int, connect_timeout: float) -> bool:
    """Connect to the Ray cluster at ``address`` (probed first, see :func:`probe_address`), or start
    a local one with ``workers`` CPUs; nothing when Ray is already initialised.

    Returns
    -------
    bool
        True when this call started the connection (the caller shuts it down).

    Raises
    ------
    InvalidParameterError
        Ray is not installed, or the address is malformed or does not answer within
        ``connect_timeout`` seconds.
    """
    try:
        import ray
    except ImportError:
        raise InvalidParameterError(
            "the ray backend needs Ray: pip install 'attnmech[ray]' (or use --backend local)"
        ) from None
    if ray.is_initialized():
        return False
    if address:
        probe_address(address, connect_timeout)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidParameterError(
                f"cannot connect to the Ray cluster at {address!r}: {first}; check that it is "
                "a Ray head node's address and that its Ray version matches this one"
            ) from None
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return True


def _set_parent_death_signal() -> bool:
    """Linux: SIGKILL this process when its parent dies. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, period: float) -> None:
    while True:
        time.sleep(period)
        if os.getppid() != parent:
            os._exit(1)  # the driver is gone: nobody will read this worker's results


def bind_to_driver(parent: int | None = None, period: float = _WATCH_PERIOD_S) -> Any:
    """End this (worker) process when its parent process dies.

    Two mechanisms: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (immediate), and on every
    platform a daemon thread that exits the process within ``period`` seconds of its parent
    changing (the orphan is re-parented to init or a subreaper).

    The kernel's signal follows the parent *thread* that started this process: the pool must be
    fed from a thread that lives as long as the pool (the sweep runner's is the caller's).

    Parameters
    ----------
    parent : int, optional
        The pid to watch; default ``os.getppid()`` now. If it is already gone, the process exits.
    period : float
        Seconds between checks of the watcher thread.

    Returns
    -------
    threading.Thread
        The watcher thread (a daemon).
    """
    expected = os.getppid() if parent is None else int(parent)
    _set_parent_death_signal()
    if os.getppid() != expected:  # the parent died before the signal was armed
        os._exit(1)
    watcher = threading.Thread(
        target=_watch_parent, args=(expected, period), name="attnmech-driver-watch", daemon=True
    )
    watcher.start()
    return watcher


_Outcome = TypeVar("_Outcome")


def on_node(outcome: _Outcome) -> _Outcome:
    """A task's outcome (a dataclass with a ``node`` field) with the node of the Ray cluster
    that ran it; unchanged outside Ray."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():  # which node of a cluster ran it
        outcome = replace(outcome, node=str(ray.get_runtime_context().get_node_id()))  # type: ignore[type-var]
    return outcome
