"""Every Redis key of one queue, built from one configurable prefix.

All keys carry the prefix as a hash tag (`{prefix}`), so the scripts, which
touch several keys at once, also run on Redis Cluster. Every key a script
touches is passed in its KEYS (broker/queue.py); only the keys of jobs and
clients that a script finds by itself (the head of `waiting`, a sweep of
`leases`) are built in Lua, from the prefix it is given (`{p}:job:` .. token).

    {p}:job:<token>   hash   one job (see broker/job.py for its fields)
    {p}:seq           string insertion counter: ties in creation time keep FIFO order
    {p}:waiting       zset   state new and not reserved, score created_ms,
                             member <seq:016d><token> (FIFO by time, then insertion)
    {p}:active        zset   state new or pending, same score/member: QueueLength
    {p}:reserved      zset   jobs handed out by /getNextJob, score = reservation end
    {p}:leases        zset   pending jobs, member token, score = lease end (ms)
    {p}:stats         hash   monotonic counters (added, completed, failed, requeued…)
    {p}:wakeup        list   pushed on every new job; idle workers BLPOP on it
    {p}:workers       zset   workers, member = worker id, score = last seen (ms, Redis clock);
                             refreshed every SDQ_REPORT_INTERVAL_S (default 5 s) and at
                             least every idle poll, removed on graceful exit, pruned
                             after a day: count a worker live if seen in the last 30 s
    {p}:render_ms     hash   render time per resolution, for ETAs, fields per "<W>x<H>":
                             <W>x<H>:images   images rendered (sum, integer)
                             <W>x<H>:ms       their render time in ms (sum, integer)
                             <W>x<H>:ewma_ms  per-image ms weighted to recent reports
                             (written by broker/lua/record_renders.lua)
    {p}:sweep_lock    string lets one replica at a time run the periodic sweep
    {p}:client:<addr> zset   one client's open jobs (score 0) and slots held while its
                             captcha is checked (score = hold end, ms): the open-jobs cap
    {p}:durations     hash   claim-to-complete histogram per resolution (see _lib.lua)
    {p}:images        hash   images of unfinished jobs, running sums kept by every script
                             that moves a job in or out of a state: new (reserved ones
                             included), pending; O(1) figures for autoscaling. `counted`:
                             when the sums were first counted job by job (queue_figures.lua)
    {p}:limits:...    string/list  the /addJob rate limiter's windows (the `limits` library)
    {p}:throughput    zset   samples "<ms>:<complete counter>" (score ms) for jobs/minute
    {p}:preview:<token> string  the live preview of a pending job's current image,
                             "<fence>:<base64 JPEG>" (renew_lease.lua); expires with the
                             lease, deleted when the job finishes, served only to the
                             claim that wrote it (get_preview.lua)
    {p}:image_gc      zset   tokens whose images are due for deletion, score = when (ms):
                             finish() adds a complete job at its retention end, a
                             cancelled or failed one at once; the owner of a local image
                             folder takes due tokens (take_due_images.lua) and deletes
                             their folders. Entries due over an hour ago that nobody
                             took (S3 storage: a bucket lifecycle rule does it) are
                             dropped by finish(), so the zset stays bounded
    {p}:worker_stats  hash   worker id -> its last report's figures, "busy=0.98 ips=1.9
                             768x576=0.52" (broker/renders.py WorkerFigures), for /metrics;
                             pruned with {p}:workers
"""

from dataclasses import dataclass

# The KEYS of each script, in the order of its header, by QueueKeys name. `job`,
# `preview` and `client` are the one job's (its preview's, the client's) key a call is
# about: a script about one job gets that job's key itself, and its preview's as its
# last key where it touches that. `job_prefix` and `client_prefix` are prefixes a script
# extends only with tokens (addresses) it finds by itself. `job` is always first,
# `preview` and `client` always last (add_job passes it only for a counted client), so
# broker/queue.py builds the rest once (`fixed_keys`). tests/broker/test_lua_headers.py
# checks this table against the headers.
_SWEEP = "job_prefix waiting active reserved leases stats wakeup images client_prefix image_gc"
_LAYOUTS = {
    "add_job": "job waiting active stats wakeup seq images client",
    "cancel_job": "job waiting active reserved leases stats images client_prefix image_gc preview",
    "claim_job": _SWEEP,
    "get_preview": "job preview",
    "get_status": "job active",
    "hold_client_slot": "client",
    "import_job": "job waiting active leases stats wakeup seq images",
    "job_details": "job active leases workers render_ms job_prefix",
    "next_job": _SWEEP,
    "queue_figures": "waiting reserved leases active stats images workers render_ms "
    "durations throughput job_prefix worker_stats",
    "record_renders": "render_ms workers worker_stats",
    "release_client_slot": "client",
    "release_job": "job waiting active reserved leases stats wakeup images client_prefix "
    "image_gc preview",
    "renew_lease": "job leases preview",
    "requeue_expired": _SWEEP,
    "set_state": "job waiting active reserved leases stats durations images client_prefix "
    "image_gc preview",
    "take_due_images": "image_gc",
}
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {name: tuple(k.split()) for name, k in _LAYOUTS.items()}
PER_CALL = ("job", "preview", "client")  # named by the call's own token or address


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def job_prefix(self) -> str:
        return f"{self.tag}:job:"

    def job(self, token: str) -> str:
        return self.job_prefix + token

    @property
    def seq(self) -> str:
        return f"{self.tag}:seq"

    @property
    def waiting(self) -> str:
        return f"{self.tag}:waiting"

    @property
    def active(self) -> str:
        return f"{self.tag}:active"

    @property
    def reserved(self) -> str:
        return f"{self.tag}:reserved"

    @property
    def leases(self) -> str:
        return f"{self.tag}:leases"

    @property
    def stats(self) -> str:
        return f"{self.tag}:stats"

    @property
    def wakeup(self) -> str:
        return f"{self.tag}:wakeup"

    @property
    def workers(self) -> str:
        return f"{self.tag}:workers"

    @property
    def render_ms(self) -> str:
        return f"{self.tag}:render_ms"

    @property
    def sweep_lock(self) -> str:
        return f"{self.tag}:sweep_lock"

    @property
    def throughput(self) -> str:
        return f"{self.tag}:throughput"

    @property
    def client_prefix(self) -> str:
        return f"{self.tag}:client:"

    def client(self, address: str) -> str:
        return self.client_prefix + address

    @property
    def durations(self) -> str:
        return f"{self.tag}:durations"

    @property
    def images(self) -> str:
        return f"{self.tag}:images"

    def preview(self, token: str) -> str:
        return f"{self.tag}:preview:{token}"

    @property
    def image_gc(self) -> str:
        return f"{self.tag}:image_gc"

    @property
    def worker_stats(self) -> str:
        return f"{self.tag}:worker_stats"

    @property
    def limits_prefix(self) -> str:
        return f"{self.tag}:limits"


def fixed_keys(keys: QueueKeys, script: str) -> list[str]:
    """The script's KEYS apart from the per-call `job`, `preview` and `client` keys, in order."""
    return [getattr(keys, name) for name in SCRIPT_KEYS[script] if name not in PER_CALL]
