"""``tempbench backends``: every strategy, its capabilities, and what would serve it now."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from backends import HARNESS_STORES, REGISTRY, STRATEGIES, parse_spec, store_class
from tempbench.services import describe_services

console = Console()


def backends_command() -> None:
    """List every registered strategy, its capabilities, and what would serve it now."""
    described = describe_services()  # what would serve each service now; starts nothing
    table = Table(title="tempbench strategies")
    for column in ("spec", "native TTL", "expires on read", "shared", "encrypted", "direct upload", "async", "max object", "served by"):
        table.add_column(column)
    for spec in (*STRATEGIES, *HARNESS_STORES):
        name, _ = parse_spec(spec)
        try:
            caps = store_class(name).capabilities
        except Exception as exc:  # a strategy whose module cannot load is listed, not hidden
            table.add_row(spec, f"[red]unavailable: {exc}[/red]")
            continue
        if isinstance(caps, property):
            cells = ["(depends on the wrapped store)"] + [""] * 6
            table.add_row(spec, *cells, _served_by(spec, described))
            continue
        yes = lambda flag: "[green]yes[/green]" if flag else "no"  # noqa: E731
        table.add_row(
            spec,
            yes(caps.native_ttl),
            yes(caps.expires_on_read),
            yes(caps.shared_across_instances),
            yes(caps.encrypted_at_rest),
            yes(caps.direct_upload),
            yes(caps.async_processing),
            f"{caps.max_object_bytes:,} B" if caps.max_object_bytes else "none",
            _served_by(spec, described),
        )
    console.print(table)
    services_table = Table(title="services (REDIS_URL, S3_ENDPOINT_URL, CELERY_BROKER_URL)")
    for column in ("service", "served by", "emulated", "state", "why"):
        services_table.add_column(column)
    for kind, entry in described.items():
        services_table.add_row(
            kind,
            entry["name"],
            "[yellow]emulated[/yellow]" if entry["emulated"] else "no",
            entry["state"],
            entry.get("why") or entry.get("url", ""),
        )
    console.print(services_table)
    console.print(f"Registered store names: {', '.join(sorted(REGISTRY))}")


def _served_by(spec: str, described: dict[str, dict]) -> str:
    """What would serve a strategy now, with the emulated badge where an emulator would."""

    def label(kind: str) -> str:
        entry = described[kind]
        badge = " [yellow]\\[emulated][/yellow]" if entry["emulated"] else ""
        state = "" if entry["state"] != "unavailable" else " [red](unavailable)[/red]"
        return f"{entry['name']}{badge}{state}"

    name, options = parse_spec(spec)
    if name in ("redis", "s3"):
        return label(name)
    if name == "celery":
        inner = options.get("inner", "")
        files = label(inner) if inner in ("redis", "s3") else inner or "?"
        return f"workers via {label('broker')}; files in {files}"
    if name in ("disk", "encrypted-disk"):
        return "local filesystem"
    if name == "cookie":
        return "Flask session cookie (simulated browser jar)"
    return "this process"
