"""The HTTP API: the collector (``/v1/...``), health, and the server thread that runs it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wayline import __version__
from wayline.analyticsapi import mount_analytics
from wayline.config.workspace import WaylineConfig
from wayline.connectors.collector import Collector
from wayline.connectors.links import Links, link_secret
from wayline.consentapi import mount_consent
from wayline.health import BrokerProbe, StatsSource, verdict
from wayline.profileapi import (
    Answer,
    Credentials,
    ProfileLookups,
    mount_profiles,
    mount_segments,
)
from wayline.routes import COLLECTOR_PATHS, ErrorReply, mount_collector
from wayline.schemas.errors import ConfigError
from wayline.schemas.topics import Topics
from wayline.settings import Settings
from wayline.streams.aioproducer import AsyncProducer
from wayline.streams.broker import port_in_use
from wayline.streams.clients import KafkaConfig
from wayline.streams.definitions import DefinitionsView
from wayline.streams.metrics import WorkerCollector
from wayline.streams.profileview import ProfileView
from wayline.warehouse import Warehouse

log = logging.getLogger(__name__)

HTTP_RESPONSES = Counter(
    "wayline_http_responses_total", "HTTP responses by route and status", ["route", "status"]
)


def create_app(
    settings: Settings,
    config: WaylineConfig,
    stats: StatsSource,
    warehouse: Warehouse | None = None,
) -> FastAPI:
    """The FastAPI application; OpenAPI documentation is served at ``/docs``. ``warehouse``:
    ClickHouse, when this process may query it (``/v1/analytics``)."""
    producer = AsyncProducer(KafkaConfig(settings.bootstrap, dict(settings.kafka_options)))
    topics = Topics(settings.topic_prefix, settings.partitions)
    collector = Collector(config, topics, producer.send, settings.default_phone_region)
    kafka = KafkaConfig(settings.bootstrap, dict(settings.kafka_options))
    profiles = ProfileView(kafka, topics.profiles)
    definitions = DefinitionsView(kafka, topics.definitions, config)

    probe = BrokerProbe(kafka)
    answer = Answer(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        profiles.start()
        definitions.start()
        probe.start()
        yield
        await producer.stop()  # flush what was accepted before the server stops
        profiles.stop()
        definitions.stop()
        probe.stop()

    app = FastAPI(
        title="Wayline",
        version=__version__,
        lifespan=lifespan,
        description="Segment-compatible collector and the Wayline API.",
    )
    app.add_middleware(CollectorCors)

    @app.exception_handler(Exception)
    async def unforeseen(_request: Request, exc: Exception) -> JSONResponse:
        """A bug must not answer 500 (clients give up on it, or retry and then drop): 503 with
        Retry-After, which every Segment-compatible client retries; logged with its traceback."""
        log.error("unexpected error in the HTTP API: %r", exc, exc_info=exc)
        body = {"code": "internal_error", "message": f"{type(exc).__name__}; try again"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    mount_collector(app, collector)
    links = Links(link_secret(settings.link_secret, settings.data_dir), settings.base_url)
    mount_consent(app, collector, links, settings.public_url)
    mount_profiles(app, config, profiles)
    mount_segments(app, config, profiles, lambda: definitions.rules)
    mount_analytics(app, config, warehouse, _unavailable(settings))

    metrics = CollectorRegistry()
    metrics.register(WorkerCollector(stats))

    app.add_middleware(ProfileLookups, config=config, view=profiles)
    app.add_middleware(ResponseCounter)

    @app.get(
        "/metrics",
        summary="Prometheus metrics (Bearer api key)",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the metrics"},
            401: {"model": ErrorReply, "description": "missing or unknown API key"},
        },
    )
    def prometheus(credentials: Credentials) -> Any:
        if not answer.authorized(credentials):
            return answer(credentials, None, "metrics")
        body = generate_latest(REGISTRY) + generate_latest(metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", summary="Liveness: the process serves requests")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Readiness: broker reachable, workers assigned, none stalled",
        responses={503: {"description": "not ready (`/v1/status` says why)"}},
    )
    def ready() -> JSONResponse:
        if verdict(probe, stats()).ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not_ready"}, status_code=503)

    @app.get(
        "/v1/status",
        summary="Readiness with its reasons, and every worker's counters",
        responses={401: {"model": ErrorReply, "description": "missing or unknown API key"}},
    )
    def status(credentials: Credentials) -> Any:
        if not answer.authorized(credentials):
            return answer(credentials, None, "status")
        workers = stats()
        found = verdict(probe, workers)
        return {
            "ready": found.ready,
            "reasons": found.reasons,
            "degraded": found.degraded,
            "kafka": settings.bootstrap,
            "topic_prefix": settings.topic_prefix,
            "sources": [s.name for s in config.sources],
            "workers": workers,
            "profiles_in_view": len(profiles),
            "producer_replaced": producer.replaced,
        }

    return app


def _unavailable(settings: Settings) -> str:
    if not settings.analytics:
        return "analytics is off in this process (setting WAYLINE_ANALYTICS)"
    return ("the embedded ClickHouse engine belongs to the process that runs the analytics "
            "worker: ask its API, or set WAYLINE_CLICKHOUSE_URL to a server")  # fmt: skip


class ResponseCounter:
    """Counts every answer by route and status (``wayline_http_responses_total``): a plain
    ASGI middleware, so a request costs two function calls, not a task and a stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_RESPONSES.labels(path, str(status[0])).inc()


class CollectorCors:
    """CORS for the collector paths browsers post events to, and for nothing else: the profile,
    segment and status endpoints answer no cross-origin request (their API keys are secrets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "Content-Encoding"],
            max_age=86400,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in COLLECTOR_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class ApiServer:
    """uvicorn in a background thread; ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        settings: Settings,
        config: WaylineConfig,
        stats: StatsSource,
        warehouse: Warehouse | None = None,
    ) -> None:
        self.settings = settings
        app = create_app(settings, config, stats, warehouse)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        host, port = self.settings.api_host, self.settings.api_port
        if port_in_use(host, port):
            raise ConfigError(f"setting WAYLINE_API_PORT: port {port} on {host} is already in use")
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"setting WAYLINE_API_PORT: the API did not start on {port}")
            time.sleep(0.02)
        log.info("HTTP API on http://%s:%d (docs at /docs)", host, port)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
