"""Response maps as pictures: overlays of maps on frames (pure functions of arrays) and the
Fig.-5 figures (matplotlib ``Figure`` objects, not shown); written by
:func:`fgra_core.analysis.figures.save_figure`.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fgra_core.viz.maps import OTHER_REGION_COLOR, REGION_COLOR, ResponseData

# --------------------------------------------------------------------------- drawing (arrays)


def upsample_map(response: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A response map ``[h, w]`` resized to ``size=(H, W)`` (bilinear, as the feature grid covers the image)."""
    x = torch.as_tensor(np.asarray(response, dtype=np.float32))[None, None]
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(frame: np.ndarray, response: np.ndarray, alpha: float = 0.55, vmin: float | None = None,
            vmax: float | None = None, cmap: str = "jet") -> np.ndarray:
    """Blend a response map ``[h, w]`` (upsampled, scaled to [vmin, vmax], coloured by ``cmap``) onto
    an RGB frame ``uint8 [H, W, 3]``; returns ``uint8 [H, W, 3]``. Default range: the map's own."""
    import matplotlib

    frame = np.asarray(frame)
    heat = upsample_map(response, frame.shape[:2])
    lo = float(np.min(response)) if vmin is None else float(vmin)
    hi = float(np.max(response)) if vmax is None else float(vmax)
    norm = np.clip((heat - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(heat)
    colour = matplotlib.colormaps[cmap](norm)[..., :3] * 255.0
    out = (1.0 - alpha) * frame.astype(np.float32) + alpha * colour
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


FIXED_RANGE = (0.0, 1.0)    # the sigmoid's range: every map of every region on one scale
SCALES = ("fixed", "row")
PART_COLOR = "cyan"


def _region_range(data: ResponseData, region: int, scale: str = "fixed") -> tuple[float, float]:
    """Colour range of one region's row: the fixed [0, 1] (maps compare across rows and figures) or
    the row's own min-max (``"row"``: small differences stretched; the stretch is printed)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "fixed":
        return FIXED_RANGE
    m = data.maps[:, region]
    return float(m.min()), float(m.max())


def mark_part(tile: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Dashed cyan lines at the top and bottom rows of a body part (pixel rows) on an RGB tile."""
    tile = tile.copy()
    H, W = tile.shape[:2]
    for y in (int(round(top)), int(round(bottom)) - 1):
        y = min(max(y, 0), H - 1)
        tile[y, ::2] = (0, 255, 255)
    return tile


def overlay_strip(data: ResponseData, region: int, current: int | None = None, gap: int = 4,
                  alpha: float = 0.55, scale: str = "fixed") -> np.ndarray:
    """One Fig.-5 row as an image: the reference frame with region ``region`` boxed, then the
    region's response overlaid on every sampled frame (``current`` framed in yellow). With
    ground-truth parts, dashed cyan lines mark the body part the region's stripe covers."""
    _check_region(data, region)
    H, W = data.frames.shape[1:3]
    lo, hi = _region_range(data, region, scale)
    parts = data.part_boxes(region)
    tiles = [boxed_reference(data, region)]
    for n in range(data.num_frames):
        tile = overlay(data.frames[n], data.maps[n, region], alpha, lo, hi)
        if parts is not None:
            tile = mark_part(tile, *parts[n])
        if current is not None and n == current:
            tile = tile.copy()
            tile[:2], tile[-2:], tile[:, :2], tile[:, -2:] = 255, 255, 255, 255
            tile[:2, :, 2] = tile[-2:, :, 2] = tile[:, :2, 2] = tile[:, -2:, 2] = 0
        tiles.append(tile)
    strip = np.full((H, len(tiles) * W + (len(tiles) - 1) * gap, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        strip[:, k * (W + gap):k * (W + gap) + W] = tile
    return strip


def boxed_reference(data: ResponseData, region: int | None) -> np.ndarray:
    """The reference frame with the N_s region boxes drawn in (``region`` red, others white)."""
    img = data.frames[0].copy()
    H, W = img.shape[:2]
    order = [r for r in range(data.num_regions) if r != region] + ([region] if region is not None else [])
    for r in order:
        top, bottom = data.boxes[r]
        t, b = int(round(top)), min(H, int(round(bottom))) - 1
        c = (255, 0, 0) if r == region else (255, 255, 255)
        img[t, :], img[b, :], img[t:b + 1, 0], img[t:b + 1, W - 1] = c, c, c, c
    return img


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """PNG encoding of an RGB uint8 image (enlarged ``scale`` times, nearest neighbour)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _check_region(data: ResponseData, region: int) -> None:
    if not 0 <= int(region) < data.num_regions:
        raise IndexError(f"region {region} out of range: the model has {data.num_regions} regions (0..{data.num_regions - 1})")


# --------------------------------------------------------------------------- drawing (figures)


FIG_DPI = 100   # the response-map figures' resolution (on screen and in files)


def _figure(figsize, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=FIG_DPI, layout=layout)


def _draw_boxes(ax, data: ResponseData, region: int | None) -> None:
    from matplotlib.patches import Rectangle

    W = data.frames.shape[2]
    for r, (top, bottom) in enumerate(data.boxes):
        sel = region is None or r == region
        ax.add_patch(Rectangle((0.5, top + 0.5), W - 2, bottom - top - 2, fill=False,
                               edgecolor=REGION_COLOR if sel else OTHER_REGION_COLOR,
                               linewidth=1.6 if sel else 0.8, alpha=1.0 if sel else 0.7))
        if region is None:
            ax.text(2, top + 9, str(r), color=REGION_COLOR, fontsize=7, fontweight="bold")


def draw_reference(data: ResponseData, region: int | None = None, ax=None):
    """The reference frame with the N_s region boxes (``region`` highlighted in red; None: all red)."""
    fig = None
    if ax is None:
        fig = _figure((1.6, 3.0))
        ax = fig.add_subplot()
    ax.imshow(data.frames[0])
    _draw_boxes(ax, data, region)
    ax.set_title("reference" + ("" if region is None else f"\nregion {region}"), fontsize=8)
    ax.set_axis_off()
    return fig if fig is not None else ax.figure


def _draw_part(ax, data: ResponseData, parts, n: int) -> None:
    from matplotlib.patches import Rectangle

    if parts is None:
        return
    W = data.frames.shape[2]
    top, bottom = parts[n]
    ax.add_patch(Rectangle((1.0, top), W - 3, max(bottom - top, 0.5), fill=False, edgecolor=PART_COLOR,
                           linestyle="--", linewidth=1.0))


def draw_region_row(data: ResponseData, region: int, current: int | None = None, axes=None, alpha: float = 0.55,
                    scale: str = "fixed"):
    """One Fig.-5 row: the reference frame with ``region`` boxed, then that region's response map
    overlaid on every sampled frame (``scale``: the fixed [0, 1] or the row's own range);
    ``current`` gets a yellow frame. With ground-truth parts, the body part the region's stripe
    covers is boxed (dashed cyan) in every frame and each title gives the map's share on it."""
    _check_region(data, region)
    fig = None
    if axes is None:
        fig = _figure((1.0 * (data.num_frames + 1) + 0.4, 2.2))
        axes = fig.subplots(1, data.num_frames + 1)
    draw_reference(data, region, axes[0])
    lo, hi = _region_range(data, region, scale)
    m = data.maps[:, region]
    parts = data.part_boxes(region)
    shares = data.part_shares()
    weight = "" if data.spatial_weights is None else f", w={float(data.spatial_weights[region]):.2f}"
    axes[0].set_title(f"region {region}{weight}\nmap {float(m.min()):.3f}-{float(m.max()):.3f}", fontsize=7)
    _draw_part(axes[0], data, parts, 0)
    for n in range(data.num_frames):
        ax = axes[n + 1]
        ax.imshow(overlay(data.frames[n], data.maps[n, region], alpha, lo, hi))
        _draw_part(ax, data, parts, n)
        on_part = "" if shares is None else f" p={shares[n, region]:.2f}"
        ax.set_title(f"t={int(data.indices[n])}\ns={data.temporal_scores[n, region]:.3f}{on_part}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        colour = "gold" if current == n else None
        for spine in ax.spines.values():
            spine.set_visible(colour is not None)
            if colour:
                spine.set_color(colour)
                spine.set_linewidth(2.5)
    return fig if fig is not None else axes[0].figure


def draw_fig5(data: ResponseData, regions: Sequence[int] | None = None, alpha: float = 0.55, title: str | None = None,
              scale: str = "fixed"):
    """Fig. 5: one row per region -- the reference frame with the region boxed in red, then the
    region's response map on every sampled frame, on one fixed colour scale [0, 1] (``scale="row"``:
    each row stretched to its own min-max, printed at its left). With ground-truth parts, the part
    each region's stripe covers is boxed in every frame. The title names the sequence and variant."""
    regions = list(range(data.num_regions)) if regions is None else [int(r) for r in regions]
    for r in regions:
        _check_region(data, r)
    H, W = data.frames.shape[1:3]
    # a fixed grid (no layout engine: it costs seconds with dozens of axes); a colour bar at the right
    cell_w, cell_h, title_h, top_h, bar_w = 0.95, 0.95 * H / W, 0.36, 0.55, 0.75
    fig_w = cell_w * (data.num_frames + 1) * 1.08 + 0.1 + bar_w
    fig_h = len(regions) * (cell_h + title_h) + top_h
    fig = _figure((fig_w, fig_h), layout=None)
    right = 1 - (0.05 + bar_w) / fig_w
    fig.subplots_adjust(left=0.05 / fig_w, right=right, bottom=0.05 / fig_h,
                        top=1 - (top_h + title_h) / fig_h, wspace=0.08, hspace=title_h / cell_h)
    axes = np.atleast_2d(fig.subplots(len(regions), data.num_frames + 1, squeeze=False))
    for row, r in enumerate(regions):
        draw_region_row(data, r, axes=axes[row], alpha=alpha, scale=scale)
    _row_colour_bar(fig, [right + 0.12 / fig_w, 0.05 / fig_h + 0.1, 0.12 / fig_w, 0.6], scale=scale)
    weights = "" if data.spatial_weights is None else "; w: the region's spatial weight (Eqs. 7-8)"
    stretch = ("one colour scale 0-1 for every map (each row's min-max printed at its left)" if scale == "fixed"
               else "each row coloured from its own min to max (printed at its left)")
    parts = "" if data.parts is None else "; dashed cyan: the region's body part, p: the map's share on it"
    fig.suptitle((title if title is not None else
                  f"Response maps of the aligned regions -- {data.name} (variant {data.variant})")
                 + f"\n{stretch}{weights}; s: temporal alignment score{parts}", fontsize=8)
    return fig


def _row_colour_bar(fig, rect, cmap: str = "jet", scale: str = "fixed") -> None:
    """The colour scale of the response maps: the fixed 0-1, or a row's minimum to its maximum."""
    import matplotlib
    from matplotlib.cm import ScalarMappable

    cax = fig.add_axes(rect)
    bar = fig.colorbar(ScalarMappable(norm=matplotlib.colors.Normalize(0.0, 1.0), cmap=cmap), cax=cax)
    if scale == "fixed":
        bar.set_ticks([0.0, 0.5, 1.0], labels=["0", "0.5", "1"], fontsize=7)
    else:
        bar.set_ticks([0.0, 1.0], labels=["row\nmin", "row\nmax"], fontsize=7)


def draw_temporal_scores(data: ResponseData, region: int | None = None, current: int | None = None, ax=None):
    """Temporal alignment scores (Eqs. 4-6, softmax over the sampled frames) as bars: one group per
    frame and one bar per region, or only ``region``'s bars (``current`` highlighted)."""
    fig = None
    if ax is None:
        fig = _figure((3.4, 2.2))
        ax = fig.add_subplot()
    N, R = data.temporal_scores.shape
    x = np.arange(N)
    uniform = 1.0 / N
    # bars start at the uniform weight 1/N so that small departures from it stay visible
    if region is None:
        width = 0.8 / R
        for r in range(R):
            ax.bar(x - 0.4 + width * (r + 0.5), data.temporal_scores[:, r] - uniform, width, bottom=uniform,
                   label=f"region {r}")
        ax.legend(fontsize=6, ncol=min(R, 4), loc="best")
    else:
        _check_region(data, region)
        colours = ["tab:orange" if n == current else "tab:blue" for n in range(N)]
        ax.bar(x, data.temporal_scores[:, region] - uniform, 0.7, bottom=uniform, color=colours)
        ax.set_title(f"temporal alignment scores, region {region}", fontsize=8)
    ax.axhline(uniform, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, [str(int(i)) for i in data.indices], fontsize=7)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel("score (bars from 1/N)", fontsize=8)
    ax.tick_params(labelsize=7)
    return fig if fig is not None else ax.figure


def draw_spatial_weights(data: ResponseData, region: int | None = None, ax=None):
    """Spatial attention weights of the regions (Eqs. 7-8); variants without SA show a note."""
    from matplotlib.ticker import MaxNLocator

    fig = None
    if ax is None:
        fig = _figure((2.4, 2.2))
        ax = fig.add_subplot()
    R = data.num_regions
    if data.spatial_weights is None:
        ax.text(0.5, 0.5, f"variant {data.variant}:\nno spatial attention\n(regions concatenated)",
                ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_axis_off()
    else:
        colours = ["tab:red" if r == region else "tab:green" for r in range(R)]
        ax.barh(np.arange(R), data.spatial_weights, color=colours)
        ax.axvline(1.0 / R, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlim(0, 1.15 * max(float(data.spatial_weights.max()), 1.0 / R))
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_yticks(np.arange(R), [f"region {r}" for r in range(R)], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("weight", fontsize=8)
        ax.tick_params(labelsize=7)
    ax.set_title("spatial weights", fontsize=8)
    return fig if fig is not None else ax.figure


def draw_scores(data: ResponseData, title: str | None = None):
    """Temporal alignment scores of every region beside the spatial weights (one figure)."""
    fig = _figure((6.4, 2.4))
    a, b = fig.subplots(1, 2, width_ratios=[2.2, 1])
    draw_temporal_scores(data, ax=a)
    a.set_title("temporal alignment scores", fontsize=8)
    draw_spatial_weights(data, ax=b)
    fig.suptitle(title if title is not None else f"{data.name} (variant {data.variant})", fontsize=9)
    return fig


def figure_to_png(fig, dpi: int = FIG_DPI) -> bytes:
    """PNG bytes of a matplotlib figure (no display needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
