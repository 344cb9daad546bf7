"""``tempbench serve``: the reference app for people, under gunicorn on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from tempbench import cli_checks
from tempbench.processes import log_dir
from tempbench.webapp import DEFAULT_TTL_S
from tempbench.webapp.server import AppServer, ServerError, interrupt_on_termination

console = Console()


def serve_command(
    backend: Annotated[str, typer.Option("--backend", help="Store spec, e.g. disk, encrypted-disk:fernet, redis, s3, celery+redis, cookie.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (the app never binds another address).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="gunicorn worker processes (app instances sharing the medium).")] = 2,
    threads: Annotated[int, typer.Option("--threads", help="Threads per gunicorn worker (gthread).")] = 4,
    ttl: Annotated[float, typer.Option("--ttl", help="TTL of uploaded files and results, seconds.")] = DEFAULT_TTL_S,
    max_upload_mib: Annotated[int, typer.Option("--max-upload-mib", help="MAX_CONTENT_LENGTH in MiB (413 JSON beyond).")] = 16,
    celery_workers: Annotated[int, typer.Option("--celery-workers", help="Celery worker processes for celery+... specs.")] = 1,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="REDIS_URL", help="Use this Redis instead of a private redis-server.")] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option("--s3-endpoint-url", envvar="S3_ENDPOINT_URL", help="Use this S3 endpoint instead of a moto server.")] = None,
    broker_url: Annotated[str | None, typer.Option("--broker-url", envvar="CELERY_BROKER_URL", help="Celery broker (default: the resolved Redis).")] = None,
) -> None:
    """Serve the reference Flask app (upload, process, download) over one strategy until Ctrl-C."""
    cli_checks.check_backends("--backend", [backend], cli_checks.APP_STORES)
    cli_checks.check_service_urls(redis_url, s3_endpoint_url, broker_url)
    interrupt_on_termination()
    server = AppServer(
        backend,
        workers=workers,
        threads=threads,
        port=port,
        ttl_s=ttl,
        max_content_length=max_upload_mib * 1024 * 1024,
        celery_workers=celery_workers,
        redis_url=redis_url,
        s3_endpoint_url=s3_endpoint_url,
        broker_url=broker_url,
    )
    try:
        server.start()
    except ServerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    try:
        console.print(
            f"Reference app ([bold]{backend}[/bold], {server.service['name']}"
            f"{', emulated' if server.service['emulated'] else ''}) on [bold]{server.url}[/bold] "
            f"with {workers} gunicorn worker(s); files under {server.workdir}, service logs in "
            f"{log_dir()} (removed on exit). Ctrl-C stops it."
        )
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        console.print(f"[red]gunicorn exited:[/red]\n{server.log_tail()}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("Stopping ...")
    finally:
        server.stop()
