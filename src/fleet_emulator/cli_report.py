"""``fleet-emulator report``: which practices each client of a running emulator broke, from its journal.

It asks the admin service for the namespace's client report (``GetClientReport``) and prints, per client,
each broken practice with its advice and the calls that show it (sequence, start time, method, flow id and
what the call did wrong); ``--json`` prints the report as proto3 JSON instead. With ``--fail-on-findings``
the command exits with 1 when any client broke a practice, so that a CI job can fail on a careless client.
"""

from __future__ import annotations

import click

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.cli_admin_client import Admin, echo_json, pass_admin

NOTHING = "no client broke a practice"


def report_lines(response: pb.GetClientReportResponse) -> list[str]:
    """The report as text: a heading per client, a paragraph per practice, a line per call."""
    if not response.clients:
        return [NOTHING]
    lines = []
    for client in response.clients:
        count = len(client.findings)
        lines.append(f"{client.client}: {count} broken practice{'' if count == 1 else 's'}")
        for finding in client.findings:
            lines += [f"  {finding.practice}", f"    advice: {finding.advice}"]
            lines += [
                f"    {c.sequence}  {c.start_time.ToJsonString()}  {c.method.lstrip('/')}  "
                f"flow={c.flow_id or '-'}  {c.note}"
                for c in finding.calls
            ]
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as proto3 JSON.")
@click.option(
    "--fail-on-findings", is_flag=True, help="Exit with 1 if any client broke a practice (for CI jobs)."
)
@pass_admin
@click.pass_context
def report(ctx: click.Context, admin: Admin, as_json: bool, fail_on_findings: bool) -> None:
    """Per client, the practices it broke in the namespace's journal, with advice and the calls that show
    it: polling too often, renewing tokens early, expired tokens, early or unsafe retries, commands to
    sleeping vehicles, streams reopened without last_message_id, deprecated versions."""
    response = admin.call(lambda stub: stub.GetClientReport, pb.GetClientReportRequest())
    if as_json:
        echo_json(response)
    else:
        click.echo("\n".join(report_lines(response)))
    if fail_on_findings and response.clients:
        ctx.exit(1)
