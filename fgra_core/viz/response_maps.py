"""Region response maps of the guide alignment module (the paper's Fig. 5), as data and figures.

Computing
    :func:`load_model` gives a :class:`ModelBundle` (an FGRA model in eval mode and its input
    size) from a run folder, or the untrained default (ResNet-18, no pretrained weights, 128x64,
    N_s = 4, variant 8). :class:`FeatureCache` keeps the backbone feature map of every frame it
    has seen, per tracklet, so that choosing another frame, region or number of sampled frames
    only reruns the cheap head. :func:`compute_response` samples frames from a tracklet (frame
    0 of the sample is the reference frame whose N_s horizontal stripes are the templates) and
    returns a :class:`ResponseData`: the resized frames, the response maps ``[N, N_s, h, w]``
    (channel mean of the normalised similarity maps, Eq. 1 + BN + sigmoid), the temporal
    alignment scores ``[N, N_s]`` (Eqs. 4-6) and the spatial weights ``[N_s]`` (Eqs. 7-8).

Drawing (pure functions of arrays; figures are matplotlib ``Figure`` objects, not shown)
    :func:`overlay` blends a response map onto a frame; :func:`draw_reference`,
    :func:`draw_region_row`, :func:`draw_fig5`, :func:`draw_temporal_scores`,
    :func:`draw_spatial_weights` and :func:`draw_scores` build the figures;
    :func:`save_figure` (:func:`fgra_core.analysis.figures.save_figure`) writes PNG + PDF.

This module is the public face of the two rooms that hold the work: :mod:`fgra_core.viz.maps`
(computing) and :mod:`fgra_core.viz.draw` (drawing).
"""
from fgra_core.analysis.figures import save_figure
from fgra_core.viz.draw import (
    FIG_DPI,
    boxed_reference,
    draw_fig5,
    draw_reference,
    draw_region_row,
    draw_scores,
    draw_spatial_weights,
    draw_temporal_scores,
    figure_to_png,
    overlay,
    overlay_strip,
    png_bytes,
    upsample_map,
)
from fgra_core.viz.maps import (
    DEFAULT_MODEL,
    DEMO,
    FeatureCache,
    FrameSource,
    ModelBundle,
    ResponseData,
    as_source,
    compute_response,
    dataset_for,
    default_dataset,
    demo_model,
    find_runs,
    frames_from_files,
    frames_from_folder,
    load_model,
    resize_frames,
    response_from_features,
    sample_indices,
    sources_of,
)

__all__ = [
    "FIG_DPI", "DEFAULT_MODEL", "DEMO", "demo_model", "ModelBundle", "FrameSource", "FeatureCache", "ResponseData",
    "load_model", "find_runs", "default_dataset", "dataset_for", "as_source", "sources_of",
    "frames_from_folder", "frames_from_files", "sample_indices", "resize_frames",
    "response_from_features", "compute_response", "upsample_map", "overlay", "overlay_strip",
    "draw_reference", "draw_region_row", "draw_fig5", "draw_temporal_scores",
    "draw_spatial_weights", "draw_scores", "boxed_reference", "figure_to_png", "png_bytes", "save_figure",
]
