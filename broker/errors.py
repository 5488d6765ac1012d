"""Domain errors of the broker.

    BrokerError
    ├── StorageUnavailable   Redis cannot be reached or answered with an error
    ├── JobNotFound          no job with that token (never existed or expired)
    ├── InvalidTransition    the job's state does not allow the requested change
    │   └── JobCancelled     a claim's job was cancelled (v2 DELETE) while it rendered
    ├── StaleClaim           a fenced call from a worker whose claim was superseded
    ├── TokenExists          a new job's token is already taken (import, collision)
    ├── TooManyOpenJobs      the client already holds its cap of unfinished jobs
    ├── TooManyStreams       the client already holds its cap of open event streams
    ├── TooManyOpenImages    the job would pass the client's cap of images in open jobs
    ├── IdempotencyConflict  an Idempotency-Key already names a different request
    └── InvalidJob           a job to store is malformed (an imported job's state is
                             none of new, pending, complete); nothing was written

Scripts return these as error codes; `broker.lua.raise_for_code` is the one
place that turns a code into an exception.
"""


class BrokerError(Exception):
    """Base of every broker error."""


class StorageUnavailable(BrokerError):
    """Redis is unreachable or failed; the caller answers 500 and retries later."""


class JobNotFound(BrokerError):
    """No job with that token."""


class InvalidTransition(BrokerError):
    """The job's current state does not allow the requested change."""


class JobCancelled(InvalidTransition):
    """The job of this claim was cancelled: its worker stops and publishes nothing.
    Told apart from a superseded claim (StaleClaim), whose job goes on elsewhere."""


class StaleClaim(BrokerError):
    """The caller's attempt id is not the job's current claim (fencing)."""


class TokenExists(BrokerError):
    """A job with this token already exists."""


class TooManyOpenJobs(BrokerError):
    """The client is at its cap of open (new or pending) jobs; nothing was added."""


class TooManyOpenImages(BrokerError):
    """The client's open jobs would hold more images than its cap; nothing was added."""


class IdempotencyConflict(BrokerError):
    """The Idempotency-Key was first used with another request (body); nothing added."""


class InvalidJob(BrokerError):
    """A job handed to the broker is malformed (e.g. an import in an unknown state)."""


class TooManyStreams(BrokerError):
    """The client holds its cap of open event streams (across every replica)."""
