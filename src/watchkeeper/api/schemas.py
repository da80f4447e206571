"""Response bodies of the HTTP API, as pydantic models so ``/openapi.json`` describes them.

The report shape is the README's "The report" (the same dict ``Report.to_dict`` gives
``run --once --json``); the models only describe it, they add nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Counts(BaseModel):
    """Containers scanned and per state."""

    scanned: int
    fresh: int
    updated: int
    failed: int
    rolled_back: int
    skipped: int
    available: int
    engine_errors: int = Field(0, description="engines whose containers could not be handled")


class ContainerReport(BaseModel):
    """What happened to one container in the run."""

    name: str
    image: str
    state: str = Field(description="fresh, updated, failed, rolled_back, skipped or available")
    old_image_id: str | None = None
    new_image_id: str | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    duration_s: float
    error: str | None = None
    reason: str | None = None
    host: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    old_tag: str | None = Field(None, description="a tag policy's move: the tag it was on")
    new_tag: str | None = Field(None, description="a tag policy's move: the tag it moves to")
    kind: str = Field("container", description="container, or service (a Swarm service)")
    replicas: int | str | None = Field(
        None, description="a service's desired replicas, or global; null for a container"
    )


class EngineReport(BaseModel):
    """One engine of the run: ``error`` says why its containers could not be handled."""

    name: str
    url: str | None = None
    state: str = Field(description="ok or error")
    error: str | None = None
    version: str | None = None
    api_version: str | None = None


class RunReport(BaseModel):
    """The report of one run (README, "The report")."""

    host: str
    started_at: str
    finished_at: str | None
    duration_s: float
    counts: Counts
    containers: list[ContainerReport]
    engines: list[EngineReport] = Field(default_factory=list)


class Status(BaseModel):
    """What the daemon is doing and did last."""

    version: str
    last_report: RunReport | None = Field(description="the report of the last finished run")
    next_run: str | None = Field(description="when the next scheduled run starts (ISO 8601, UTC)")
    running: str | None = Field(description="the trigger of the run in progress, if any")
    queued: int = Field(description="runs waiting to start")
    periodic_polls: bool = Field(description="whether scheduled runs happen besides the API")


class Health(BaseModel):
    """Liveness of the scheduler and the run worker."""

    status: str = Field(description="ok or unavailable")


class ErrorBody(BaseModel):
    """An error answer."""

    detail: str
