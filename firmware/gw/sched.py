# gw/sched.py - task supervisor: restart crashed tasks with capped exponential backoff
# MIT license.
#
# A supervised job is an async function, spawned with its arguments.  If it raises
# (anything but CancelledError; SystemExit and KeyboardInterrupt pass through, a
# watchdog reset must not be swallowed) or returns, it is logged and restarted after a
# delay that doubles from _MIN_MS up to _MAX_MS.  A run longer than _STABLE_MS resets
# the delay and the consecutive-failure count.  healthy() is False when a job keeps
# failing: the main loop then stops feeding the watchdog and the board resets.
# A job is a small list [name, restarts, consecutive failures, task] (no object per job).
import asyncio

from protocols.compat import const

_STABLE_MS = const(60000)
_MAX_FAILS = const(8)
_MIN_MS = const(1000)
_MAX_MS = const(60000)


class Supervisor:
    def __init__(self, hal, log):
        self._hal = hal
        self._log = log
        self.jobs = []

    def spawn(self, name, fn, *args):
        job = [name, 0, 0, None]
        self.jobs.append(job)
        job[3] = asyncio.create_task(self._keep(job, fn, args))
        return job

    async def _keep(self, job, fn, args):
        hal = self._hal
        delay = _MIN_MS
        while True:
            t0 = hal.ticks_ms()
            try:
                await fn(*args)
                self._log.warning("sched", "%s returned; restarting", job[0])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the one place allowed to catch all, and it logs
                self._log.exception("sched", "%s crashed" % job[0], e)
            job[1] += 1
            if hal.ticks_diff(hal.ticks_ms(), t0) > _STABLE_MS:
                job[2] = 0
                delay = _MIN_MS
            job[2] += 1
            await asyncio.sleep(delay / 1000)
            delay = min(delay * 2, _MAX_MS)

    def healthy(self):
        for job in self.jobs:
            if job[2] >= _MAX_FAILS:
                return False
        return True

    def stats(self):
        """{job name: restarts} for the jobs that restarted at least once."""
        out = {}
        for job in self.jobs:
            if job[1]:
                out[job[0]] = job[1]
        return out

    def cancel(self):
        for job in self.jobs:
            job[3].cancel()
        self.jobs = []
