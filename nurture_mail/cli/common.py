"""What every command shares: an app context, and errors as one line with a non-zero exit."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from ..exceptions import NurtureError


def make_app() -> Flask:
    from .. import create_app

    return create_app()


def with_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command inside an app context; domain errors become ``Error: …`` and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = make_app()
        with app.app_context():
            try:
                return func(*args, **kwargs)
            except (NurtureError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            finally:
                app.extensions["nurture"].close()

    return wrapper
