"""Typed ``web.AppKey`` constants of the exporter app, in one place."""

from __future__ import annotations

from aiohttp import web

from exporters.config import ExporterConfig
from exporters.health import HealthMetrics
from exporters.openlineage.recorder import LineageRecorder
from exporters.registry import PipelineRegistry
from exporters.render import Exposition

__all__ = ["CONFIG", "EXPOSITION", "HEALTH", "LINEAGE", "REGISTRY"]

CONFIG: web.AppKey[ExporterConfig] = web.AppKey("exporter_config", ExporterConfig)
REGISTRY: web.AppKey[PipelineRegistry] = web.AppKey("registry", PipelineRegistry)
EXPOSITION: web.AppKey[Exposition] = web.AppKey("exposition", Exposition)
HEALTH: web.AppKey[HealthMetrics] = web.AppKey("health", HealthMetrics)
LINEAGE: web.AppKey[LineageRecorder] = web.AppKey("lineage", LineageRecorder)
