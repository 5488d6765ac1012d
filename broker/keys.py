"""Every Redis key of one queue, built from one configurable prefix.

All keys carry the prefix as a hash tag (`{prefix}`), so the scripts, which
touch several keys at once, also run on Redis Cluster. Every key a script
touches is passed in its KEYS (broker/queue.py); only the keys of jobs and
clients that a script finds by itself (the head of `waiting`, a sweep of
`leases`) are built in Lua, from the prefix it is given (`{p}:job:` .. token).

    {p}:job:<token>   hash   one job (see broker/job.py for its fields)
    {p}:seq           string insertion counter: ties in creation time keep FIFO order
    {p}:waiting       zset   new, not reserved, queued first come first served: score
                             created_ms, member <seq:016d><token> (FIFO by time, then insertion)
    {p}:fair          zset   new, not reserved, queued fairly (SDQ_SCHEDULING=fair): score
                             the job's virtual start tag (broker/fair.py), same member
    {p}:active        zset   state new or pending, score created_ms, same member: QueueLength
    {p}:reserved      zset   jobs handed out by /getNextJob, score = reservation end
    {p}:leases        zset   pending jobs, member token, score = lease end (ms)
    {p}:running       zset   pending jobs, member token, score = started_ms: what a fairly
                             queued job's place counts once it is served
    {p}:open          hash   token -> "<member> <number> <W>x<H> <client or ->" for each new
                             or pending job: what lets a script drop the index entries of a
                             job whose hash is gone (and fix the sums and the client's slot)
    {p}:vtime         string the fair queue's virtual time: the start tag last served
    {p}:vfinish       zset   client key -> virtual finish tag of its last fair job; tags at
                             or below vtime are pruned (they no longer change a start)
    {p}:clients       zset   client key -> images of its open jobs (SDQ_MAX_IMAGES_PER_CLIENT,
                             top talkers)
    {p}:control       hash   operator switches: `paused` (ms) and `paused_by` while paused
    {p}:audit         list   the last 1,000 operator actions, newest first (sdq admin)
    {p}:idem:<digest> hash   an Idempotency-Key's first job (token, request), for 24 hours
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
    {p}:epoch         string "<started ms>:<id>", written once (SET NX) when the queue first
                             meets its Redis: gone means Redis came back empty (broker/server.py)
    {p}:client:<addr> zset   one client's open jobs (score 0) and slots held while its
                             captcha is checked (score = hold end, ms): the open-jobs cap
    {p}:durations     hash   claim-to-complete histogram per resolution (see _lib.lua)
    {p}:streams:<addr> zset  one client's open event streams (member stream id, score =
                             hold end, ms): the per-client stream cap of every replica
    {p}:images        hash   images of unfinished jobs, running sums kept by every script
                             that moves a job in or out of a state: new (reserved ones
                             included), pending, and per resolution new:<W>x<H>,
                             pending:<W>x<H>; O(1) figures and ETAs. `resolutions`: when the
                             sums were last counted job by job (queue_figures.lua)
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
                             dropped by finish(), so the zset stays bounded; a
                             retried job's entry goes (retry_job.lua)
    {p}:worker_stats  hash   worker id -> its last report's figures, "busy=0.98 ips=1.9
                             768x576=0.52" (broker/renders.py WorkerFigures), for /metrics
                             and sdq admin status; pruned with {p}:workers
"""

from dataclasses import dataclass

# The KEYS of each script, in the order of its header, by QueueKeys name. `job`,
# `idem`, `preview` and `client` are the one job's (request's, its preview's, client's)
# key a call is about: a script about one job gets that job's key itself, and its
# preview's as its last key where it touches that. `job_prefix`, `preview_prefix` and
# `client_prefix` are prefixes a script extends only with tokens (addresses) it finds
# by itself. `job` is always first, `preview` and `client` always last (add_job passes
# `client` only for a counted client) and `idem` just before it (add_job's placeholder
# `{p}:idem:` when the request has no key), so broker/queue.py builds the rest once
# (`fixed_keys`). tests/broker/test_lua_headers.py checks this table against the headers.
_INDEXES = "waiting fair active reserved leases running stats images open clients client_prefix"
_SWEEP = f"job_prefix {_INDEXES} wakeup image_gc"  # image_gc: finish() schedules deletion
_LAYOUTS = {
    "add_job": "job waiting fair active stats wakeup seq images open clients vtime vfinish "
    "job_prefix idem client",
    "admin_status": "control clients client_prefix workers worker_stats leases job_prefix audit",
    "cancel_client": f"job_prefix {_INDEXES} vfinish audit image_gc preview_prefix client",
    "cancel_job": f"job {_INDEXES} vfinish audit image_gc preview",
    "claim_job": f"{_SWEEP} vtime vfinish control",
    "get_preview": "job preview",
    "get_status": "job active fair waiting reserved leases running",
    "hold_client_slot": "clients job_prefix client",
    "import_job": "job waiting active leases running stats wakeup seq images open",
    "job_details": "job active fair waiting reserved leases running workers render_ms images "
    "control",
    "next_job": f"{_SWEEP} vtime vfinish control",
    "queue_figures": f"job_prefix {_INDEXES} workers render_ms durations throughput control "
    "worker_stats",
    "record_renders": "render_ms workers worker_stats",
    "release_client_slot": "client",
    "hold_stream": "streams",
    "release_stream": "streams",
    "release_job": f"job {_SWEEP} preview",
    "renew_lease": "job leases preview",
    "requeue_expired": _SWEEP,
    "retry_job": "job waiting fair active stats wakeup images open audit image_gc",
    "set_paused": "control wakeup waiting fair audit",
    "set_state": f"job {_INDEXES} durations vtime vfinish image_gc preview",
    "take_due_images": "image_gc",
    "wait_estimate": "waiting fair reserved leases images vtime vfinish workers render_ms",
}
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {name: tuple(k.split()) for name, k in _LAYOUTS.items()}
# Keys named by the call's own token, Idempotency-Key or address.
PER_CALL = ("job", "idem", "preview", "client", "streams")


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
    def fair(self) -> str:
        return f"{self.tag}:fair"

    @property
    def running(self) -> str:
        return f"{self.tag}:running"

    @property
    def open(self) -> str:
        return f"{self.tag}:open"

    @property
    def vtime(self) -> str:
        return f"{self.tag}:vtime"

    @property
    def vfinish(self) -> str:
        return f"{self.tag}:vfinish"

    @property
    def clients(self) -> str:
        return f"{self.tag}:clients"

    @property
    def control(self) -> str:
        return f"{self.tag}:control"

    @property
    def audit(self) -> str:
        return f"{self.tag}:audit"

    @property
    def idem(self) -> str:
        """The prefix of Idempotency-Key records; add_job's placeholder for no key."""
        return f"{self.tag}:idem:"

    def idem_for(self, digest: str) -> str:
        return self.idem + digest

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
    def epoch(self) -> str:
        return f"{self.tag}:epoch"

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

    def streams(self, address: str) -> str:
        return f"{self.tag}:streams:{address}"

    @property
    def durations(self) -> str:
        return f"{self.tag}:durations"

    @property
    def images(self) -> str:
        return f"{self.tag}:images"

    @property
    def preview_prefix(self) -> str:
        return f"{self.tag}:preview:"

    def preview(self, token: str) -> str:
        return self.preview_prefix + token

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
    """The script's KEYS apart from the per-call `job`, `preview`, `client` and `streams`
    keys, in order (`idem` as its placeholder, the bare prefix: a call with a key
    replaces it)."""
    per_call = ("job", "preview", "client", "streams")
    return [getattr(keys, name) for name in SCRIPT_KEYS[script] if name not in per_call]
