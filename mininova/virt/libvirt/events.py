"""The process-wide libvirt event loop: one daemon thread running virEventRunDefaultImpl."""

from __future__ import annotations

import logging
import threading

import libvirt

LOG = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError as exc:  # keep dispatching; a bad iteration is not fatal
            LOG.warning("libvirt event loop iteration failed: %s", exc)


class EventThread:
    """Starts the shared event thread; must run before the first libvirt connection opens."""

    def start(self) -> None:
        global _thread
        with _lock:
            if _thread is not None:
                return
            libvirt.virEventRegisterDefaultImpl()
            # Errors surface as libvirtError exceptions; stop libvirt also printing them.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _thread = threading.Thread(target=_run, name="libvirt-events", daemon=True)
            _thread.start()
