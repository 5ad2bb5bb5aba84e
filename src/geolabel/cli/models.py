"""``geolabel models``: list the registered backends, check a model spec or endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["models"]


@click.group()
def models() -> None:
    """Model backends and model checks."""


@models.command("list")
def list_() -> None:
    """Print the registered backends as JSON (name -> module:factory).

    \b
    Examples:
      geolabel models list
    """
    from geolabel.models import list_backends

    click.echo(json.dumps(list_backends(refresh=True), indent=2))


@models.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--device", default="cpu", show_default=True, help="Device for local models."
)
@click.pass_context
def check(ctx: click.Context, spec: Path, device: str) -> None:
    """Check SPEC before a run: it loads or is reachable, the server's metadata matches
    it, a dry run on a synthetic tile returns the right shape, and (local
    segmentation models) the receptive field measured by perturbing one pixel is not
    larger than the spec says (a warning).

    Prints the steps as JSON on stdout and each problem on stderr; exits 1 on problems.

    \b
    Examples:
      geolabel models check configs/models/ukis-csmask-4b-l1c.yaml
      geolabel models check remote-unet.yaml
    """
    from geolabel.models import load_spec
    from geolabel.models.check import check_model

    steps = check_model(load_spec(spec), device=device)
    ok = all(s.ok for s in steps)
    for s in steps:
        if not s.ok:
            click.echo(f"geolabel: error: {spec}: {s.name}: {s.detail}", err=True)
        elif s.warning:
            click.echo(f"geolabel: warning: {spec}: {s.name}: {s.detail}", err=True)
    click.echo(
        json.dumps(
            {"spec": str(spec), "ok": ok, "checks": [s.to_dict() for s in steps]},
            indent=2,
        )
    )
    if not ok:
        ctx.exit(1)
