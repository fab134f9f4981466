"""Plotly figures inside ipywidgets layouts, drawn.

plotly's ``FigureWidget`` (an anywidget) draws its traces only when it receives Lumino's ``after-attach``
message; put straight into a ``VBox``/``HBox`` under Voila it gets only ``before-attach`` and stays an empty
frame (seen with plotly 7.1, ipywidgets 8.1, Voila 0.5). Shown through an ``Output`` widget it is rendered
as a display output, attached properly, and every later update from Python still reaches it.

A view draws the figure as it was when last *displayed* (the widget's ``_widget_data`` is a snapshot taken
in ``_repr_mimebundle_``); updates made before the page's views exist travel as one-off messages that no
view receives. So each app calls :func:`snapshot` on its figures once its first state is drawn, at the end
of the notebook's cell, before Voila sends the page.
"""

from __future__ import annotations

from typing import Any


def figure_box(figure: Any, css_class: str | None = None) -> Any:
    """An ``Output`` widget showing ``figure`` (a FigureWidget), for use as a child of boxes."""
    import ipywidgets as w

    out = w.Output()
    out.append_display_data(figure)
    if css_class:
        out.add_class(css_class)
    return out


def snapshot(*figures: Any) -> None:
    """Make the figures' views start from their current traces and layout (see the module's note)."""
    for figure in figures:
        figure._repr_mimebundle_()
