"""``arq arq_worker.WorkerSettings`` with arq's waits shortened, for the kill test.

``python _arq_test_worker.py --job-timeout S --grace S --poll-delay S`` (with
docs/examples on ``PYTHONPATH``), or ``run(S, S, S)`` in a process that
tests/_forkserver.py forked, runs the page's worker as arq's command line
would: arq's default logging, a :class:`arq.worker.Worker` built from
``arq_worker.WorkerSettings``, then ``Worker.run()``, which stops on SIGTERM or
SIGINT. Three numbers differ:

- ``job_timeout``: the page makes it twice the segment, a margin for a slow
  worker; the test's segments are so short that it is given more than that.
- A job it starts is marked "in progress" for ``job_timeout + grace`` seconds,
  not arq's ``job_timeout + 10``. That key is what keeps a SIGKILLed worker's
  jobs from the other workers until it expires (docs/distributed.md, "arq's
  settings, and a worker that dies"); arq hard-codes the 10 s
  (``Worker.__init__``: ``self.in_progress_timeout_s = (max_timeout or 0) + 10``)
  and has no setting for it. A job that lives past ``job_timeout`` is failed by
  arq, and fails the test, so the grace only has to outlast arq's bookkeeping.
- It polls the queue every ``poll_delay`` seconds instead of the page's 0.25:
  each segment's hand-over waits for a poll.

Everything else, the key and its expiry in Redis, the queue, arq starting a
job again, is arq's own.
"""

from __future__ import annotations

import argparse
import logging.config
import sys

import arq_worker
from arq.logs import default_log_config
from arq.worker import create_worker


def run(job_timeout: float, grace: float, poll_delay: float) -> None:
    """Run the page's worker with those three numbers, until SIGTERM or SIGINT."""
    logging.config.dictConfig(default_log_config(verbose=False))
    worker = create_worker(
        arq_worker.WorkerSettings, job_timeout=job_timeout, poll_delay=poll_delay
    )
    # Fail loudly, rather than test something else, should arq change how it sets the key.
    arqs = worker.job_timeout_s + 10
    if worker.in_progress_timeout_s != arqs:
        sys.exit(
            f"arq's in-progress expiry is {worker.in_progress_timeout_s!r} s, not "
            f"job_timeout + 10 s ({arqs!r}): tests/_arq_test_worker.py needs a look"
        )
    worker.in_progress_timeout_s = worker.job_timeout_s + grace
    worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--job-timeout", "--grace", "--poll-delay"):
        parser.add_argument(name, type=float, required=True, metavar="SECONDS")
    args = parser.parse_args()
    run(args.job_timeout, args.grace, args.poll_delay)


if __name__ == "__main__":
    main()
