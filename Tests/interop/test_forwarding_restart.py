"""Forwarding survives an outage and a restart of the forwarding process: nothing queued is lost.

Stitch A (the binary) forwards through an `otlp` destination from its config file to Stitch B's
port while nothing listens there, over OTLP/HTTP or (`protocol: grpc`) OTLP/gRPC to B's gRPC port. A Python sender posts 10,000 spans (200 traces, each in two
pieces from two services) to A. A is stopped (SIGTERM) or killed (SIGKILL), started again with the
same `--queue-dir`, and only then B (another stitch binary, with its store) comes up on the port:
every span must arrive in B's store, every trace whole and once.

What is on A's disk queue survives both signals. What A has acknowledged to the client but still
buffers in its assembler (a trace not finished yet) survives SIGTERM, which releases every buffered
trace into the queue before exiting, but not SIGKILL: that is by design, so the SIGKILL test kills
only once A's /metrics show every trace released and queued.

Delivery is at least once: a batch sent but not yet acknowledged when A dies is sent again. The
tests count such duplicates (recorded as test properties) rather than fail on them; B keeps a span
once and merges what comes again into the stored trace.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import Metrics, StitchServer, b64_to_hex, free_port, mlflow_trace_id, spans_of, tag_list, tail, wait_until
from payloads import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_OK, SpanSpec, new_trace_id, otlp_protobuf_traces

TRACES = 200
SPANS_PER_PIECE = 25  # each trace: a frontend piece (with the root) and a backend piece
TOTAL_SPANS = TRACES * 2 * SPANS_PER_PIECE  # 10,000
TRACES_PER_REQUEST = 20
DESTINATION = "downstream"
PROTOBUF = "application/x-protobuf"

#: A stops buffering nothing: a closed trace is released 300 ms after its last span; none times out.
RELEASE_QUICKLY = ("--idle-timeout", "300ms", "--max-trace-age", "60s")
#: A holds every trace in its assembler until it is stopped.
KEEP_BUFFERED = ("--idle-timeout", "10m", "--max-trace-age", "10m")
#: B, the receiving Stitch with its store.
RECEIVER_OPTIONS = ("--idle-timeout", "300ms", "--max-trace-age", "30s", "--log-level", "info")

QUEUED_WAIT_S = 60.0
DELIVERY_WAIT_S = 120.0


@dataclass
class Workload:
    """The traces sent (trace hex → span hex → parent hex or None) and the requests that carry them."""

    traces: dict[str, dict[str, str | None]] = field(default_factory=dict)
    requests: list[bytes] = field(default_factory=list)


def tree(prefix: str, top: SpanSpec) -> list[SpanSpec]:
    """`top` and SPANS_PER_PIECE - 1 descendants as a binary tree (span i's parent is span (i-1)//2)."""
    spans = [top]
    for index in range(1, SPANS_PER_PIECE):
        spans.append(SpanSpec(f"{prefix}-{index}", parent=spans[(index - 1) // 2]))
    return spans


def make_workload() -> Workload:
    """200 traces of 50 spans: the frontend's 25 (root, and a CLIENT span calling the backend) and the
    backend's 25 (its top span's parent is the frontend's CLIENT span). Every backend piece is sent
    before any frontend piece, so that no trace is closed (and released) before it is whole."""
    workload = Workload()
    frontend: list[tuple[str, list[SpanSpec]]] = []
    backend: list[tuple[str, list[SpanSpec]]] = []
    for _ in range(TRACES):
        trace_hex = new_trace_id()
        front = tree("frontend", SpanSpec("frontend-root", kind=SPAN_KIND_SERVER, status=STATUS_OK))
        front[-1].kind = SPAN_KIND_CLIENT  # the call to the backend
        back = tree("backend", SpanSpec("backend-handler", parent=front[-1], kind=SPAN_KIND_SERVER))
        frontend.append((trace_hex, front))
        backend.append((trace_hex, back))
        workload.traces[trace_hex] = {span.span_id: span.parent_span_id for span in front + back}
    for service, pieces in (("backend", backend), ("frontend", frontend)):
        for start in range(0, TRACES, TRACES_PER_REQUEST):
            workload.requests.append(otlp_protobuf_traces(service, pieces[start:start + TRACES_PER_REQUEST]))
    assert sum(len(spans) for spans in workload.traces.values()) == TOTAL_SPANS
    return workload


def forwarding_config(path: Path, receiver_port: int, protocol: str = "http") -> Path:
    """A's config file: one OTLP destination (B's HTTP port, or with `protocol` "grpc" B's gRPC port),
    quick retries so that B's return is seen soon."""
    if protocol == "grpc":
        otlp = f"endpoint: http://127.0.0.1:{receiver_port}\n      protocol: grpc"
    else:
        otlp = f"endpoint: http://127.0.0.1:{receiver_port}/v1/traces"
    path.write_text(f"""\
destinations:
  - name: {DESTINATION}
    otlp:
      {otlp}
      compression: gzip
      timeout: 5s
    retry: {{ initial_interval: 100ms, max_interval: 1s }}
""")
    return path


def describe(server: StitchServer, *names: str) -> str:
    try:
        metrics = server.metrics()
    except Exception as error:  # noqa: BLE001 - only for the failure message
        return f"(no metrics: {error})"
    return ", ".join(f"{name}={metrics.value(name):g}" for name in names)


ASSEMBLY = ("stitch_spans_accepted_total", "stitch_buffered_traces", "stitch_traces_released_total",
            "stitch_sink_queued_traces", "stitch_queue_traces")


def send(server: StitchServer, workload: Workload) -> None:
    for body in workload.requests:
        response = server.post("/v1/traces", body, PROTOBUF)
        assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    wait_until("A accepted every span", lambda: server.metrics().value("stitch_spans_accepted_total") == TOTAL_SPANS,
               QUEUED_WAIT_S, lambda: describe(server, *ASSEMBLY))


def everything_queued(metrics: Metrics) -> bool:
    """Every trace released, through the in-memory hand-off, and on the destination's disk queue."""
    released = metrics.value("stitch_traces_released_total")
    return (metrics.value("stitch_buffered_traces") == 0 and released >= TRACES
            and metrics.value("stitch_sink_queued_traces") == 0
            and metrics.value("stitch_queue_traces", destination=DESTINATION) == released)


def check_delivery(receiver: StitchServer, workload: Workload) -> None:
    """Every trace sent is in B's store once, with exactly its spans and parent links, and OK."""
    stored = [info["trace_id"] for info in receiver.search(experiment_id="0")]
    expected = {mlflow_trace_id(trace_hex) for trace_hex in workload.traces}
    assert set(stored) == expected, f"{len(expected - set(stored))} traces missing, {len(set(stored) - expected)} unexpected"
    assert len(stored) == len(set(stored)), "a trace is stored more than once"
    broken = []
    for trace_hex, spans in workload.traces.items():
        trace_json = receiver.api_trace(mlflow_trace_id(trace_hex))
        got = {b64_to_hex(span["span_id"]): b64_to_hex(span.get("parent_span_id")) for span in spans_of(trace_json)}
        info = trace_json["info"]
        if got != spans or info["state"] != "OK" or tag_list(info, "stitch.services") != {"frontend", "backend"}:
            broken.append(f"{trace_hex}: {len(got)} of {len(spans)} spans, {sum(got.get(s) == p for s, p in spans.items())} "
                          f"parents right, state {info['state']}, tags {info.get('tags')}")
    assert not broken, f"{len(broken)} traces not whole in B:\n" + "\n".join(broken[:10])


def restart_and_deliver(start_stitch, options: tuple[str, ...], receiver_port: int, workload: Workload,
                        queued: int, record_property, protocol: str = "http") -> StitchServer:
    """Starts A again on its queue with B still down, checks the queue survived, brings B up (with
    `receiver_port` as its HTTP or its gRPC port) and waits until every span arrived there. Returns
    the restarted A."""
    restarted = start_stitch(options=options)
    metrics = restarted.metrics()
    # Nothing reached B (it is down), so what was queued before must be on disk now.
    assert metrics.value("stitch_queue_traces", destination=DESTINATION) == queued, describe(restarted, *ASSEMBLY)
    # A keeps trying while B is down.
    wait_until("A retried the delivery", lambda: restarted.metrics().value("stitch_destination_retries_total") > 0,
               30.0, lambda: describe(restarted, "stitch_destination_retries_total"))

    started = time.monotonic()
    ports = {"grpc_port": receiver_port} if protocol == "grpc" else {"port": receiver_port}
    receiver = start_stitch(options=RECEIVER_OPTIONS, **ports)
    wait_until("A's queue drained into B",
               lambda: restarted.metrics().value("stitch_queue_traces", destination=DESTINATION) == 0,
               DELIVERY_WAIT_S, lambda: describe(restarted, "stitch_queue_traces", "stitch_destination_sent_traces_total",
                                                 "stitch_destination_dead_lettered_traces_total"))
    wait_until("B stored every trace", lambda: len(receiver.search(experiment_id="0")) >= TRACES,
               DELIVERY_WAIT_S, lambda: describe(receiver, "stitch_spans_accepted_total", "stitch_store_traces_written_total"))
    wait_until("B buffers nothing more", lambda: receiver.metrics().value("stitch_buffered_traces") == 0, 30.0)
    check_delivery(receiver, workload)

    sender_metrics, receiver_metrics = restarted.metrics(), receiver.metrics()
    assert sender_metrics.value("stitch_destination_dead_lettered_traces_total") == 0
    received = receiver_metrics.value("stitch_spans_received_total")
    # B took the traces on the protocol A was told to use.
    assert receiver_metrics.value("stitch_spans_received_total", protocol=protocol) == received
    figures = {
        "delivery_seconds": round(time.monotonic() - started, 2),
        "queued_traces_before_restart": queued,
        "redelivered_traces": sender_metrics.value("stitch_queue_redelivered_traces_total"),
        "spans_received_by_b": received,
        "duplicate_spans_at_b": received - TOTAL_SPANS,
        "late_spans_at_b": receiver_metrics.value("stitch_spans_late_total"),
    }
    for key, value in figures.items():
        record_property(key, value)
    print(f"\nforwarding restart: {figures}")
    assert received >= TOTAL_SPANS
    return restarted


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_queued_traces_survive_a_restart(kill, protocol, start_stitch, tmp_path, record_property):
    receiver_port = free_port()  # B is down: nothing listens here until the end
    options = ("--config", str(forwarding_config(tmp_path / "a.yaml", receiver_port, protocol)),
               "--queue-dir", str(tmp_path / "queues"), "--log-level", "info", *RELEASE_QUICKLY)
    forwarder = start_stitch(options=options)
    workload = make_workload()

    send(forwarder, workload)
    wait_until("every trace released and on A's disk queue", lambda: everything_queued(forwarder.metrics()),
               QUEUED_WAIT_S, lambda: describe(forwarder, *ASSEMBLY))
    queued = int(forwarder.metrics().value("stitch_queue_traces", destination=DESTINATION))
    assert queued == TRACES  # each trace released once, whole (the backend pieces came first)

    forwarder.proc.send_signal(kill)
    status = forwarder.proc.wait(timeout=30)
    assert status == (0 if kill == signal.SIGTERM else -signal.SIGKILL)

    restart_and_deliver(start_stitch, options, receiver_port, workload, queued, record_property, protocol)


def test_sigterm_queues_traces_still_buffered(start_stitch, tmp_path, record_property):
    # Every trace is still in A's assembler when SIGTERM comes: shutdown releases each (reason
    # `shutdown`) into the destination's disk queue before A exits.
    receiver_port = free_port()
    options = ("--config", str(forwarding_config(tmp_path / "a.yaml", receiver_port)),
               "--queue-dir", str(tmp_path / "queues"), "--log-level", "info", *KEEP_BUFFERED)
    forwarder = start_stitch(options=options)
    workload = make_workload()

    send(forwarder, workload)
    metrics = forwarder.metrics()
    assert metrics.value("stitch_buffered_traces") == TRACES
    assert metrics.value("stitch_queue_traces", destination=DESTINATION) == 0

    assert forwarder.stop(timeout=30) == 0

    restart_and_deliver(start_stitch, options, receiver_port, workload, TRACES, record_property)


def two_destinations_config(path: Path, store: Path, receiver_port: int) -> Path:
    """The forwarding destination first, then a store: the order in which the process exits 1 (below)."""
    forwarding_config(path, receiver_port)
    path.write_text(path.read_text() + f"""\
  - name: local
    store: {{ path: {store} }}
""")
    return path


def test_sigterm_with_a_store_and_a_forwarding_destination_keeps_everything(start_stitch, tmp_path, record_property):
    # Every buffered trace goes, on SIGTERM, both into A's own store and into the disk queue of the
    # destination that is down; after a restart B gets them all.
    receiver_port = free_port()
    config = two_destinations_config(tmp_path / "a.yaml", tmp_path / "a-store.db", receiver_port)
    options = ("--config", str(config), "--queue-dir", str(tmp_path / "queues"), "--log-level", "info", *KEEP_BUFFERED)
    forwarder = start_stitch(options=options)
    workload = make_workload()
    send(forwarder, workload)

    assert forwarder.stop(timeout=30) == 0, tail(forwarder.log_path, 5)

    restarted = restart_and_deliver(start_stitch, options, receiver_port, workload, TRACES, record_property)
    # A's own store (its query API reads the store destination) has every trace too, whole.
    check_delivery(restarted, workload)


def test_sigterm_with_two_destinations_exits_0(start_stitch, tmp_path):
    config = two_destinations_config(tmp_path / "a.yaml", tmp_path / "a-store.db", free_port())
    forwarder = start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / "queues"), *KEEP_BUFFERED))
    send(forwarder, make_workload())
    assert forwarder.stop(timeout=30) == 0, tail(forwarder.log_path, 5)
