#!/usr/bin/env python3
"""Checks proto/*.proto against the descriptors of the installed opentelemetry-proto and googleapis
packages (the source of truth for field names and numbers). Usage: verify_against_python.py DESCRIPTOR_SET"""
import sys

from google.protobuf import descriptor_pb2
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ours = descriptor_pb2.FileDescriptorSet()
with open(sys.argv[1], "rb") as handle:
    ours.ParseFromString(handle.read())

reference = {}


def type_name(descriptor):
    return descriptor.full_name if descriptor else None


def collect(message):
    if message.full_name in reference:
        return
    reference[message.full_name] = {
        f.number: (f.name, f.type, f.is_repeated, type_name(f.message_type or f.enum_type))
        for f in message.fields
    }
    for field in message.fields:
        if field.message_type:
            collect(field.message_type)


collect(trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR)
collect(trace_service_pb2.ExportTraceServiceResponse.DESCRIPTOR)
collect(status_pb2.Status.DESCRIPTOR)

mine = {}


def walk(prefix, messages):
    for message in messages:
        name = f"{prefix}.{message.name}"
        mine[name] = {
            f.number: (f.name, f.type, f.label == f.LABEL_REPEATED, f.type_name.lstrip(".") or None)
            for f in message.field
        }
        walk(name, message.nested_type)


for file in ours.file:
    walk(file.package, file.message_type)

problems = []
for name, fields in reference.items():
    if name not in mine:
        problems.append(f"missing message {name}")
    elif mine[name] != fields:
        problems.append(f"{name}: ours {sorted(mine[name].items())} != reference {sorted(fields.items())}")
for problem in problems:
    print(problem)
print(f"{len(reference)} messages compared, {len(problems)} differences")
sys.exit(1 if problems else 0)
