"""GPU workers: take a job (over HTTP or straight from Redis), render, store, complete.

worker     the loop: claim -> render -> store -> complete, and what each failure means
job        one claimed job: render its batches, stage, publish, complete
lease      a claim's lease as the worker knows it: checked before every write
build      builds a worker's parts from its settings
settings   WorkerSettings: every SDQ_* a worker reads
sources    where jobs come from (the JobSource protocol; http, redis)
renderers  how images are made (the Renderer protocol; diffusers, test-pattern)
storage    where images go (the ImageStore protocol; local, s3)
heartbeat  keeps a claim's lease alive, reports progress and live previews
encode     PNGs (on the encode pool) and JPEG previews
telemetry  render times and the worker's own figures, buffered until the next report
seeds      each image's seed, a function of (token, index)
backoff    capped, jittered pauses while Redis or the API is down
errors     what can go wrong, and what the loop does about each
"""

__all__ = [
    "backoff",
    "build",
    "encode",
    "errors",
    "heartbeat",
    "job",
    "lease",
    "renderers",
    "seeds",
    "settings",
    "sources",
    "storage",
    "telemetry",
    "worker",
]
