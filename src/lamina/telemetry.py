"""Traces through the OpenTelemetry API only, so every layer can open spans.

Until an application installs an SDK (``lamina serve`` does when an OTLP endpoint is configured),
the API's tracer is a no-op: spans cost a function call and go nowhere. Attribute names follow
OpenTelemetry's GenAI semantic conventions where one exists (``gen_ai.*``); Lamina's own carry
the ``lamina.`` prefix.
"""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("lamina")

# GenAI semantic conventions (development status): the names Lamina sets
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
DATA_SOURCE = "gen_ai.data_source.id"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
STREAM = "gen_ai.request.stream"
REQUEST_ID = "lamina.request_id"
