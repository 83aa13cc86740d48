# gw/sched.py - task supervisor: restart crashed tasks with capped exponential backoff
# MIT license.
#
# A supervised job is an async function with no arguments.  If it raises (anything
# but CancelledError; SystemExit and KeyboardInterrupt pass through, a watchdog reset
# must not be swallowed) or returns, it is logged and restarted after a delay that
# doubles from backoff_min_ms up to backoff_max_ms.  A run longer than _STABLE_MS
# resets the delay and the consecutive-failure count.  healthy() is False when a job
# keeps failing: the main loop then stops feeding the watchdog and the board resets.
import asyncio

_STABLE_MS = 60000
_MAX_FAILS = 8


class Job:
    def __init__(self, name, fn, backoff_min_ms, backoff_max_ms):
        self.name = name
        self.fn = fn
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.restarts = 0
        self.fails = 0
        self.last_error = None
        self.task = None


class Supervisor:
    def __init__(self, hal, log):
        self._hal = hal
        self._log = log
        self.jobs = []

    def spawn(self, name, fn, backoff_min_ms=1000, backoff_max_ms=60000):
        job = Job(name, fn, backoff_min_ms, backoff_max_ms)
        self.jobs.append(job)
        job.task = asyncio.create_task(self._keep(job))
        return job

    async def _keep(self, job):
        hal = self._hal
        delay = job.backoff_min_ms
        while True:
            t0 = hal.ticks_ms()
            try:
                await job.fn()
                job.last_error = "returned"
                self._log.warning("sched", "%s returned; restarting", job.name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the one place allowed to catch all, and it logs
                job.last_error = repr(e)
                self._log.exception("sched", "%s crashed" % job.name, e)
            job.restarts += 1
            if hal.ticks_diff(hal.ticks_ms(), t0) > _STABLE_MS:
                job.fails = 0
                delay = job.backoff_min_ms
            job.fails += 1
            await asyncio.sleep(delay / 1000)
            delay = min(delay * 2, job.backoff_max_ms)

    def healthy(self):
        for job in self.jobs:
            if job.fails >= _MAX_FAILS:
                return False
        return True

    def stats(self):
        return dict([(j.name, j.restarts) for j in self.jobs if j.restarts])

    def cancel(self):
        for job in self.jobs:
            job.task.cancel()
        self.jobs = []
