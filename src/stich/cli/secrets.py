"""`stich secrets ...`: vault keys, rotation and verification."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stich.cli.common import state
from stich.crypto.vault import Vault, generate_key_entry
from stich.errors import Invalid
from stich.secrets.service import (
    count_pending_rotation,
    count_stored,
    rotate_keys,
    verify_secrets,
)

app = typer.Typer(help="Secrets vault: keys, rotation, verification.", no_args_is_help=True)
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _vault() -> Vault:
    vault = Vault.from_settings(state.settings())
    vault.active_key_id  # noqa: B018 (fails with a clear message when no ring is set)
    return vault


@app.command("generate-key")
def generate_key(
    key_id: Annotated[
        str | None,
        typer.Option("--key-id", help="Id for the key [default: k<date>_<random>]"),
    ] = None,
) -> None:
    """Print a new 256-bit key as a ring entry KEY_ID:BASE64 (put it first to encrypt with it)."""
    try:
        entry = generate_key_entry(key_id)
    except ValueError as exc:
        raise Invalid(f"--key-id: {exc}") from None
    typer.echo(entry)
    err.print(
        "Add it to STICH_SECRETS_KEYS after the current key on every server, then move it "
        "first and run `stich secrets rotate-key` (see docs/secrets.md).",
        highlight=False,
    )


@app.command("rotate-key")
def rotate_key(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per commit")] = 100,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after re-encrypting this many secrets (run again to go on)"),
    ] = None,
) -> None:
    """Re-encrypt every secret not under the active (first) key. Safe to interrupt and re-run."""
    vault = _vault()
    with state.database() as db, _progress() as progress:
        task = progress.add_task(
            f"re-encrypting under {vault.active_key_id}",
            total=count_pending_rotation(db, vault),
        )
        report = rotate_keys(
            db,
            vault,
            batch_size=batch_size,
            limit=limit,
            on_row=lambda _id: progress.advance(task),
        )
    typer.echo(
        f"rotated {report.rotated} of {report.pending} secrets to key {report.active_key_id}"
        + (f"; {report.skipped} changed meanwhile" if report.skipped else "")
        + ("; stopped at --limit, run again to continue" if report.stopped_early else "")
    )
    _fail_on(report.failures, "could not be decrypted and were left as they are")


@app.command()
def verify(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per read")] = 200,
) -> None:
    """Decrypt every stored secret; list the ids that fail (never values). Exit 1 on failure."""
    vault = _vault()
    with state.database() as db, _progress() as progress:
        task = progress.add_task("verifying", total=count_stored(db))
        report = verify_secrets(
            db, vault, batch_size=batch_size, on_row=lambda _id: progress.advance(task)
        )
    typer.echo(
        f"checked {report.checked} secrets: {len(report.failures)} failed, "
        f"{report.not_under_active} not yet under the active key {report.active_key_id}"
    )
    _fail_on(report.failures, "failed verification")


def _fail_on(failures: dict[str, str], what: str) -> None:
    if not failures:
        return
    typer.echo(f"{len(failures)} secrets {what}:")
    for secret_id, reason in failures.items():
        typer.echo(f"  {secret_id}  {reason}")
    raise typer.Exit(1)
