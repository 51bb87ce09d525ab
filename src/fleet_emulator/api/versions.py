"""The served versions of ``moia.fleet.state``: one table row and one servicer class per version.

What differs between versions is data in the row (the generated modules and the name of the vehicle's
static description); the RPC methods are shared (``fleet_state.FleetStateApi``, and ``commands.CommandsApi``
from v1 on). Adding a version means generating its protos and adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc

from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1_pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4_pb
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from fleet_emulator.api.commands import CommandsApi
from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.api.fleet_state import FleetStateApi
from fleet_emulator.domain.namespaces import Namespaces

PACKAGE_PREFIX = "moia.fleet.state."


class V1beta4Servicer(FleetStateApi, v1beta4_grpc.FleetStateServiceServicer):
    adapter = VersionAdapter("v1beta4", v1beta4_pb, spec_field="configuration")


class V1Servicer(FleetStateApi, CommandsApi, v1_grpc.FleetStateServiceServicer):
    adapter = VersionAdapter("v1", v1_pb, spec_field="configuration")


class V2Servicer(FleetStateApi, CommandsApi, v2_grpc.FleetStateServiceServicer):
    adapter = VersionAdapter("v2", v2_pb, spec_field="properties")


@dataclass(frozen=True)
class ApiVersion:
    name: str
    servicer: type[FleetStateApi]
    grpc_module: ModuleType
    successor: str = ""  # set for a deprecated version: the package to move to

    @property
    def response_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers on every response of the version: a deprecated one names its successor (RFC 8594)."""
        if not self.successor:
            return ()
        return (("deprecation", "true"), ("link", f'<{self.successor}>; rel="successor-version"'))

    @property
    def service_name(self) -> str:
        """Full name of the version's FleetStateService, as reflection and health know it."""
        name: str = self.servicer.adapter.pb.DESCRIPTOR.services_by_name["FleetStateService"].full_name
        return name

    def register(self, server: grpc.aio.Server, namespaces: Namespaces) -> None:
        add: Callable[[Any, grpc.aio.Server], None] = self.grpc_module.add_FleetStateServiceServicer_to_server
        add(self.servicer(namespaces), server)


VERSIONS = (
    ApiVersion("v1beta4", V1beta4Servicer, v1beta4_grpc, successor="moia.fleet.state.v2"),
    ApiVersion("v1", V1Servicer, v1_grpc),
    ApiVersion("v2", V2Servicer, v2_grpc),
)
