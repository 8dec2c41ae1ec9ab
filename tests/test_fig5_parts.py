"""Fig. 5 against the ground truth: the part each region's stripe covers, boxed in every frame, and
every map on one fixed colour scale."""
import numpy as np
import pytest

from fgra_core.viz import draw
from fgra_core.viz.maps import ResponseData


def _data(parts=True):
    N, R, h, w, H, W = 3, 4, 4, 2, 64, 32
    maps = np.full((N, R, h, w), 0.49, np.float32)
    maps[:, :, 1] = 0.51                                        # a 2% bump on row 1 of every map
    p = np.array([[0.0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]])
    layout = np.stack([p, np.clip(p + 0.125, 0, 1), np.clip(p + 0.25, 0, 1)])   # the body moves down
    return ResponseData(np.zeros((N, H, W, 3), np.uint8), np.arange(N), maps, np.full((N, R), 1 / N, np.float32),
                        None, [(16.0 * r, 16.0 * (r + 1)) for r in range(R)], "4 GB+RAM+AVG", "t",
                        layout if parts else None)


def test_part_boxes_follow_the_part_of_each_region():
    d = _data()
    np.testing.assert_allclose(d.part_boxes(1), [[16, 32], [24, 40], [32, 48]])   # torso, in pixel rows
    shares = d.part_shares()
    assert shares.shape == (3, 4)
    # frame 0: region r's part lies on cell row r; row 1 holds 0.51 of the 0.51 + 3 x 0.49 row masses
    assert shares[0, 1] == pytest.approx(0.51 / 1.98) and shares[0, 0] == pytest.approx(0.49 / 1.98)
    assert _data(parts=False).part_boxes(0) is None and _data(parts=False).part_shares() is None


def test_the_fixed_scale_does_not_stretch_a_flat_map():
    d = _data(parts=False)
    assert draw._region_range(d, 0, "fixed") == (0.0, 1.0)
    assert draw._region_range(d, 0, "row") == pytest.approx((0.49, 0.51))
    fixed = draw.overlay_strip(d, 0, scale="fixed").astype(int)
    row = draw.overlay_strip(d, 0, scale="row").astype(int)
    W = d.frames.shape[2]
    tile = slice(W + 4, 2 * W + 4)                               # the first frame after the reference
    # on one fixed scale a 2% bump is a small change of colour; stretched to the row it spans the colour map
    spread = lambda img: (img[:, tile].max(axis=(0, 1)) - img[:, tile].min(axis=(0, 1))).max()  # noqa: E731
    assert spread(fixed) < 20 and spread(row) > 60
    with pytest.raises(ValueError, match="scale must be one of"):
        draw._region_range(d, 0, "stretched")


def test_the_strip_marks_the_part_rows_in_cyan():
    d = _data()
    strip = draw.overlay_strip(d, 1)
    W = d.frames.shape[2]
    frame2 = strip[:, 3 * (W + 4):3 * (W + 4) + W]             # the third sampled frame: torso at rows 32-48
    assert tuple(frame2[32, 0]) == (0, 255, 255) and tuple(frame2[47, 0]) == (0, 255, 255)
    assert tuple(frame2[40, 0]) != (0, 255, 255)


def test_fig5_boxes_the_parts_and_says_its_scale():
    fig = draw.draw_fig5(_data())
    text = fig._suptitle.get_text()
    assert "one colour scale 0-1" in text and "dashed cyan" in text
    dashed = [p for ax in fig.axes for p in ax.patches if p.get_linestyle() in ("--", "dashed")]
    assert len(dashed) == 4 * 4                                    # 4 regions x (reference + 3 frames)
    assert "each row coloured from its own min to max" in draw.draw_fig5(_data(parts=False), scale="row")._suptitle.get_text()
