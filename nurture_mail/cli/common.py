"""What every command shares: an app context, and errors as one line with a non-zero exit."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import OperationalError, ProgrammingError

from ..exceptions import NurtureError

#: Commands that create or migrate the schema, so run without it.
SCHEMA_COMMANDS = frozenset({"init"})


def make_app() -> Flask:
    """The app of a command; one ``Error:`` line when ``init`` is still to run (but for ``init``)."""
    from .. import create_app

    app = create_app()
    context = click.get_current_context(silent=True)
    if context is None or context.info_name not in SCHEMA_COMMANDS:
        problem = _schema_problem(app)
        if problem is not None:
            app.extensions["nurture"].close()
            raise click.ClickException(problem)
    return app


def _schema_problem(app: Flask) -> str | None:
    from ..migrate import schema_problem

    try:
        return schema_problem(app.extensions["nurture"].db)
    except OperationalError as exc:  # the database itself cannot be reached
        return f"cannot reach the database: {str(exc.orig or exc).strip().splitlines()[0]}"


def with_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command inside an app context; domain errors become ``Error: …`` and exit 1.

    Every command but ``init`` (which creates the schema) first checks the schema: missing or
    behind, the command stops with the one line saying to run ``init``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = make_app()
        with app.app_context():
            try:
                return func(*args, **kwargs)
            except (NurtureError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            except (OperationalError, ProgrammingError):  # the schema went away meanwhile
                problem = _schema_problem(app)
                if problem is None:
                    raise
                raise click.ClickException(problem) from None
            finally:
                app.extensions["nurture"].close()

    return wrapper
