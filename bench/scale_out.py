"""Scale-out: events per second through three replicas, on one Redis and on a three-master Redis Cluster,
against one replica on one Redis, in the same run.

Each configuration starts on a freshly started Redis: (a) one ``fleet-emulator serve --backend redis``
(the baseline), (b) three of them on one ``redis-server``, (c) three on a Redis Cluster of three masters
with a replica each (``tests/redis_cluster.py``; it needs ``redis-cli``, without which the row is left out
with a note). The emulators are real processes started through the command line (``--no-console
--no-simulate``), each on a free port. The load is ``AdminService/PublishEvent`` posted by h2load as fast
as the replicas answer: a lock change of the demo's seed vehicle (no ``id``, so that no event is taken for
a retry of another), in ``NAMESPACES`` namespaces (``x-emulator-namespace``). A namespace's Hamburg events
go to a durable stream of their own, and the names are chosen so that on the cluster each namespace's keys
(its vehicles and its stream) lie on another master: a publish writes to one master, and the three
namespaces spread the writes over the three. The same ``NAMESPACES`` times ``CONNECTIONS_PER_NAMESPACE``
h2load connections (one process each, ``in_flight`` calls in flight on each) run in every configuration,
spread over the replicas equally (all of them on the one replica of the baseline).

A publish counts when h2load saw it answered and the event is in its stream: the events each stream took
in the window (``XINFO STREAM``'s ``entries-added``, which trimming does not lower) must be at least the
calls h2load saw succeed (h2load judges HTTP statuses only; a gRPC error is an answer without an event);
a shortfall counts as failed calls. One real gRPC call per replica and namespace before and after each
window must succeed. The rows are the three-replica figures as ratios of the one-replica one, without a
bar (the issue sets none): figures to read, with the server side's CPU (replicas and Redis) per event.

Placement: the servers (replicas and Redis) get every core but one, the load the last one; on two cores
nothing is pinned, and three replicas, Redis (six nodes on the cluster) and h2load share both cores, which
the rows say.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import redis
from redis.crc import key_slot
from tests.e2e.harness import FLEET_EMULATOR, EmulatorProcess, clean_env, free_port, start
from tests.redis_cluster import MASTERS, RedisCluster, redis_cli
from tests.steering import SEED_VEHICLE

from bench.cpu import Placement, Usage, UsageMeter, all_cores, pin, pinned_command, placement
from bench.h2load import REQUESTS, STATUS, children_cpu_seconds, grpc_frame, h2load_command
from bench.load import CALL_TIMEOUT_SECONDS, Load
from bench.private_redis import redis_server
from bench.report import Comparison, Measurement
from bench.servers import HOST, READY_TIMEOUT_SECONDS
from bench.unary import cpu_split
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.namespaces import NAMESPACE_HEADER
from fleet_emulator.domain.streams import vehicle_events_id

REPLICAS = 3
NAMESPACES = MASTERS  # one per master of the cluster
CONNECTIONS_PER_NAMESPACE = REPLICAS  # one per replica when there are three
PUBLISH_METHOD = "/emulator.admin.v1.AdminService/PublishEvent"
FLEET_ID = "hamburg"  # the seed vehicle's
STREAM = vehicle_events_id(FLEET_ID)
SLOTS = 16_384
EXTRA_SECONDS = 60.0  # beyond the window before h2load is given up
SETTLE_SECONDS = 5.0  # at most, for calls cut at the window's end to land in their streams
SETTLE_POLL_SECONDS = 0.2
REQUEST = admin_pb2.PublishEventRequest(
    event=v2.Event(vehicle_id=SEED_VEHICLE, lock_changed=v2.LockChanged(lock_state=v2.LOCK_STATE_LOCKED))
)


def scale_out_placement() -> Placement:
    """Every core but one for the servers, the last for the load; on two cores nothing is pinned."""
    return placement(server_cores=max(2, len(all_cores()) - 1))


def _master(slot: int) -> int:
    """Which of ``MASTERS`` masters ``redis-cli --cluster create`` gives ``slot`` to (equal ranges)."""
    return slot * MASTERS // SLOTS


def _cluster_keys(namespace: str) -> tuple[str, str]:
    """A namespace's vehicles and its Hamburg stream, as keys of a cluster."""
    keys = RedisKeys.of(namespace, cluster=True)
    return keys.vehicles, keys.stream(STREAM)


def namespace_names() -> tuple[str, ...]:
    """``NAMESPACES`` names whose keys lie on master 0, 1, ... of a fresh cluster: a namespace's vehicles
    (read by every publish) and its stream (written) on the same master, each namespace on another."""
    chosen: dict[int, str] = {}
    candidate = 0
    while len(chosen) < NAMESPACES:
        name = f"scale-out-{candidate}"
        masters = {_master(key_slot(key.encode())) for key in _cluster_keys(name)}
        if len(masters) == 1 and (master := masters.pop()) not in chosen:
            chosen[master] = name
        candidate += 1
    return tuple(chosen[m] for m in sorted(chosen))


@dataclass(frozen=True)
class Target:
    """One h2load process: a replica's address and the namespace it publishes in."""

    address: str
    namespace: str


@dataclass(frozen=True)
class Batch:
    """The h2load processes of one window, together."""

    succeeded: int  # answered with HTTP 200 (a gRPC error too)
    failed: int  # h2load's failed requests (errored and timed out included) and 3xx answers
    cut: int  # started but not done when the window ended
    latencies_s: list[float]
    cpu_seconds: float  # h2load's


def _h2load_command(target: Target, body: Path, log: Path, seconds: float, in_flight: int) -> list[str]:
    headers = [f"{NAMESPACE_HEADER}: {target.namespace}"] if target.namespace else []
    return h2load_command(
        f"http://{target.address}{PUBLISH_METHOD}", body, log, seconds, 1, in_flight, *headers
    )


def publish_batch(targets: Sequence[Target], seconds: float, in_flight: int, cores: Sequence[int]) -> Batch:
    """One h2load process per target, all at once, for ``seconds``; their counts together."""
    succeeded = failed = cut = 0
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as folder:
        body = Path(folder) / "request.bin"
        body.write_bytes(grpc_frame(REQUEST.SerializeToString()))
        before = children_cpu_seconds()
        runs: list[tuple[list[str], subprocess.Popen[bytes], Path, Path]] = []
        try:
            for n, target in enumerate(targets):
                log, out = Path(folder) / f"requests-{n}.tsv", Path(folder) / f"h2load-{n}.out"
                command = _h2load_command(target, body, log, seconds, in_flight)
                with out.open("wb") as sink:
                    process = subprocess.Popen(
                        pinned_command(command, cores), stdout=sink, stderr=subprocess.STDOUT
                    )
                runs.append((command, process, out, log))
            for _, process, _, _ in runs:
                process.wait(timeout=seconds + EXTRA_SECONDS)
        finally:
            for _, process, _, _ in runs:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        cpu_seconds = children_cpu_seconds() - before
        for command, process, out, log in runs:
            output = out.read_text(errors="replace")
            requests, status = REQUESTS.search(output), STATUS.search(output)
            if process.returncode != 0 or requests is None or status is None:
                raise RuntimeError(f"h2load failed ({process.returncode}): {' '.join(command)}\n{output}")
            succeeded += int(requests["succeeded"])
            failed += int(requests["failed"]) + int(status["s3"])
            cut += int(requests["started"]) - int(requests["done"])
            latencies += [int(line.split("\t")[2]) / 1e6 for line in log.read_text().splitlines() if line]
    return Batch(succeeded, failed, cut, latencies, cpu_seconds)


def publish_once(address: str, namespace: str) -> None:
    """One real gRPC PublishEvent, which must succeed (the first one also makes the namespace)."""
    with grpc.insecure_channel(address) as channel:
        publish = channel.unary_unary(
            PUBLISH_METHOD,
            request_serializer=admin_pb2.PublishEventRequest.SerializeToString,
            response_deserializer=admin_pb2.PublishEventResponse.FromString,
        )
        metadata = ((NAMESPACE_HEADER, namespace),)
        response = publish(REQUEST, timeout=CALL_TIMEOUT_SECONDS, wait_for_ready=True, metadata=metadata)
    if not response.message_id:
        raise RuntimeError(f"PublishEvent on {address} in {namespace!r} answered no message id")


EventCounter = Callable[[], int]


def event_counter(
    client: redis.Redis | redis.RedisCluster, cluster: bool, names: Sequence[str]
) -> EventCounter:
    """The events the namespaces' streams have taken so far (``entries-added``: trimming does not lower
    it)."""
    keys = [RedisKeys.of(name, cluster=cluster).stream(STREAM) for name in names]

    def count() -> int:
        return sum(int(client.xinfo_stream(key)["entries-added"]) for key in keys)

    return count


def settled(count: EventCounter) -> int:
    """The count once it stops growing: calls cut at the window's end may still be landing."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = count()
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_SECONDS)
        now = count()
        if now == last:
            return now
        last = now
    return last


@contextmanager
def replicas(count: int, redis_url: str, where: Placement) -> Iterator[list[EmulatorProcess]]:
    """``count`` emulators on ``redis_url``, started together through the command line, on the server
    cores; each stopped (SIGTERM, then SIGKILL) at the end."""
    started: list[EmulatorProcess] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as folder:
        try:
            for n in range(count):
                port = free_port()
                command = [
                    str(FLEET_EMULATOR), "serve", "--backend", "redis", "--redis-url", redis_url,
                    "--host", HOST, "--port", str(port), "--no-console", "--no-simulate",
                    "--grace-period", "1s",
                ]  # fmt: skip
                log = Path(folder) / f"replica-{n}.log"
                started.append(start(pinned_command(command, where.server), port, log, clean_env()))
            for emulator in started:
                emulator.wait_ready(READY_TIMEOUT_SECONDS)
            yield started
        finally:
            for emulator in started:
                emulator.terminate()


@contextmanager
def cluster_on(cores: Sequence[int]) -> Iterator[RedisCluster]:
    """A fresh three-master cluster whose nodes run on ``cores``: this process takes them while it starts
    the nodes (they inherit them), then goes back to its own."""
    own = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        cluster = RedisCluster(Path(folder))
        pin(cores)
        try:
            cluster.start()
        finally:
            pin(own)
        try:
            yield cluster
        finally:
            cluster.stop()


@dataclass(frozen=True)
class Figures:
    """One configuration's window."""

    measured: Measurement
    usage: Usage
    batch: Batch
    added: int  # events the streams took in the window
    replica_pids: list[int]

    @property
    def missing(self) -> int:
        """Calls h2load saw succeed beyond the events that landed: gRPC errors."""
        return max(0, self.batch.succeeded - self.added)


def targets_of(addresses: Sequence[str], names: Sequence[str]) -> list[Target]:
    """``CONNECTIONS_PER_NAMESPACE`` connections per namespace, spread over the replicas equally."""
    return [
        Target(addresses[n % len(addresses)], name)
        for name in names
        for n in range(CONNECTIONS_PER_NAMESPACE)
    ]


def measure(
    emulators: Sequence[EmulatorProcess],
    redis_pids: Sequence[int],
    count: EventCounter,
    names: Sequence[str],
    load: Load,
    where: Placement,
) -> Figures:
    """A warm-up window, then the measured one with the server side's CPU around it."""
    addresses = [e.address for e in emulators]
    targets = targets_of(addresses, names)
    cores = sorted(where.load)

    def check() -> None:
        for address in addresses:
            for name in names:
                publish_once(address, name)

    check()
    publish_batch(targets, load.warmup_seconds, load.in_flight, cores)
    check()
    before = settled(count)
    pids = [e.process.pid for e in emulators]
    meter = UsageMeter({"replicas": pids, "redis": list(redis_pids)}, where)
    meter.start()
    batch = publish_batch(targets, load.seconds, load.in_flight, cores)
    usage = replace(meter.stop(), load_cpu_seconds=batch.cpu_seconds)
    added = settled(count) - before
    check()
    missing = max(0, batch.succeeded - added)
    measured = Measurement.from_latencies(
        batch.latencies_s,
        load.seconds,
        batch.failed + missing,
        operations=batch.succeeded - missing,
        usage=usage,
    )
    return Figures(measured, usage, batch, added, pids)


def _on_one_redis(count: int, names: Sequence[str], load: Load, where: Placement) -> Figures:
    with (
        redis_server(where.server) as server,
        replicas(count, server.url, where) as emulators,
        redis.Redis.from_url(server.url) as client,
    ):
        return measure(emulators, [server.pid], event_counter(client, False, names), names, load, where)


@dataclass(frozen=True)
class ClusterFigures:
    figures: Figures
    masters: dict[str, str]  # namespace: the master its stream is on


def _on_cluster(names: Sequence[str], load: Load, where: Placement) -> ClusterFigures:
    with cluster_on(sorted(where.server)) as cluster:
        node_pids = [n.process.pid for n in cluster.nodes if n.process is not None]
        first = cluster.nodes[0]
        masters = {name: cluster.master_of(_cluster_keys(name)[1]).address for name in names}
        with (
            replicas(REPLICAS, cluster.url, where) as emulators,
            redis.RedisCluster(host=HOST, port=first.port) as client,
        ):
            counter = event_counter(client, True, names)
            return ClusterFigures(measure(emulators, node_pids, counter, names, load, where), masters)


def _cores_by_process(figures: Figures, seconds: float) -> dict[str, float]:
    """Each server-side process's share of a core in the window: replicas by their order, Redis by pid."""
    shares: dict[str, float] = {}
    for pid, cpu in figures.usage.per_process.items():
        name = f"replica {figures.replica_pids.index(pid) + 1}" if pid in figures.replica_pids else str(pid)
        shares[name] = round(cpu / seconds, 2)
    return shares


def _describe(label: str, figures: Figures, seconds: float) -> str:
    cores = figures.usage.cpu_seconds
    batch = figures.batch
    failures = (
        f"; FAILURES: {batch.failed} failed calls, {figures.missing} answered without an event"
        if batch.failed or figures.missing
        else ""
    )
    return (
        f"{label}: {batch.succeeded:,} calls answered in {seconds:g} s, {figures.added:,} events taken by "
        f"the streams ({batch.cut} calls cut at the window's end){failures}; server cores: replicas "
        f"{cores.get('replicas', 0) / seconds:.2f}, Redis {cores.get('redis', 0) / seconds:.2f}; "
        f"h2load {batch.cpu_seconds / seconds:.2f}"
    )


def _row(name: str, label: str, figures: Figures, base: Figures, load: Load, notes: list[str]) -> Comparison:
    return Comparison(
        name,
        "events/s",
        figures.measured,
        base.measured,
        details={
            "cpu_us_per_event": {
                label: cpu_split(figures.usage, figures.measured.operations),
                "1 replica": cpu_split(base.usage, base.measured.operations),
            },
            "cores_by_process": {
                label: _cores_by_process(figures, load.seconds),
                "1 replica": _cores_by_process(base, load.seconds),
            },
            "notes": [
                *notes,
                _describe(label, figures, load.seconds),
                _describe("1 replica, one Redis", base, load.seconds),
            ],
        },
    )


def run_scale_out_benchmarks(load: Load, where: Placement) -> list[Comparison]:
    """Three replicas on one Redis and on a cluster, each as a ratio of one replica on one Redis. ``where``
    is not used: the replicas need a placement of their own (``scale_out_placement``)."""
    where = scale_out_placement()
    names = namespace_names()
    one = _on_one_redis(1, names, load, where)
    three = _on_one_redis(REPLICAS, names, load, where)
    connections = NAMESPACES * CONNECTIONS_PER_NAMESPACE
    shared = [
        f"placement: {where.describe()}"
        + ("" if where.pinned else " (nothing can be pinned meaningfully on so few cores)"),
        f"load: PublishEvent from h2load, {connections} connections with {load.in_flight} calls in flight "
        f"each, spread over the replicas, in namespaces {', '.join(names)} (a stream each); no bar: figures",
    ]
    left_out = [] if redis_cli() else ["the cluster row is left out: no redis-cli (Debian's redis-tools)"]
    title = f"PublishEvent, {REPLICAS} replicas vs 1, one redis"
    rows = [_row(title, "3 replicas", three, one, load, [*shared, *left_out])]
    if left_out:
        return rows
    on_cluster = _on_cluster(names, load, where)
    spread = ", ".join(f"{name} on {master}" for name, master in on_cluster.masters.items())
    distinct = len(set(on_cluster.masters.values()))
    cluster_notes = [
        *shared,
        f"cluster: {MASTERS} masters with a replica each (6 redis-server processes); streams: {spread}"
        + ("" if distinct == NAMESPACES else f" (only {distinct} masters take writes)"),
    ]
    rows.append(
        _row(
            f"PublishEvent, {REPLICAS} replicas on a {MASTERS}-master cluster vs 1 on one redis",
            "3 replicas, cluster",
            on_cluster.figures,
            one,
            load,
            cluster_notes,
        )
    )
    return rows
