"""Which route the app will serve a request by, found the way the router finds it.

The access guard authorises the route the router picks, not a reading of the path of its
own: two readings of one path (a `%2F` decoded once more, `..` resolved) are how a guard
gets bypassed. The path is also refused (400) when decoding it once more would change its
segments, so no proxy or client in front that decodes again can see another route.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from starlette.routing import BaseRoute, Match


def route_path(scope: dict[str, Any]) -> str:
    """The path the router matches: the request's, less the app's mount prefix."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def ambiguous(path: str) -> bool:
    """Whether decoding `path` once more would change its segments: an encoded `/` or `\\`,
    or a segment that would become `.` or `..`."""
    if "%" not in path:
        return False
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        return True
    return any(unquote(s) in (".", "..") for s in path.split("/") if "%" in s)


def leaf_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes in the order the router tries them, with FastAPI's included routers
    (`include_router`, which Serve's class-based view uses) opened in place."""
    out: list[BaseRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is None:
            out.append(route)
            continue
        if getattr(getattr(route, "include_context", None), "prefix", ""):
            raise ValueError("routes included under a prefix are not supported by the guard")
        out.extend(leaf_routes(inner.routes))
    return out


class RouteFinder:
    """The template (`/v1/transactions/{transaction_id}`) of the route a router serves a
    request by, found with the routes' own matching in the router's own order: the first
    full match (path and method); None when only a partial match (405) or none (404)."""

    def __init__(self, router: Any) -> None:
        self.router = router  # read at the first request: Serve rearranges routes before
        self._routes: list[BaseRoute] | None = None
        self.find = lru_cache(maxsize=4096)(self._find)  # the scoring routes repeat

    def _find(self, method: str, path: str) -> str | None:
        if self._routes is None:
            self._routes = leaf_routes(self.router.routes)
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                template = getattr(route, "path_format", None)
                return template if isinstance(template, str) else None
        return None
