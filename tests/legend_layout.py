"""Where a figure's legends cover what it draws, read from matplotlib's own layout of the drawn figure.

A legend hides data when its box, in display coordinates, meets a plotted artist: a line's segments or
markers, a scatter's points, an error bar, a filled band or bar, or a text (a title, a label, a tick label).
Each artist is taken where it is visible: clipped to its axes, so a line running off the panel does not meet
a legend placed outside it. Only the legend box itself counts, not a margin around it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.transforms import Bbox


def _visible_region(artist, box: Bbox) -> Bbox | None:
    """The part of the legend box where ``artist`` can show (inside its clip box, when it is clipped)."""
    clip = artist.get_clip_box() if artist.get_clip_on() else None
    return Bbox.intersection(box, clip) if clip is not None else box


def _points_in(points: np.ndarray, region: Bbox, radius: float) -> bool:
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return False
    x0, y0, x1, y1 = region.x0 - radius, region.y0 - radius, region.x1 + radius, region.y1 + radius
    return bool(((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)).any())


def _polyline_meets(points: np.ndarray, region: Bbox) -> bool:
    """A polyline (NaN breaks it, as matplotlib draws it) crossing or inside the region."""
    runs, current = [], []
    for p in points:
        if np.isfinite(p).all():
            current.append(p)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return any(len(r) > 1 and Path(np.asarray(r)).intersects_bbox(region, filled=False) for r in runs)


def _meets(artist, region: Bbox, renderer, dpi: float) -> bool:
    if isinstance(artist, Line2D):
        xy = artist.get_transform().transform(np.asarray(artist.get_xydata(), float))
        if artist.get_linestyle() not in ("None", "none", "", " ") and _polyline_meets(xy, region):
            return True
        marker = artist.get_marker()
        return marker not in ("None", "none", "", " ", None) and _points_in(
            xy, region, artist.get_markersize() * dpi / 72 / 2
        )
    if isinstance(artist, PathCollection):  # a scatter: markers at offsets
        offsets = artist.get_offset_transform().transform(np.asarray(artist.get_offsets(), float))
        sizes = artist.get_sizes()
        radius = float(np.sqrt(sizes.max()) * dpi / 72 / 2) if len(sizes) else 0.0
        return _points_in(offsets, region, radius)
    if hasattr(artist, "get_paths"):  # error bars (line collections), filled bands (poly collections)
        transform = artist.get_transform()
        filled = len(np.atleast_1d(artist.get_facecolor())) > 0 and np.asarray(artist.get_facecolor()).size > 0
        return any(
            transform.transform_path(path).intersects_bbox(region, filled=bool(filled)) for path in artist.get_paths()
        )
    if isinstance(artist, Patch):
        return artist.get_transform().transform_path(artist.get_path()).intersects_bbox(region, filled=True)
    if isinstance(artist, Text):
        if not artist.get_text().strip():
            return False
        return artist.get_window_extent(renderer).overlaps(region)
    return False


def _drawn(fig):
    """Every plotted artist of a figure, with a name for the report."""
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison and not ax.has_data():
            continue
        label = ax.get_title() or f"axes {fig.axes.index(ax)}"
        for artist in [*ax.lines, *ax.collections, *ax.patches]:
            yield f"{label}: {type(artist).__name__}", artist
        texts = [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:  # an axes turned off draws no labels or ticks
            texts += [ax.xaxis.label, ax.yaxis.label]
            for axis in (ax.xaxis, ax.yaxis):  # the ticks drawn: those inside the view, as Axis.draw picks them
                texts += [t for tick in axis._update_ticks() for t in (tick.label1, tick.label2) if t.get_visible()]
        for text in texts:
            yield f"{label}: text {text.get_text()!r}", text
    for text in fig.texts:
        yield f"figure text {text.get_text()!r}", text
    if getattr(fig, "_suptitle", None) is not None:
        yield f"suptitle {fig._suptitle.get_text()!r}", fig._suptitle


def legend_overlaps(fig) -> list[str]:
    """What each legend of a drawn figure covers (empty when no legend covers anything)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    out = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        own = {id(a) for a in legend.get_children()}
        for name, artist in _drawn(fig):
            if id(artist) in own or not artist.get_visible():
                continue
            region = _visible_region(artist, box)
            if (
                region is not None
                and region.width > 0
                and region.height > 0
                and _meets(artist, region, renderer, fig.dpi)
            ):
                out.append(name)
    return out
