"""A progress line on stderr: the current scenario and step, a bar, elapsed time.

On a terminal the line redraws itself; elsewhere (CI, a log file) it prints a plain line at most
every 10 seconds, so a long run still shows it is alive without flooding the log.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._label = ""
        self._done = 0.0
        self._total = 0.0
        self._step_started = time.monotonic()
        self._last_plain = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True, name="bench progress")
        self._thread.start()

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _line(self) -> str:
        if self._total > 0:
            fraction = min(1.0, self._done / self._total)
            filled = int(fraction * 24)
            bar = "#" * filled + "-" * (24 - filled)
            return f"[{self._elapsed()}] {self._label} [{bar}] {fraction * 100:5.1f}%"
        spent = time.monotonic() - self._step_started
        return f"[{self._elapsed()}] {self._label} ({spent:.0f}s)"

    def _draw(self, force: bool = False) -> None:
        if self.quiet:
            return
        with self._lock:
            line = self._line()
            if self.tty:
                self.stream.write("\r\033[K" + line[:160])
                self.stream.flush()
            elif force or time.monotonic() - self._last_plain >= 10:
                self._last_plain = time.monotonic()
                self.stream.write(line + "\n")
                self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._draw()

    def step(self, label: str, total: float = 0.0) -> None:
        """A new step; `total` > 0 shows a bar that `advance`/`update` move."""
        with self._lock:
            self._label, self._done, self._total = label, 0.0, float(total)
            self._step_started = time.monotonic()
        self._draw(force=True)

    def update(self, done: float, total: float | None = None) -> None:
        with self._lock:
            self._done = float(done)
            if total is not None:
                self._total = float(total)

    def log(self, message: str) -> None:
        """A line that stays (results as they come)."""
        if self.quiet:
            return
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(f"[{self._elapsed()}] {message}\n")
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        if self.tty and not self.quiet:
            self.stream.write("\r\033[K")
            self.stream.flush()
