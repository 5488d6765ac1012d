"""What can go wrong in a worker, and what the loop does about each.

WorkerError
├── SourceUnavailable   Redis or the API cannot be reached: pause (capped backoff), retry
├── SourceRefused       the API refuses this worker (wrong secret): stop, exit 2
├── LeaseLost           the claim expired or was superseded: stop the job, never complete
├── RenderFailed        the renderer raised (e.g. CUDA out of memory): release the job
├── StoreFailed         an image could not be stored after retries: release the job
└── ModelLoadError      the model cannot be loaded as configured: stop before claiming, exit 2
"""


class WorkerError(Exception):
    """Base of every worker error."""


class SourceUnavailable(WorkerError):
    """Redis or the API did not answer (or answered 5xx); worth retrying later."""


class SourceRefused(WorkerError):
    """The job source will never accept this worker as configured."""


class LeaseLost(WorkerError):
    """Another claim owns the job now (fencing), or the job is gone."""


class RenderFailed(WorkerError):
    """The renderer raised; another attempt (maybe on another worker) may succeed."""


class StoreFailed(WorkerError):
    """Storage kept failing for one image."""


class ModelLoadError(WorkerError):
    """The model cannot be loaded as configured; the worker stops before claiming a job."""
