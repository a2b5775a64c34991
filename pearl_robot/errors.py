"""Exceptions with messages meant for the user, not a traceback wall."""

from __future__ import annotations


class PearlRobotError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""


class ConfigError(PearlRobotError):
    """A configuration file is missing, malformed or inconsistent."""

    def __init__(self, file: object, field: str, reason: str) -> None:
        self.file, self.field, self.reason = str(file), field, reason
        super().__init__(f"{self.file}: field '{field}': {reason}")


class LifecycleError(PearlRobotError):
    """An operation was called in a lifecycle state that does not allow it."""


class RobotFault(PearlRobotError):
    """The robot stopped itself after a fault (communication lost, servo hardware error, ...)."""


class UnknownRobotError(PearlRobotError):
    """``open_robot`` was given a name no backend answers to, or an option value the backend cannot take."""
