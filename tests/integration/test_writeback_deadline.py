"""A write-back's FHIR calls end by the task's soft time limit on any pool (Celery enforces its limits only on
processes; the write-back workers run threads)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from cds_hooks.web import state_of
from hofhir.worker.app import DEAD_LETTER_KEY
from hofhir.worker.tasks import assess_patient_task


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers every request with headers at once, then one byte of its body every 0.2 s: each read is
    quick (no read timeout trips), the whole answer would take minutes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    finally:
        stop.set()
        listener.close()


@pytest.mark.timeout(60)
def test_a_fhir_server_that_trickles_is_given_up_at_the_soft_time_limit(trickling_server: str) -> None:
    app = create_app(Settings(auth=False, fhir_base_url=trickling_server, task_time_limit_s=2))
    store = state_of(app).store
    started = time.monotonic()
    # The last attempt (retries = max_retries): an unavailable server is then dead-lettered, not retried.
    result = assess_patient_task.apply(args=["p-trickle", {"focus": None}], retries=assess_patient_task.max_retries)
    elapsed = time.monotonic() - started
    assert result.get() is None
    assert elapsed < 1 + 1.5, f"{elapsed:.2f} s"  # the soft limit (int(2 * 0.9) = 1 s), not the 1000-byte trickle
    dead = [orjson.loads(item) for item in store.items(DEAD_LETTER_KEY)]
    assert dead and dead[0]["task"] == "hofhir.assess_patient" and "deadline" in dead[0]["reason"]
