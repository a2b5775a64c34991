"""The robot computer's side of the network: RobotServer exposes any Robot over ZeroMQ.

``wire`` holds the versioned msgpack schema (docs/wire_protocol.md), ``security`` the loopback rule and
CurveZMQ keys. The client is ``pearl_robot.robot.remote.RemoteRobot`` (``open_robot('tcp://HOST:PORT')``).
"""

from pearl_robot.server.security import CurveConfig, create_key_pair, endpoint_is_local
from pearl_robot.server.server import DEFAULT_ENDPOINT, RobotServer
from pearl_robot.server.wire import PROTOCOL_VERSION

__all__ = ["DEFAULT_ENDPOINT", "PROTOCOL_VERSION", "CurveConfig", "RobotServer", "create_key_pair", "endpoint_is_local"]
