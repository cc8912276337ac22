"""What a training run prints: the progress bar, one-line notices and per-epoch summaries.

Only rank 0 prints. Lines go through ``tqdm.write`` while a bar is drawn, so no message is glued
to the bar; the bar is closed (ending its line) before an error leaves the loop.
"""

from __future__ import annotations

import sys
from typing import Any


class Console:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def open_bar(self, total: int, initial: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def update(self) -> None:
        """One optimiser step done."""
        if self.bar is not None:
            self.bar.update(1)

    def show_loss(self, loss: float) -> None:
        """The mean loss of the last log window (known on log steps only: no per-step read)."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def line(self, text: str) -> None:
        """A line on stdout (summaries, "resuming from ...")."""
        self._write(text, sys.stdout)

    def warn(self, text: str) -> None:
        """``starft: warning: TEXT`` on stderr."""
        self._write(f"starft: warning: {text}", sys.stderr)

    def _write(self, text: str, file: Any) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            from tqdm.auto import tqdm

            tqdm.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
