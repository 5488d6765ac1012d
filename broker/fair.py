"""Fair scheduling (SDQ_SCHEDULING=fair): jobs served in weighted-fair order across
client keys instead of first come first served.

The algorithm is start-time fair queuing (Goyal, Vin and Cheng, 1996), kept by the
scripts in Redis, one atomic step per transition as everywhere else:

- Each job costs its images x width x height (pixel-images): a job of four 768x576
  images weighs as much as four jobs of one.
- Added, a job of client c gets the start tag S = max(V, F_c) and c's finish tag
  becomes F_c = S + cost, where V is the queue's virtual time and F_c the finish tag
  of c's previous job ({p}:vfinish). The job waits in `{p}:fair` scored by S (ties in
  insertion order): O(log n) to add, to claim and to rank.
- Claimed (or handed out by /getNextJob), V moves to the job's start tag; finish
  tags at or below V are forgotten, since max(V, F_c) = V for them: a client that
  has no job waiting starts afresh at V.
- A requeued job (lease expired, released, reservation ended) keeps its tag, so its
  place; a cancelled job that was its client's last gives the client's finish tag
  back to its start. `sdq admin retry` puts a failed job back at its old tag.

Why start tags and not finish tags: with every job from a different client, S = V at
each add, which only grows, so the order is exactly first come first served (and
QueueLength is the FIFO number, as ../shared/CONTRACT.md's last section says); with
finish tags a cheap job would pass an expensive one queued before it.

What it guarantees (tests/broker/test_fair_properties.py checks it on every engine):
while a job J of client c waits, any other client d is served at most the work of
c's own jobs ahead of J (the one c has in service included) plus one job of d. So a
visitor with one job waits for at most one job of each other visitor, however many
the others queued; a heavy client's place can grow when lighter clients arrive.

Outside the fair set: jobs of the legacy importer (`sdq import-sqlite`) are queued
first come first served in `{p}:waiting`, as the original queued them; a claim
takes, of the heads of the two sets, the job created earlier, so those (the oldest)
drain first, and after a change of SDQ_SCHEDULING the jobs queued under the other
mode drain before the new ones. Jobs without a client key share the key '-'.
"""

from __future__ import annotations

from enum import StrEnum


class Scheduling(StrEnum):
    FIFO = "fifo"  # first come first served, by creation time (the default, as the original)
    FAIR = "fair"  # start-time fair queuing across client keys (this module's docstring)


ANONYMOUS = "-"  # the client key of jobs queued fairly without one


def cost(number: int, width: int, height: int) -> int:
    """What a job weighs in the fair queue: its pixel-images."""
    return number * width * height
