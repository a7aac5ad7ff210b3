"""The job worker of `serve --with-worker`: a child process, started again whenever it exits.

The child is told the API's process id and stops by itself once that process is gone (see
worker.watch_parent), so a `serve` killed outright (kill -9) leaves no worker behind; a `serve`
stopped by SIGTERM or SIGINT stops its worker on the way out (the app's shutdown).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from portraitist.service.settings import Settings

log = logging.getLogger(__name__)

# how long a stopping worker may take to hand its job back before it is killed (the reaper then
# resumes the job once its heartbeat is stale)
STOP_TIMEOUT_S = 10.0


class SupervisedWorker:
    """`portraitist worker` as a child process, started again whenever it exits until stopped."""

    def __init__(self, settings: Settings):
        self.env = {**os.environ, **settings.as_environment()}
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, name="worker-supervisor", daemon=True)

    def start(self) -> SupervisedWorker:
        self._thread.start()
        return self

    def _keep_running(self) -> None:
        command = [
            sys.executable,
            "-c",
            "from portraitist.cli import main; main()",
            "worker",
            "--parent-pid",
            str(os.getpid()),
        ]
        while not self._stopping.is_set():
            self.process = subprocess.Popen(command, env=self.env)
            code = self.process.wait()
            if not self._stopping.is_set():
                log.warning("worker exited with code %s; starting another", code)
                self._stopping.wait(2.0)

    def stop(self) -> None:
        self._stopping.set()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._thread.join(timeout=5)
