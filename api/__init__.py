"""The HTTP layer: the legacy contract (byte for byte), the v2 API and the demo page.
It parses, makes one broker call and renders; state lives in broker/.

    app             create_app(settings): the factory (`uvicorn --factory api.app:create_app`)
    settings        ApiSettings: every SDQ_* the API reads
    services        what a handler needs (queue, captcha, secrets, ...), built by the lifespan
    submit          queueing a job: the one flow behind /addJob and POST /v2/jobs
    idempotency     Idempotency-Key: the same submit twice makes one job
    eta             how long a job waits and renders, from render times and the work ahead
    errors          every failure, and each surface's table of statuses and messages
    legacy          the four legacy paths, their byte shapes, rules and the backend extension
    v2              /v2/jobs, events, cancel, queue, config
    demo            the demo page at /
    abuse           per-client limits: adds, open jobs, v2 reads, streams, auth failures
    rate_limits     request rates per client, counted in Redis (the `limits` library)
    captcha         hCaptcha verification (a bounded aiohttp pool)
    auth            backend secrets (constant time), Bearer tokens
    secret_policy   which secrets the service refuses to start with
    client_address  the client's address behind trusted proxies
    access_log      the redacted access log
    asgi_status     notes a response's status for logs and metrics
    metrics         /metrics (Prometheus): the queue and this process's HTTP
    health          /healthz and /readyz
    images          /images/<token>/<index:05d>.png from a local folder
    sweeper         the periodic sweep of expired leases, and a look at the server
    server_watch    a Redis that came back empty, or can lose jobs, said loudly
    throttled_log   log lines a flood cannot multiply
"""

__all__ = [
    "abuse",
    "access_log",
    "app",
    "asgi_status",
    "auth",
    "captcha",
    "client_address",
    "demo",
    "errors",
    "eta",
    "health",
    "idempotency",
    "images",
    "legacy",
    "metrics",
    "rate_limits",
    "secret_policy",
    "server_watch",
    "services",
    "settings",
    "submit",
    "sweeper",
    "throttled_log",
    "v2",
]
