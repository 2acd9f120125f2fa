"""Typed ``web.AppKey`` constants: every resource the app holds, in one place."""

from __future__ import annotations

from aiohttp import web

from receiver.store.base import Store
from rules.spec import Spec

__all__ = ["SPEC", "STORE"]

STORE: web.AppKey[Store] = web.AppKey("store", Store)
SPEC: web.AppKey[Spec] = web.AppKey("spec", Spec)
