"""``geolabel export-onnx``: a torch model spec to an ONNX model and spec."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["export_onnx_cmd"]


@click.command("export-onnx")
@click.argument("spec", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--opset",
    type=click.IntRange(17),
    default=17,
    show_default=True,
    help="ONNX opset.",
)
@click.option(
    "--check-batch",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Tiles in the seeded batch the export is checked on.",
)
def export_onnx_cmd(spec: Path, out: Path, opset: int, check_batch: int) -> None:
    """Export the torch model of SPEC to OUT (.onnx) plus OUT's .yaml spec (backend onnx).

    The exported model must give the same per-pixel argmax as torch fp32 on at least
    99.9 % of a seeded check batch, else nothing is written (exit 2). Prints a JSON
    summary with the agreement.

    \b
    Example:
      geolabel export-onnx configs/models/unet.yaml models/unet.onnx
      geolabel predict scene.tif -m models/unet.yaml -o tiles/run-onnx
    """
    from geolabel.models.export import export_onnx

    res = export_onnx(spec, out, opset=opset, batch=check_batch)
    click.echo(
        json.dumps(
            {
                "onnx": str(res.onnx),
                "spec": str(res.spec),
                "opset": res.opset,
                "argmax_agreement_vs_torch_fp32": res.agreement,
                "max_abs_logit_diff": res.max_abs_diff,
            }
        )
    )
