"""The frame of an inline SVG chart, shared by the inspector's and the stats' HTML pages."""

from __future__ import annotations

__all__ = ["svg_frame"]


def svg_frame(
    width: int, height: int, plot: tuple[int, int, int, int], label: str, element_id: str
) -> list[str]:
    """The ``<svg>`` opening tag and the plot area's rectangle; ``plot`` is
    ``(left, top, width, height)`` in px, ``label`` the chart's accessible name."""
    left, top, plot_w, plot_h = plot
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{label}" id="{element_id}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfbfc" '
        'stroke="#d0d7de"/>',
    ]
