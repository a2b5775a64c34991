"""``pearl-robot virtual-bus``: a virtual servo bus on a pseudo-terminal, Dynamixel or Feetech as the
hardware file's ``bus.protocol`` says (``--hardware hardware/so101.yaml``: the SO-101's STS3215 servos).

Prints the device path on the first line of standard output (then serves until SIGINT or SIGTERM),
so a script can start it and connect: ``--robot serial:$(head -1 ...)``, or give ``--link PATH`` and
use the symlink. Diagnostics go to standard error.

Realistic by default where it matters to a client: every servo keeps the factory Return Delay Time
(500 us, on X-series and STS3215 alike) and listens at the hardware file's baud rate only.
``--adapter-latency-ms 16`` puts a stock FTDI/U2D2 USB adapter in front (replies held up to its latency
timer); ``--servo-baud-rates`` sets other speeds (a client at another speed gets no answer, as when
scanning for servos). ``--pace-wire-time`` makes every instruction and reply take its bytes' wire time at
the servos' baud rate (off by default: the pty itself is instant, and only timing scenarios want the
wire's); ``--firmware-version N`` (Dynamixel only: an error on a Feetech bus) makes every servo report
firmware N (below 45 an X430 has no FAST SYNC READ: clients fall back to SYNC READ).

The arm's physics: the nominal MuJoCo arm, or ``--dynamics FILE`` (a YAML mapping of ArmDynamics fields:
damping_scale, frictionloss_scale, armature_scale and gain_scale multiply the model's per-joint values,
payload_mass_kg adds a payload, latency_s delays every goal; examples and every field in sim/dynamics/,
README.md), or ``--held-out-task N``: the arm of ``pearl-robot demo --task N``, a test task of the
family never trained on, plus the serial link's 20 ms. ``--print-dynamics`` prints them as YAML and exits.

Calibration rehearsal: ``--operator`` puts a scripted operator's hand on the arm. It holds the arm in
its calibration pose (``--pose``, default all zeros) and follows ``pearl-robot calibrate joints`` in
another shell by the servos' LEDs (all lit: the pose; one lit: move that joint positive; blinking: sweep
every joint), with a hand's tremor; it lets go of a joint once its torque comes on (Dynamixel servos
only: Feetech ones have no LED). It says on standard error what it does, so an interactive session
(Enter after each step) can be rehearsed too::

    pearl-robot virtual-bus --operator --hidden-offsets 37,-120,15,64,-9 --hidden-directions 1,-1,1,1,1 \\
        --sensor-noise-ticks 2 --link /tmp/arm
    pearl-robot calibrate joints --robot 'serial:/tmp/arm?timeout_margin_ms=50' --non-interactive
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from pearl_robot.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "virtual-bus",
        help="serve a virtual servo bus (Dynamixel or Feetech, the arm in MuJoCo) on a pseudo-terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--hardware", default=None, help="the arm's hardware YAML (default: the shipped OpenManipulator-X)"
    )
    parser.add_argument("--link", default=None, help="also make a symlink to the device at this path")
    parser.add_argument(
        "--faults",
        default=None,
        help="faults to inject, e.g. 'latency_ms=5,drop=0.01,corrupt=0.01,hw_error=12:overload@2,vanish_after_s=10'",
    )
    parser.add_argument("--no-physics", action="store_true", help="ideal servos (joints jump to their goals)")
    parser.add_argument(
        "--dynamics",
        default=None,
        metavar="FILE",
        help="YAML mapping of ArmDynamics fields: per-joint damping/frictionloss/armature/gain multipliers, "
        "payload_mass_kg, latency_s (examples and every field documented in sim/dynamics/)",
    )
    parser.add_argument(
        "--held-out-task",
        type=int,
        default=None,
        metavar="N",
        help="the dynamics of test task N of --family (split by --config's seed): the demo's held-out arm",
    )
    parser.add_argument(
        "--family", default="arm-dynamics", help="--held-out-task: the task family (default %(default)s)"
    )
    parser.add_argument(
        "--config", default=None, help="--held-out-task: the training config (default: <family>-small, the demo's)"
    )
    parser.add_argument("--print-dynamics", action="store_true", help="print the arm's dynamics as YAML and exit")
    parser.add_argument(
        "--operator",
        action="store_true",
        help="a scripted operator's hand that follows `calibrate joints` by the servos' LEDs (torque off)",
    )
    parser.add_argument(
        "--pose",
        default=None,
        help="--operator: the calibration pose the hand holds, comma-separated radians (default zeros; give "
        "`calibrate joints` the same --pose)",
    )
    parser.add_argument(
        "--operator-cues",
        type=Path,
        default=None,
        help="--operator: follow the cues of `calibrate joints --cue-file FILE` instead of the servos' LEDs "
        "(arms without LEDs, e.g. Feetech STS)",
    )
    parser.add_argument(
        "--hidden-offsets",
        default=None,
        help="comma-separated per-joint encoder offsets in ticks that a client does not know (calibration tests)",
    )
    parser.add_argument(
        "--hidden-directions",
        default=None,
        help="comma-separated per-joint directions, 1 or -1 (-1: the servo turns against the joint), that a "
        "client does not know (calibration tests)",
    )
    parser.add_argument(
        "--sensor-noise-ticks",
        type=float,
        default=0.0,
        help="standard deviation of Gaussian noise on present position, in encoder ticks (default %(default)s)",
    )
    parser.add_argument(
        "--return-delay-time",
        type=int,
        default=None,
        help="Return Delay Time every servo starts with, in 2 us units (factory default 250)",
    )
    parser.add_argument(
        "--adapter-latency-ms",
        default="0",
        help="latency timer of the USB-serial adapter the replies come through: whole 62-byte USB packets "
        "go at once, the rest this long after the last byte (16 = a stock FTDI/U2D2 at its factory latency "
        "timer; default 0: no adapter delay)",
    )
    parser.add_argument(
        "--servo-baud-rates",
        default=None,
        help="baud rate (bps) the servos listen at: one for all or comma-separated per joint "
        "(default: the hardware file's bus baud rate)",
    )
    parser.add_argument(
        "--pace-wire-time",
        action="store_true",
        help="every instruction and reply takes its bytes' wire time at the servos' baud rate (10 bits a byte), "
        "one at a time on the wire, as on a real bus (default: instant, as the pty is)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="serve the pty and run the physics at SCHED_FIFO priority where permitted (a servo's microcontroller "
        "is not time-shared: on a loaded host the stand-in keeps its timing; a fast loop's benchmark uses it)",
    )
    parser.add_argument(
        "--firmware-version",
        type=int,
        default=None,
        help="Dynamixel only: the firmware every servo reports (default: its model's; an X430 below 45 has no "
        "FAST SYNC READ)",
    )
    parser.set_defaults(func=run)


GIL_SWITCH_INTERVAL_S = 0.0002
MAIN_THREAD_PRIORITY = 40  # --realtime: below the serving and physics threads (pty_bus)
LINK_LATENCY_S = 0.02  # the demo's serial link's own delay, on top of a task's latency


def held_out_dynamics(cfg, task: int, hardware=None):
    """Test task ``task`` of ``cfg``'s family split by ``cfg.seed`` (never trained on), plus the serial
    link's own delay: the virtual arm of ``pearl-robot demo``. ``hardware`` overrides the config's arm."""
    from pearl_robot.adapt.policy import family_for
    from pearl_robot.robot.dynamics import ArmDynamics

    _, test_tasks = family_for(cfg, hardware=hardware).split(cfg.seed)
    if not 0 <= task < len(test_tasks):
        raise ConfigError(
            "--held-out-task", "<value>", f"{cfg.family} has test tasks 0-{len(test_tasks) - 1}, got {task}"
        )
    try:
        dynamics = ArmDynamics.from_dict(test_tasks[task].params)
    except TypeError:
        raise ConfigError("--family", "<value>", f"the tasks of {cfg.family} are not arm dynamics") from None
    return dataclasses.replace(dynamics, latency_s=dynamics.latency_s + LINK_LATENCY_S)


def _dynamics(args: argparse.Namespace):
    """(the arm's dynamics or None for nominal, where they come from)."""
    if args.held_out_task is None:
        return _load_dynamics(args.dynamics), f"from {args.dynamics}" if args.dynamics else "nominal"
    from pearl_robot.pearl.config import load_config

    if args.dynamics is not None:
        raise ConfigError("--held-out-task", "<value>", "give either --dynamics or --held-out-task, not both")
    config = args.config or f"{args.family}-small"
    cfg = load_config(config)
    if cfg.family != args.family:
        raise ConfigError(config, "family", f"is {cfg.family}, not --family {args.family}")
    source = (
        f"test task {args.held_out_task} of {args.family} in {config} (seed {cfg.seed}), never trained on, plus "
        f"{LINK_LATENCY_S * 1000:.0f} ms of serial link latency: the virtual arm of `pearl-robot demo --task "
        f"{args.held_out_task}`"
    )
    return held_out_dynamics(cfg, args.held_out_task, args.hardware), source


def _load_dynamics(path: str | None):
    if path is None:
        return None
    from pearl_robot.robot.dynamics import ArmDynamics

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
        return ArmDynamics.from_dict(data or {})
    except FileNotFoundError:
        raise ConfigError(file, "<file>", "dynamics file not found") from None
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ConfigError(file, "<dynamics>", str(exc)) from None


def _parse_offsets(text: str | None, n: int, option: str = "--hidden-offsets") -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(option, "<value>", f"expected integers, got {text!r}") from None
    if len(values) != n:
        raise ConfigError(option, "<value>", f"expected {n} values (one per joint), got {len(values)}")
    return values


def _parse_directions(text: str | None, n: int) -> list[int] | None:
    values = _parse_offsets(text, n, "--hidden-directions")
    if values is not None and any(v not in (1, -1) for v in values):
        raise ConfigError("--hidden-directions", "<value>", f"each direction is 1 or -1, got {text!r}")
    return values


def _parse_latency_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < math.inf:
        raise ConfigError("--adapter-latency-ms", "<value>", f"expected milliseconds >= 0, got {text!r}")
    return value


def _parse_baud_rates(text: str | None, n: int, baud_register: Callable[[int], int]) -> list[int] | None:
    if text is None:
        return None
    values = _parse_offsets(text, len(text.split(",")), "--servo-baud-rates")
    if len(values) not in (1, n):
        raise ConfigError(
            "--servo-baud-rates", "<value>", f"expected 1 or {n} values (one per joint), got {len(values)}"
        )
    for bps in values:
        try:
            baud_register(bps)
        except ValueError as exc:
            raise ConfigError("--servo-baud-rates", "<value>", str(exc)) from None
    return values * n if len(values) == 1 else values


def _print_dynamics(dynamics, source: str) -> None:
    from pearl_robot.robot.dynamics import ArmDynamics

    header = f"ArmDynamics, {source} (fields: sim/dynamics/README.md)"
    print("\n".join(f"# {line}" for line in textwrap.wrap(header, 100)))
    print(yaml.safe_dump((dynamics or ArmDynamics()).to_dict(), sort_keys=False), end="")


def run(args: argparse.Namespace) -> int:
    from pearl_robot.calibrate.joints import parse_pose
    from pearl_robot.control.realtime import set_realtime_priority
    from pearl_robot.robot.spec import load_spec
    from pearl_robot.virtual import VirtualOperator, bus_class, parse_faults, virtual_bus_from_spec

    spec = load_spec(args.hardware)
    dynamics, source = _dynamics(args)
    if args.print_dynamics:
        _print_dynamics(dynamics, source)
        return 0
    if args.pose is not None and not args.operator:
        raise ConfigError("--pose", "<value>", "is the pose the --operator's hand holds; add --operator")
    pose = parse_pose(args.pose, spec) if args.operator else None
    try:
        faults = parse_faults(args.faults)
    except ValueError as exc:
        raise ConfigError("--faults", "<value>", str(exc)) from None
    bus = virtual_bus_from_spec(
        spec,
        physics=not args.no_physics,
        dynamics=dynamics,
        initial_position_rad=pose,
        hidden_offsets_ticks=_parse_offsets(args.hidden_offsets, spec.num_joints),
        hidden_directions=_parse_directions(args.hidden_directions, spec.num_joints),
        sensor_noise_ticks=args.sensor_noise_ticks,
        return_delay_time=args.return_delay_time,
        servo_baud_rates=_parse_baud_rates(args.servo_baud_rates, spec.num_joints, bus_class(spec).baud_register),
        adapter_latency_ms=_parse_latency_ms(args.adapter_latency_ms),
        faults=faults,
        link=args.link,
        firmware_version=args.firmware_version,
        pace_wire_time=args.pace_wire_time,
        realtime=args.realtime,
    )
    if args.operator_cues is not None and not args.operator:
        raise ConfigError("--operator-cues", "<value>", "is where the --operator's hand reads its cues; add --operator")
    if args.operator and args.operator_cues is None and not all("led" in servo.table for servo in bus.servos):
        raise ConfigError(
            "--operator",
            "<value>",
            f"follows the servos' LEDs and {spec.bus.protocol} servos have none: give the hand the cue file, "
            "--operator-cues FILE, and `calibrate joints` the same --cue-file FILE",
        )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # this process stands in for hardware: the serving thread, woken by a request, waits for the GIL at
    # most this long while the physics thread runs Python (CPython's default is 5 ms, which would be a
    # fake latency of the servos' answers)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if args.realtime:
        # every thread of the process, this one too: a thread at ordinary priority that holds the GIL
        # when ordinary work preempts it would hold the real-time ones up (priority inversion)
        set_realtime_priority(MAIN_THREAD_PRIORITY)
    operator = None
    try:
        bus.start()
        print(bus.device_path, flush=True)
        ids = ", ".join(f"{j.name}={j.servo_id}" for j in spec.joints)
        log(f"virtual-bus: {spec.robot_id}, {spec.bus.protocol} servos on {bus.device_path} ({ids}); dynamics {source}")
        if args.operator:
            operator = VirtualOperator(bus, spec, pose, log=log, cue_file=args.operator_cues).start()
        while not stop.wait(0.1):
            if bus.vanished.is_set():
                log("virtual-bus: the device vanished (fault injection)")
                break
    finally:
        if operator is not None:
            operator.stop()
        bus.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = ", ".join(f"{k}={v}" for k, v in bus.stats.items() if v)
    log(f"virtual-bus: stopped ({stats or 'no traffic'})")
    return 0
