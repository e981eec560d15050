"""HTML pages from Jinja2 templates kept as package data
(``pytest_virtoverhead/render/templates/*.html.j2``).

One environment for every page: autoescaping on for ``.j2`` HTML
templates, undefined names are errors (a renamed context key fails a test
instead of printing nothing), and the formatting helpers of
:mod:`textfmt` are available as filters so templates format numbers the
same way as the terminal and the Markdown summary.

Jinja2 comes with the ``report`` extra (with matplotlib); imported only
when a page is rendered.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

INSTALL_HINT = "pip install pytest-virtoverhead[report]"


class TemplatesUnavailable(RuntimeError):
    """Jinja2 is missing."""


@lru_cache(maxsize=1)
def environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise TemplatesUnavailable(
            f"HTML output needs Jinja2, which is not installed: {INSTALL_HINT}") from None
    from ..judge import textfmt

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_virtoverhead.render", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2", "j2"),
                                            default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["seconds"] = textfmt.seconds
    env.filters["fixed"] = textfmt.fixed
    env.filters["interval"] = textfmt.interval  # of ratios: [1.020, 1.050]
    env.filters["time_interval"] = lambda ci: textfmt.interval(ci, textfmt.seconds)
    env.tests["finite"] = textfmt.finite
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
