"""The ``geolabel`` click group: verbosity, clean one-line errors, subcommands.

Library errors become ``geolabel: error: <message>`` on stderr and exit code 2 (1
for runs where some scenes failed); ``--debug`` (or ``-v``) shows the traceback.
Warnings become ``geolabel: warning: <message>``, each distinct message once;
``--debug`` (or ``-v``) shows them in Python's format, with file and line.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

import click

from geolabel import __version__

__all__ = ["cli", "error_line", "main", "warning_line"]

COMMANDS = {
    "predict": "geolabel.cli.predict:predict",
    "demo": "geolabel.cli.demo:demo",
    "info": "geolabel.cli.info:info",
    "export-onnx": "geolabel.cli.export:export_onnx_cmd",
    "export-chips": "geolabel.cli.export_chips:export_chips",
    "finalize": "geolabel.cli.finalize:finalize",
    "serve": "geolabel.cli.serve:serve",
    "models": "geolabel.cli.models:models",
    "accept": "geolabel.cli.accept:accept",
    "train": "geolabel.cli.train:train",
    "evaluate": "geolabel.cli.evaluate:evaluate",
    "simulate": "geolabel.cli.simulate:simulate",
    "prioritize": "geolabel.cli.prioritize:prioritize",
    "qgis": "geolabel.cli.qgis:qgis",
    "label-studio": "geolabel.cli.label_studio:label_studio",
    "loop": "geolabel.cli.loop:loop",
}


def _quiet_gdal_log_errors() -> None:
    """Keep rasterio's GDAL log callback from printing tracebacks.

    GDAL warnings about a damaged file can quote bytes that are not UTF-8; rasterio's
    callback then fails to decode them and Python prints "Exception ignored in
    'rasterio._env.log_error'" with a traceback. The message is logged instead.
    """
    previous = sys.unraisablehook

    def hook(u: Any) -> None:
        where = f"{u.object!r} {u.err_msg or ''}"
        if isinstance(u.exc_value, UnicodeDecodeError) and "log_error" in where:
            logging.getLogger("geolabel.cli").debug(
                "GDAL message that is not UTF-8: %r", u.exc_value.object
            )
            return
        previous(u)

    sys.unraisablehook = hook


def error_line(message: str, path: object = None) -> str:
    """``geolabel: error: PATH: cause`` on one line, the path given once.

    ``path`` is prefixed only when the message does not already start with it.
    """
    text = " ".join(message.split())
    if path is not None and not text.startswith(f"{path}:"):
        text = f"{path}: {text}"
    return f"geolabel: error: {text}"


def warning_line(message: object) -> str:
    """``geolabel: warning: <message>`` on one line."""
    return f"geolabel: warning: {' '.join(str(message).split())}"


def _warning_printer(ctx: click.Context) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints :func:`warning_line` once per message,
    or Python's format (file, line, source) once ``--debug``/``-v`` is given."""
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if (ctx.obj or {}).get("debug"):
            text = warnings.formatwarning(message, category, filename, lineno, line)
            click.echo(text, err=True, nl=False)
            return
        text = warning_line(message)
        if text not in shown:
            shown.add(text)
            click.echo(text, err=True)

    return show


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        import importlib

        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        _add_global_options(cmd)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        from geolabel.errors import GeolabelError, describe_error

        # the flags are read when a warning comes: -v/--debug may follow the command
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(ctx)
            try:
                return super().invoke(ctx)
            except (GeolabelError, OSError, MemoryError) as err:
                # the one error boundary: a scene, model, spec, disk or store failure
                # is one line; the traceback only with --debug / -v
                obj = ctx.obj or {}
                if obj.get("debug"):
                    raise
                click.echo(error_line(describe_error(err)), err=True)
                ctx.exit(2)


def _configure(
    ctx: click.Context, verbose: int, quiet: bool, debug: bool, *, late: bool = False
) -> None:
    """Set the log level and ``ctx.obj`` from the global options given so far."""
    obj = ctx.ensure_object(dict)
    verbose = obj.get("verbose", 0) + verbose
    quiet = obj.get("quiet", False) or quiet
    debug = obj.get("debug_flag", False) or debug
    level = (
        logging.DEBUG if debug else max(logging.WARNING - 10 * verbose, logging.DEBUG)
    )
    if late:  # the handler exists: only the level changes
        logging.getLogger().setLevel(level)
    else:
        logging.basicConfig(
            level=level,
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )
    obj.update(
        verbose=verbose, quiet=quiet, debug_flag=debug, debug=debug or verbose > 0
    )
    if not obj["debug"] and not obj.get("gdal_log_quiet"):
        _quiet_gdal_log_errors()
        obj["gdal_log_quiet"] = True


def _late_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Callback of ``-v/-q/--debug`` given after the subcommand."""
    if value:
        _configure(
            ctx,
            value if param.name == "verbose" else 0,
            param.name == "quiet",
            param.name == "debug",
            late=True,
        )


#: ``-v/-q/--debug`` as each subcommand also accepts them (after its name).
_GLOBAL_OPTIONS = (
    (("-v", "--verbose"), {"count": True, "help": "As `geolabel -v`."}),
    (("-q", "--quiet"), {"is_flag": True, "help": "As `geolabel -q`."}),
    (("--debug",), {"is_flag": True, "help": "As `geolabel --debug`."}),
)


def _add_global_options(cmd: click.Command) -> None:
    """Let ``geolabel CMD ... -q`` work as ``geolabel -q CMD ...`` (idempotent)."""
    have = {opt for p in cmd.params for opt in getattr(p, "opts", ())}
    for decls, kw in _GLOBAL_OPTIONS:
        if have.isdisjoint(decls):
            cmd.params.append(
                click.Option(
                    list(decls),
                    expose_value=False,
                    is_eager=True,
                    callback=_late_global,
                    **kw,  # type: ignore[arg-type]
                )
            )
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _add_global_options(sub)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="geolabel")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More logging (-vv for debug); shows tracebacks.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, warnings only.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Label large geospatial rasters with models.

    -v, -q and --debug may also follow the subcommand (`geolabel predict ... -q`).
    """
    ctx.obj = {}
    _configure(ctx, verbose, quiet, debug)


def main() -> None:
    """Entry point."""
    cli(prog_name="geolabel")
