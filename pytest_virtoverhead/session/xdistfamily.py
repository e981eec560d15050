"""Holm's family over pytest-xdist workers, through the controller.

Holm's correction needs every claim of the run, and each worker measured
only some. So under ``--virt-correction=holm`` the controller opens one
execnet channel per worker on that worker's own gateway (handed over in
``workerinput``: execnet carries a channel inside the data it sends), the
same transport as xdist's, so it reaches workers on other hosts
(``--tx ssh=...``) as well as local ones. A worker, once xdist has no
more tests for it, sends its judged claims' two one-sided p-values and
waits; when every worker the controller still has running has sent its
own, the controller answers each with the others' p-values (those of
workers already gone down count too), and each corrects its own claims
within the whole family, so a test's outcome as pytest shows it agrees
with the controller's report. A worker that goes down without sending
leaves the family (its tests are not in the report either).

No pytest; execnet's channels are duck-typed (``send``, ``receive``,
``setcallback``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .virtsession import VirtSession


class Family:
    """The controller's side: who is running, who has sent, who waits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[str] = set()
        self.published: dict[str, list[float]] = {}
        self.waiting: dict[str, Any] = {}

    def channel_for(self, wid: str, gateway: Any) -> Any:
        """A new channel to worker ``wid`` (to put into its workerinput)."""
        channel = gateway.newchannel()
        with self.lock:
            self.live.add(wid)
        channel.setcallback(lambda values: self.publish(wid, channel, values))
        return channel

    def publish(self, wid: str, channel: Any, values: Any) -> None:
        """Worker ``wid`` sent its p-values (execnet's receiver thread)."""
        try:
            own = [float(p) for p in values]
        except (TypeError, ValueError):
            own = []  # not p-values: it still gets the others' and counts with none
        with self.lock:
            self.published[wid] = own
            self.waiting[wid] = channel
            self._answer()

    def leave(self, wid: str) -> None:
        """Worker ``wid`` went down (sent or not)."""
        with self.lock:
            self.live.discard(wid)
            self._answer()

    def _answer(self) -> None:
        if not self.live <= set(self.published):
            return
        for wid, channel in list(self.waiting.items()):
            others = [p for other, ps in sorted(self.published.items()) if other != wid for p in ps]
            try:
                channel.send(others)
            except Exception:  # noqa: BLE001 - a worker gone meanwhile: its own report says so
                pass
            del self.waiting[wid]


def exchange(state: VirtSession, channel: Any) -> list[float]:
    """A worker's side: send this worker's judged claims' p-values, wait
    for the others' (two per claim) for Holm's family; [] when the
    controller is gone (its own report says so)."""
    from .verdicts import JUDGED, claim_p_values

    own = [float(p) for res in state.results for cr in res.claims if cr.verdict in JUDGED
           for p in claim_p_values(cr)]
    try:
        channel.send(own)
        return [float(p) for p in channel.receive()]
    except Exception:  # noqa: BLE001 - execnet's errors when the controller went away
        return []
