"""Builds a worker's parts from its settings: the one place a setting picks a class.

Heavy imports (boto3, diffusers, torch) happen only for the parts chosen.
"""

from __future__ import annotations

from importlib import import_module

from gpu_worker.renderers.base import Renderer
from gpu_worker.settings import WorkerSettings
from gpu_worker.sources.base import JobSource
from gpu_worker.storage.base import ImageStore
from gpu_worker.worker import Worker


def build_source(settings: WorkerSettings, worker_id: str) -> JobSource:
    if settings.transport == "http":
        from gpu_worker.sources.http import HttpSource

        return HttpSource(settings, worker_id)
    from gpu_worker.sources.redis import RedisSource

    return RedisSource(settings, worker_id)


def build_renderer(settings: WorkerSettings) -> Renderer:
    if settings.renderer == "diffusers":
        # Imported by name: the module (and torch) exists only with the diffusers extra.
        diffusers = import_module("gpu_worker.renderers.diffusers")
        cls = diffusers.DiffusersRenderer
        renderer: Renderer = getattr(cls, "from_settings", cls)(settings)
        return renderer
    from gpu_worker.renderers.test_pattern import TestPatternRenderer

    return TestPatternRenderer(settings.test_pattern_ms_per_image, settings.steps)


def build_store(settings: WorkerSettings) -> ImageStore:
    if settings.storage == "s3":
        from gpu_worker.storage.s3 import S3Store

        assert settings.s3_bucket is not None  # the settings validator insists on one
        return S3Store(
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_region,
            settings.s3_endpoint_url,
        )
    from gpu_worker.storage.local import LocalStore

    return LocalStore(settings.images_dir)


def build_worker(settings: WorkerSettings) -> Worker:
    """The renderer first: a model that fails to load should fail before any claim."""
    renderer = build_renderer(settings)
    store = build_store(settings)
    return Worker(build_source(settings, settings.identity()), renderer, store, settings)
