"""The one Robot interface every backend implements, and the lifecycle it enforces.

Backends implement the underscored hooks; the public methods here check the lifecycle so that
no backend can accept a command unless ACTIVE, nor a target that is not a number (``non_numbers``).
States are numpy arrays in ``spec.joint_names`` order, radians and radians per second.
"""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from math import isfinite

import numpy as np

from pearl_robot.errors import LifecycleError
from pearl_robot.robot.spec import RobotSpec

_NUMBERS = (int, float, np.integer, np.floating)
_FLOAT64 = np.dtype(np.float64)


def non_numbers(values: object) -> list[str]:
    """The type names of whatever in ``values`` is not an int or a float; empty for numbers. Booleans,
    strings, None and other objects are not angles, yet ``np.asarray(True, float)`` is 1.0 rad."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return [] if values.dtype.kind in "iuf" else [values.dtype.name]
    try:
        items = np.asarray(values, dtype=object).ravel()
    except (ValueError, TypeError):
        return [type(values).__name__]
    return sorted({type(x).__name__ for x in items if not _is_number(x)})


def _is_number(x: object) -> bool:
    if isinstance(x, np.ndarray):  # a 0-d array in a list
        return x.ndim == 0 and x.dtype.kind in "iuf"
    return isinstance(x, _NUMBERS) and not isinstance(x, bool)


class Lifecycle(enum.Enum):
    UNCONFIGURED = "unconfigured"  # created, not talking to the hardware
    INACTIVE = "inactive"  # connected: states readable, torque off
    ACTIVE = "active"  # torque on, commands accepted
    ERROR = "error"  # stopped itself after a fault; disable() or close() to recover
    CLOSED = "closed"


@dataclass(frozen=True)
class Fault:
    """A fault flag: ``kind`` names it (stale_read, dropped_write, joint_error, hardware_error, comm_error, ...)."""

    kind: str
    joint: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = f"[{self.joint}]" if self.joint else ""
        return f"{self.kind}{where}{': ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class RobotState:
    position: np.ndarray  # rad
    velocity: np.ndarray  # rad/s
    effort: np.ndarray | None  # N*m or A, backend-dependent; None when not measured
    timestamp: float  # time.monotonic() seconds at which the state was measured
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.faults


class Robot(ABC):
    """Lifecycle: connect() -> INACTIVE -> enable() -> ACTIVE -> disable() -> INACTIVE -> close()."""

    spec: RobotSpec
    realtime: bool = False  # True where time passes between commands (hardware); lock-step sims: False

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self._lifecycle = Lifecycle.UNCONFIGURED
        self._io_lock = threading.RLock()

    # ---- lifecycle --------------------------------------------------------------------------
    @property
    def lifecycle(self) -> Lifecycle:
        return self._lifecycle

    @property
    def is_active(self) -> bool:
        return self._lifecycle is Lifecycle.ACTIVE

    def connect(self) -> Robot:
        with self._io_lock:
            if self._lifecycle is not Lifecycle.UNCONFIGURED:
                raise LifecycleError(f"connect() needs an UNCONFIGURED robot, this one is {self._lifecycle.value}")
            self._connect()
            self._lifecycle = Lifecycle.INACTIVE
        return self

    def enable(self) -> None:
        """Torque on. The goal is set to the present position first, so the arm never jumps."""
        with self._io_lock:
            if self._lifecycle is not Lifecycle.INACTIVE:
                raise LifecycleError(f"enable() needs an INACTIVE robot, this one is {self._lifecycle.value}")
            self._enable()
            self._lifecycle = Lifecycle.ACTIVE

    def disable(self) -> None:
        """Torque off (from ACTIVE or ERROR). A no-op when already INACTIVE."""
        with self._io_lock:
            if self._lifecycle is Lifecycle.INACTIVE:
                return
            if self._lifecycle not in (Lifecycle.ACTIVE, Lifecycle.ERROR):
                raise LifecycleError(f"disable() needs a connected robot, this one is {self._lifecycle.value}")
            try:
                self._disable()
            finally:
                self._lifecycle = Lifecycle.INACTIVE

    def close(self) -> None:
        """Always leaves the arm safe (torque off, or holding where the backend is configured so). Idempotent."""
        with self._io_lock:
            if self._lifecycle is Lifecycle.CLOSED:
                return
            try:
                if self._lifecycle is not Lifecycle.UNCONFIGURED:
                    self._close()
            finally:
                self._lifecycle = Lifecycle.CLOSED

    def fail(self, reason: str) -> None:
        """Enter ERROR after a fault: the backend has already made the arm safe."""
        with self._io_lock:
            if self._lifecycle in (Lifecycle.ACTIVE, Lifecycle.INACTIVE):
                self._lifecycle = Lifecycle.ERROR
                self.last_error = reason

    # ---- I/O -------------------------------------------------------------------------------
    def read(self) -> RobotState:
        with self._io_lock:
            if self._lifecycle not in (Lifecycle.INACTIVE, Lifecycle.ACTIVE, Lifecycle.ERROR):
                raise LifecycleError(f"read() needs a connected robot, this one is {self._lifecycle.value}")
            return self._read()

    def write(self, targets: np.ndarray) -> np.ndarray:
        """Send joint position targets (rad). Returns the targets actually sent."""
        with self._io_lock:
            if self._lifecycle is not Lifecycle.ACTIVE:
                raise LifecycleError(f"commands are refused unless ACTIVE; this robot is {self._lifecycle.value}")
            return self._write(self._checked_targets(targets))

    def _checked_targets(self, targets: np.ndarray) -> np.ndarray:
        """``targets`` as ``num_joints`` finite float64 values, or ValueError saying what is wrong."""
        n = self.spec.num_joints
        if type(targets) is np.ndarray and targets.dtype is _FLOAT64 and targets.shape == (n,):
            # the common case, without numpy calls (each costs more than the few joints): a finite sum
            # means every value is finite (one that is not could be a sum that overflowed)
            if not isfinite(sum(targets.tolist())) and not np.isfinite(targets).all():
                raise ValueError("joint targets must be finite")
            return targets
        bad = non_numbers(targets)
        if bad:
            raise ValueError(f"joint targets must be int or float numbers, not {', '.join(bad)}")
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (n,):
            raise ValueError(f"expected {n} joint targets, got shape {targets.shape}")
        if not np.all(np.isfinite(targets)):
            raise ValueError("joint targets must be finite")
        return targets

    # ---- optional capabilities --------------------------------------------------------------
    @property
    def can_teleport(self) -> bool:
        """True for simulated backends that can set the joint state directly (fast resets in training)."""
        return False

    def teleport(self, position: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot set its state directly; move it instead")

    def unwrapped(self) -> Robot:
        """The backend under any wrappers."""
        return self

    # ---- context manager ------------------------------------------------------------------
    def __enter__(self) -> Robot:
        if self._lifecycle is Lifecycle.UNCONFIGURED:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.robot_id} {self.lifecycle.value}>"

    # ---- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _enable(self) -> None: ...

    @abstractmethod
    def _disable(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _read(self) -> RobotState: ...

    @abstractmethod
    def _write(self, targets: np.ndarray) -> np.ndarray: ...


class RobotWrapper(Robot):
    """A Robot that wraps another: the lifecycle is the wrapped robot's; subclasses override what they change."""

    def __init__(self, inner: Robot, spec: RobotSpec | None = None) -> None:
        super().__init__(spec or inner.spec)
        self.inner = inner

    @property
    def lifecycle(self) -> Lifecycle:
        return self.inner.lifecycle

    @property
    def realtime(self) -> bool:  # type: ignore[override]
        return self.inner.realtime

    @property
    def last_error(self) -> str | None:
        return getattr(self.inner, "last_error", None)

    def connect(self) -> Robot:
        self.inner.connect()
        return self

    def enable(self) -> None:
        self.inner.enable()

    def disable(self) -> None:
        self.inner.disable()

    def close(self) -> None:
        self.inner.close()

    def read(self) -> RobotState:
        return self.inner.read()

    def write(self, targets: np.ndarray) -> np.ndarray:
        return self.inner.write(targets)

    def fail(self, reason: str) -> None:
        self.inner.fail(reason)

    @property
    def can_teleport(self) -> bool:
        return self.inner.can_teleport

    def teleport(self, position: np.ndarray) -> None:
        self.inner.teleport(position)

    def unwrapped(self) -> Robot:
        return self.inner.unwrapped()

    def __enter__(self) -> Robot:
        if self.inner.lifecycle is Lifecycle.UNCONFIGURED:
            self.connect()
        return self

    # the public methods above replace the hooks
    def _connect(self) -> None:  # pragma: no cover
        raise NotImplementedError

    _enable = _disable = _close = _connect

    def _read(self) -> RobotState:  # pragma: no cover
        raise NotImplementedError

    def _write(self, targets: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
