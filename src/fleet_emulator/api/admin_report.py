"""The admin RPC ``GetClientReport``: per client, the practices it broke, from the call namespace's journal.

The report is computed on each call (``domain/report.py``) with the namespace's poll interval and the
deprecated versions of ``versions.py``, then converted to the admin service's messages.
"""

from __future__ import annotations

from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.api.convert import timestamp
from fleet_emulator.api.versions import VERSIONS
from fleet_emulator.domain.namespaces import Namespaces
from fleet_emulator.domain.report import ClientReport, client_reports
from fleet_emulator.domain.report_rules import ReportedCall

Context = Any
SUCCESSORS = {version.name: version.successor for version in VERSIONS if version.successor}


def _call(call: ReportedCall) -> pb.ReportedCall:
    entry = call.entry
    return pb.ReportedCall(
        sequence=entry.sequence,
        method=entry.method,
        flow_id=entry.flow_id,
        start_time=timestamp(entry.start_time),
        note=call.note,
    )


def client_message(report: ClientReport) -> pb.ClientReport:
    findings = [
        pb.Finding(practice=f.practice, advice=f.advice, calls=[_call(c) for c in f.calls])
        for f in report.findings
    ]
    return pb.ClientReport(client=report.client, findings=findings)


class ReportAdmin:
    namespaces: Namespaces

    async def GetClientReport(
        self, request: pb.GetClientReportRequest, context: Context
    ) -> pb.GetClientReportResponse:
        namespace = await self.namespaces.current()
        reports = client_reports(
            await namespace.journal.listed(), namespace.policies.poll_interval, SUCCESSORS
        )
        return pb.GetClientReportResponse(clients=[client_message(r) for r in reports])
