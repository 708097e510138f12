"""A job-queue task that sends a batch exactly once, however often it is retried.

With arq (``pip install arq``), run ``arq examples.arq_worker.WorkerSettings`` and
enqueue ``send_batch`` with a job name and the items.  arq retries a task whose worker
died (kill -9, an evicted pod); with ``journal=`` the retry sends nothing twice: what
the journal has as delivered is not sent again, a send the crash left open is read back
first.  Two workers running the same job at once: the second gets ``JobBusyError``.

Without arq, ``python examples/arq_worker.py JOB_NAME ITEMS.jsonl`` runs the task once,
as a worker would (rerun it after killing it: nothing is sent twice).  The token and
base URL come from ``OT_API_TOKEN``/``OT_API_BASE_URL`` as for every client;
``OT_JOURNAL`` is where journals go: a directory, or ``redis://host:6379/0`` to share
them between machines (the job name is added as ``?job=NAME``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from opentrain_async import JobBusyError, OpenTrainClient


def journal_for(job: str) -> str:
    """One journal per job: a file under ``$OT_JOURNAL`` (a directory), or a Redis job."""
    where = os.environ.get("OT_JOURNAL", "journals")
    if where.startswith(("redis://", "rediss://")):
        return f"{where}{'&' if '?' in where else '?'}job={job}"
    Path(where).mkdir(parents=True, exist_ok=True)
    return str(Path(where) / f"{job}.journal")


async def send_batch(ctx: dict[str, Any], job: str, items: list[dict[str, str]]) -> dict[str, int]:
    """The task: send ``items`` (``conversationId``/``content``, optional ``key``) once."""
    async with OpenTrainClient() as client:
        report = await client.send_all(items, journal=journal_for(job))
    return {"total": report.total, "sent": report.sent, "failed": report.failed}


class WorkerSettings:
    """``arq examples.arq_worker.WorkerSettings``: arq reads these attributes."""

    functions = [send_batch]  # noqa: RUF012 - arq's documented shape
    max_tries = 5


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python examples/arq_worker.py JOB_NAME ITEMS.jsonl", file=sys.stderr)
        return 2
    job, path = argv
    items = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    try:
        totals = asyncio.run(send_batch({}, job, items))
    except JobBusyError as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(totals))
    return 0 if totals["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
