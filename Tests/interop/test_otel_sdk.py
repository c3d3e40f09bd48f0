"""Two processes traced with the plain OpenTelemetry SDK form one stored trace."""

from harness import has_spans, mlflow_trace_id, otel_env, parent_names, run_app, span_names, tag_list

A_SPANS = ("A-root", "A-call-B", "A-postprocess")
B_SPANS = ("B-handler", "B-db")


def test_two_sdk_processes_form_one_trace(stitch_on_each_store, start_server_app, tmp_path):
    stitch = stitch_on_each_store
    # Service B exports to the endpoint without a path (SDKs then POST to "/"), A to /v1/traces.
    service_b = start_server_app("otel_service_b.py", otel_env(stitch, "service-b", endpoint=stitch.base_url))
    client = run_app("otel_service_a.py", [f"{service_b.base_url}/work"], otel_env(stitch, "service-a"), tmp_path)
    service_b.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    stored = stitch.wait_for_trace(trace_id, until=has_spans(*A_SPANS, *B_SPANS))

    assert span_names(stored) == sorted(A_SPANS + B_SPANS)
    assert parent_names(stored) == {
        "A-root": None,
        "A-call-B": "A-root",
        "A-postprocess": "A-root",
        "B-handler": "A-call-B",
        "B-db": "B-handler",
    }
    info = stored["info"]
    assert info["trace_id"] == trace_id
    assert info["state"] == "OK"
    assert tag_list(info, "stitch.services") == {"service-a", "service-b"}
    # Released as closed, or closed first and B's spans merged in as a late fragment: the
    # processes export at exit, in either order.
    assert info["tags"].get("stitch.completeness") in ("closed", "late")

    # One trace, not one per process.
    assert [t["trace_id"] for t in stitch.search(experiment_id="0")].count(trace_id) == 1

    # The CLI reads the same store.
    cli_json = stitch.cli_trace_json(trace_id)
    assert cli_json["info"]["trace_id"] == trace_id
    assert span_names(cli_json) == span_names(stored)
    assert parent_names(cli_json) == parent_names(stored)

    rows = stitch.cli_ok("traces", "search")
    assert rows.count(trace_id) == 1, rows

    tree = stitch.cli_ok("traces", "get", trace_id)
    for name in ("service-a", "service-b", *A_SPANS, *B_SPANS):
        assert name in tree, f"{name!r} missing from `stitch traces get`:\n{tree}"
