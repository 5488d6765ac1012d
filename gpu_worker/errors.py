"""What can go wrong in a worker, and what the loop does about each.

WorkerError
├── SourceUnavailable   Redis or the API cannot be reached: pause (capped backoff), retry
├── SourceRefused       the API refuses this worker (wrong secret): stop, exit 2
├── LeaseLost           the claim expired or was superseded: stop the job, never complete
│   └── JobCancelled    its owner cancelled the job: stop at the next step, publish nothing
├── RenderFailed        the renderer raised (e.g. CUDA out of memory): release the job
├── StoreFailed         an image could not be stored after retries: release the job
├── WorkerHung          a denoising step outlasted SDQ_STEP_TIMEOUT_S: release, exit 3
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


class JobCancelled(LeaseLost):
    """The job was cancelled (v2 DELETE) while this worker held it."""


class RenderFailed(WorkerError):
    """The renderer raised; another attempt (maybe on another worker) may succeed."""


class StoreFailed(WorkerError):
    """Storage kept failing for one image."""


class WorkerHung(WorkerError):
    """The renderer made no step for SDQ_STEP_TIMEOUT_S (a hung GPU or driver): the
    render thread cannot be interrupted, so the process must end for a fresh start."""


class ModelLoadError(WorkerError):
    """The model cannot be loaded as configured; the worker stops before claiming a job."""
