"""Settings of the worker and beat processes that tests/integration/test_worker_kill.py starts.

The project's settings, plus: every task on the test's own queue (the reapers, and the chains
they re-queue, included) so no other worker on the broker takes them; and, for the kill to land
while the model is fitting, each scikit-learn fit made to last ``CONCORD_TEST_SLOW_FIT_SECONDS``
longer (patched in each pool process; the training itself is real).
"""

import os
import time

from config.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["CONCORD_TEST_QUEUE"]

_SLOW_FIT_SECONDS = float(os.environ.get("CONCORD_TEST_SLOW_FIT_SECONDS", "0"))
if _SLOW_FIT_SECONDS:
    from celery.signals import worker_process_init

    @worker_process_init.connect(weak=False)
    def _slow_fit(**kwargs):
        from training.trainers import SklearnLogReg

        fit = SklearnLogReg.fit

        def slow_fit(self, *args, **kw):
            time.sleep(_SLOW_FIT_SECONDS)
            return fit(self, *args, **kw)

        SklearnLogReg.fit = slow_fit
