"""``arq arq_worker.WorkerSettings`` with two of arq's waits shortened, for the kill test.

``python _arq_test_worker.py GRACE POLL_DELAY`` (with docs/examples on ``PYTHONPATH``)
runs the page's worker as arq's command line would: arq's default logging, a
:class:`arq.worker.Worker` built from ``arq_worker.WorkerSettings``, then
``Worker.run()``, which stops on SIGTERM or SIGINT. Two numbers differ:

- A job it starts is marked "in progress" for ``job_timeout + GRACE`` seconds,
  not arq's ``job_timeout + 10``. That key is what keeps a SIGKILLed worker's
  jobs from the other workers until it expires (docs/distributed.md, "arq's
  settings, and a worker that dies"); arq hard-codes the 10 s
  (``Worker.__init__``: ``self.in_progress_timeout_s = (max_timeout or 0) + 10``)
  and has no setting for it. A job that lives past ``job_timeout`` is failed by
  arq, and fails the test, so the grace only has to outlast arq's bookkeeping.
- It polls the queue every ``POLL_DELAY`` seconds instead of the page's
  ``poll_delay`` (0.25 s): each segment's hand-over waits for a poll.

Everything else, the key and its expiry in Redis, the queue, arq re-queueing a
job, is arq's own.
"""

from __future__ import annotations

import logging.config
import sys

import arq_worker
from arq.logs import default_log_config
from arq.worker import create_worker


def main(grace: float, poll_delay: float) -> None:
    logging.config.dictConfig(default_log_config(verbose=False))
    worker = create_worker(arq_worker.WorkerSettings, poll_delay=poll_delay)
    # Fail loudly, rather than test something else, should arq change how it sets the key.
    arqs = worker.job_timeout_s + 10
    if worker.in_progress_timeout_s != arqs:
        sys.exit(
            f"arq's in-progress expiry is {worker.in_progress_timeout_s!r} s, not "
            f"job_timeout + 10 s ({arqs!r}): tests/_arq_test_worker.py needs a look"
        )
    worker.in_progress_timeout_s = worker.job_timeout_s + grace
    worker.run()


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]))
