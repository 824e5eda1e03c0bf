"""``lamina worker``: run ingest jobs from the shared job table, apart from the API servers."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from lamina.cli.context import state
from lamina.cli.output import err_console
from lamina.serve import db
from lamina.serve.jobs.store import JobStore
from lamina.serve.jobs.worker import JobWorker
from lamina.serve.observe.logs import handler
from lamina.serve.policy.tenants import Tenants


def worker(
    name: Annotated[
        str | None, typer.Option(help="How this worker is named in job leases and logs (host:pid:…).")
    ] = None,
) -> None:
    """Run queued ingest jobs, and sync the sources that are due, until Ctrl-C or SIGTERM; any
    number of workers share the job table (and a source's lease: one sync of it at a time).

    A stopped worker puts its job back in the queue; a killed one loses the job when its lease runs
    out (serve.job_lease_s), and another worker finishes it. Point every worker and server at the
    same database_url, data_dir (or store) and uploads_dir.
    """
    settings = state.settings
    logger = logging.getLogger("lamina")
    logger.addHandler(handler(settings.serve.log_format))
    logger.setLevel(logging.INFO)
    tenants = Tenants(settings)
    engine = db.connect(settings.gateway_url)
    runner = JobWorker(
        JobStore(engine, settings.serve.job_lease_s),
        tenants,
        poll_s=settings.serve.job_poll_s,
        name=name,
        source_poll_s=settings.serve.source_poll_s,
    )

    def stop(signum: int, _frame: object) -> None:
        err_console.print(f"worker {runner.name}: stopping after the current step…", highlight=False)
        runner.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    tenants.embedder.embed(["warm up"])
    err_console.print(f"worker [bold]{runner.name}[/] waiting for ingest jobs", highlight=False)
    try:
        runner.run_forever()
    finally:
        tenants.close()
        engine.dispose()
