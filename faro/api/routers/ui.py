"""/ui: one HTML page over the JSON endpoints (every table on it is one of them)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(include_in_schema=False)
_PAGE = files("faro.api").joinpath("ui/index.html").read_text(encoding="utf-8")


@router.get("/ui", response_class=HTMLResponse)
def ui() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui")
