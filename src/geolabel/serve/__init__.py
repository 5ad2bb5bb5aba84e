"""Serve local model specs over the Open Inference Protocol (KServe V2 REST)."""

from __future__ import annotations

from geolabel.serve._server import ModelServer, client_spec

__all__ = ["ModelServer", "client_spec"]
