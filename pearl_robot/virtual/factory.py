"""The virtual bus a hardware YAML asks for: its ``bus.protocol`` picks the servos' protocol.

``virtual_bus_from_spec(spec, **options)`` takes the options of ``PtyServoBus.from_spec`` and those only
one protocol's servos have (``model_options`` of its bus class: ``firmware_version`` on Dynamixel).
Such an option left at None on another protocol's bus is dropped; given a value, it is a ConfigError
that says which protocol it belongs to.
"""

from __future__ import annotations

from pearl_robot.errors import ConfigError
from pearl_robot.virtual.bus import VirtualServoBus
from pearl_robot.virtual.feetech_bus import VirtualFeetechBus
from pearl_robot.virtual.pty_bus import PtyServoBus

BUSES: dict[str, type[PtyServoBus]] = {"dynamixel": VirtualServoBus, "feetech": VirtualFeetechBus}


def bus_class(spec) -> type[PtyServoBus]:
    """The virtual bus class for ``spec.bus.protocol``."""
    protocol = spec.bus.protocol
    try:
        return BUSES[protocol]
    except KeyError:
        raise ConfigError(
            spec.source, "bus.protocol", f"no virtual bus speaks {protocol!r} (known: {', '.join(BUSES)})"
        ) from None


def virtual_bus_from_spec(spec, **options: object) -> PtyServoBus:
    """A virtual bus (not started) with the servos of ``spec`` on the protocol its YAML names."""
    cls = bus_class(spec)
    for name in [k for k in options if k not in cls.model_options and _owner(k) is not None]:
        if options.pop(name) is not None:
            raise ConfigError(
                spec.source,
                "bus.protocol",
                f"{name} is an option of the {_owner(name)} bus only; this arm's bus is {spec.bus.protocol}",
            )
    return cls.from_spec(spec, **options)


def _owner(option: str) -> str | None:
    """The protocol whose bus alone takes ``option`` (None: a common option or no option at all)."""
    return next((protocol for protocol, cls in BUSES.items() if option in cls.model_options), None)
