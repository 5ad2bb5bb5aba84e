"""``geolabel serve``: serve a local model spec over the Open Inference Protocol (V2 REST)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

__all__ = ["serve"]


@click.command()
@click.option(
    "-m",
    "--model",
    "model",
    required=True,
    type=click.Path(path_type=Path),
    help="Local model spec (YAML).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0 exposes the model to the network).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="TCP port (0: a free one).",
)
@click.option(
    "--token-env",
    metavar="NAME",
    help="Require the bearer token held in environment variable NAME.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(0.001, 16384),
    default=64.0,
    show_default=True,
    help="Largest request body in MiB.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Model calls run at once.",
)
@click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
)
@click.option(
    "--threads", type=click.IntRange(1), help="Model threads [default: all cores]."
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Label Studio ML backend: tasks may read scenes under this folder.",
)
@click.option(
    "--client-spec",
    type=click.Path(path_type=Path),
    help="Also write a client spec (backend: http) pointing here.",
)
def serve(
    model: Path,
    host: str,
    port: int,
    token_env: str | None,
    max_body_mb: float,
    workers: int,
    device: str,
    threads: int | None,
    data_root: Path | None,
    client_spec: Path | None,
) -> None:
    """Serve MODEL on V2 REST until interrupted; print {"url": ...} as a JSON line on stdout.

    Health: /v2/health/live, /v2/health/ready; metadata: /v2/models/NAME; inference:
    POST /v2/models/NAME/infer (normalised FP32 NCHW tiles in, raw logits out).
    SCANEO: POST /predict (multipart GeoTIFF "image" in, class GeoTIFF out). Label
    Studio ML backend: /health, /setup, /predict (tasks of `geolabel label-studio
    export`, read from scenes under --data-root), /webhook, /versions.

    \b
    Examples:
      geolabel serve --model configs/models/ukis-csmask-4b-l1c.yaml --port 8080
      GEOLABEL_TOKEN=s3cret geolabel serve -m spec.yaml --host 0.0.0.0 --token-env GEOLABEL_TOKEN
      geolabel serve -m spec.yaml --port 9090 --data-root /data/scenes   # + Label Studio
    """
    import yaml

    from geolabel.errors import ConfigError
    from geolabel.models import load_model, load_spec
    from geolabel.serve import ModelServer
    from geolabel.serve import client_spec as make_client_spec

    token = None
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise click.BadParameter(
                f"environment variable {token_env} is not set", param_hint="--token-env"
            )
    spec = load_spec(model)
    backend = load_model(spec, device=device, threads=threads)
    try:
        server = ModelServer(
            spec,
            backend,
            host=host,
            port=port,
            token=token,
            max_body_bytes=int(max_body_mb * (1 << 20)),
            workers=workers,
            data_root=data_root,
        )
    except OSError as err:
        raise ConfigError(f"cannot bind {host}:{port}: {err.strerror or err}") from err
    if client_spec is not None:
        extra = {"token_env": token_env} if token_env else {}
        doc = make_client_spec(spec, server.url, binary=True, **extra)
        tmp = client_spec.with_suffix(client_spec.suffix + ".partial")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(client_spec)
    click.echo(
        json.dumps({"url": server.url, "model": spec.name, "model_id": spec.model_id})
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        backend.close()
