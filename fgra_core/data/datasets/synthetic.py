"""Synthetic misaligned pedestrians: the embedded default dataset (no files needed).

Each identity is a combination of per-part appearances -- hair / skin of the head, and a pair
of colours with a texture (solid, horizontal stripes, vertical stripes, checks) for torso,
legs and feet -- drawn from a small shared palette, so that one part alone is ambiguous and
only the combination identifies a person. Each tracklet is a sequence of crops with the two
detection errors of the FGRA paper (Fig. 1): *scale change* (the box holds too much
background) and *vertical / horizontal offset* (the body is misaligned in the box). Legs swing
as the person walks; the scene has background clutter that drifts across frames, occasional
occluders, a per-camera colour shift, per-tracklet illumination and pixel noise.

Three knobs scale the box errors (:func:`box_geometry`):

* ``box_offset``: the per-tracklet errors (drawn once per tracklet) -- where the tracklet's
  mean box sits around the body (0 = every tracklet's mean box is the aligned one);
* ``jitter``: the per-frame errors -- how far each frame's box moves around its tracklet's mean
  box (0 = the same box in every frame of a tracklet); each is centred per tracklet, so jitter
  leaves the tracklet's mean box (mean top, height and centre) where ``box_offset`` put it;
* ``misalignment``: both kinds at once, as every earlier run drew them. With ``jitter`` and
  ``box_offset`` both None (the default) the boxes are those of earlier runs, bit for bit
  (0 = the aligned box in every frame); a knob left None while the other is set takes the
  value of ``misalignment``.

Every tracklet carries ``parts``: float32 ``[T, 4, 2]``, the (top, bottom) of head, torso,
legs and feet in each frame as fractions of the frame height (clipped to the frame).

Randomness comes from independent streams of ``SeedSequence(seed)`` for identities, scenes,
geometry and noise: the same seed with another ``misalignment``, ``jitter`` or ``box_offset``
gives the same people in the same scenes, only the boxes differ.
"""
from __future__ import annotations

import math

import numpy as np

from fgra_core.data.records import PART_NAMES, Tracklet, VideoDataset

# clothing palette (shared by all identities, and by background clutter and occluders)
PALETTE = np.array([
    [200, 30, 30], [30, 60, 190], [30, 150, 50], [230, 200, 40], [240, 240, 240], [25, 25, 25],
    [130, 70, 160], [240, 130, 30], [120, 120, 120], [110, 70, 40], [40, 170, 190], [230, 120, 170],
], dtype=np.float32)
SKIN = np.array([[235, 200, 170], [210, 160, 120], [160, 110, 75], [100, 70, 50]], dtype=np.float32)
HAIR = np.array([[20, 15, 10], [90, 60, 30], [200, 170, 90], [130, 130, 130], [150, 60, 30]], dtype=np.float32)
TEXTURES = ("solid", "hstripes", "vstripes", "checks")

# pixel labels of the rendered body
_BG, _HAIR, _SKIN, _TORSO, _LEGS, _FEET = range(6)


def _identities(rng: np.random.Generator, n: int, palette_size: int, styles_per_part: int) -> dict[str, np.ndarray]:
    """Appearance of ``n`` identities as combinations of shared per-part styles.

    Each part (head, torso, legs, feet) has a vocabulary of ``styles_per_part`` styles (head:
    skin + hair; other parts: two palette colours + texture + stripe frequency). An identity
    picks one style per part; combinations are distinct, single styles are shared by many
    identities. Body shape (width, part proportions) and a small colour jitter vary per identity.
    """
    k = int(np.clip(palette_size, 2, len(PALETTE)))
    S = int(styles_per_part)
    if S < 2 or S ** 4 < n:
        raise ValueError(f"styles_per_part={S} gives {S ** 4} distinct people, fewer than the {n} identities asked for")

    def vocabulary() -> dict[str, np.ndarray]:
        for _ in range(1000):
            col_a = rng.integers(0, k, size=(S, 3))
            col_b = (col_a + rng.integers(1, k, size=(S, 3))) % k  # second colour differs from the first
            texture = rng.integers(0, len(TEXTURES), size=(S, 3))
            freq = rng.integers(2, 5, size=(S, 3))
            look = np.stack([col_a, np.where(texture == 0, -1, col_b), texture, np.where(texture == 0, 0, freq)], axis=2)
            if all(len({tuple(look[i, p]) for i in range(S)}) == S for p in range(3)):
                break
        head = rng.permutation(len(SKIN) * len(HAIR))[:S] if S <= len(SKIN) * len(HAIR) else rng.integers(0, len(SKIN) * len(HAIR), S)
        return {"col_a": col_a, "col_b": col_b, "texture": texture, "freq": freq,
                "skin": head % len(SKIN), "hair": head // len(SKIN)}

    voc = vocabulary()
    combos = rng.choice(S ** 4, size=n, replace=False)
    styles = np.stack([(combos // S ** p) % S for p in range(4)], axis=1)  # [n, 4]: head, torso, legs, feet
    part = np.arange(3)[None, :]
    return {
        "styles": styles,
        "col_a": voc["col_a"][styles[:, 1:], part],
        "col_b": voc["col_b"][styles[:, 1:], part],
        "texture": voc["texture"][styles[:, 1:], part],
        "freq": voc["freq"][styles[:, 1:], part],
        "skin": voc["skin"][styles[:, 0]],
        "hair": voc["hair"][styles[:, 0]],
        "hair_len": rng.uniform(0.3, 0.65, size=n),
        "width": rng.uniform(0.85, 1.15, size=n),
        "bounds": np.stack([  # ends of head, torso, legs (feet end at 1)
            rng.uniform(0.12, 0.17, size=n), rng.uniform(0.45, 0.56, size=n), rng.uniform(0.86, 0.92, size=n),
        ], axis=1),
        "jitter": rng.uniform(-12, 12, size=(n, 3, 3)),
    }


def _smooth_noise(rng: np.random.Generator, n: int, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """``n`` smooth random fields [n, h, w, 3] in [-1, 1] (bilinear upsampling of a gh x gw grid)."""
    grid = rng.uniform(-1, 1, size=(n, gh, gw, 3)).astype(np.float32)
    y = np.linspace(0, gh - 1, h, dtype=np.float32)
    x = np.linspace(0, gw - 1, w, dtype=np.float32)
    y0 = np.minimum(y.astype(np.int64), gh - 2)
    x0 = np.minimum(x.astype(np.int64), gw - 2)
    fy = (y - y0)[None, :, None, None]
    fx = (x - x0)[None, None, :, None]
    a = grid[:, y0][:, :, x0]
    b = grid[:, y0][:, :, x0 + 1]
    c = grid[:, y0 + 1][:, :, x0]
    d = grid[:, y0 + 1][:, :, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _box_knob(name: str, value: float | None) -> float | None:
    """``None``, or ``value`` as a float once it is checked to be finite and >= 0."""
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be None or a finite number >= 0, got {value}")
    return v


def box_knobs(misalignment: float, jitter: float | None = None,
              box_offset: float | None = None) -> tuple[float | None, float | None]:
    """The effective ``(jitter, box_offset)`` of a draw.

    ``(None, None)`` when both are None (the legacy mode: ``misalignment`` alone scales every box
    error); otherwise each knob, the one left None taking the value of ``misalignment``.
    Raises ``ValueError`` naming the knob for a negative or non-finite value.
    """
    j, b = _box_knob("jitter", jitter), _box_knob("box_offset", box_offset)
    if j is None and b is None:
        return None, None
    m = float(misalignment)
    return (m if j is None else j), (m if b is None else b)


def _centred(values: np.ndarray, f_tr: np.ndarray, n_tr: int) -> np.ndarray:
    """``values`` (one per frame) minus the mean over the frames of each frame's tracklet."""
    counts = np.maximum(np.bincount(f_tr, minlength=n_tr), 1)
    means = np.bincount(f_tr, weights=values, minlength=n_tr) / counts
    return values - means[f_tr]


def box_geometry(
    rng_geom: np.random.Generator,
    f_tr: np.ndarray,
    f_t: np.ndarray,
    n_tr: int,
    H: int,
    W: int,
    misalignment: float,
    jitter: float | None = None,
    box_offset: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box errors of every frame: ``(f_scale, f_dy, f_dx)``, float64 arrays of one value per frame.

    ``f_tr`` is the tracklet of each frame (``0..n_tr-1``), ``f_t`` its index in the tracklet.
    ``f_scale`` is the person's height as a share of the full-height body (< 1: the box holds
    too much background), ``f_dy`` / ``f_dx`` the vertical / horizontal offset of the body in
    pixels of an ``H`` x ``W`` crop.

    Per-tracklet errors (drawn once per tracklet): a shrink ``g_scale_base`` ~ U(0, 0.30) and
    offsets ``g_dy_base``, ``g_dx_base`` ~ U(-1, 1) (times 0.07 H and 0.10 W). Per-frame errors: a
    slow sine ``wave`` (random period and phase per tracklet) and white noise ``g_eps``.

    * Legacy mode (``jitter`` and ``box_offset`` both None): both kinds of error summed and scaled
      by ``misalignment`` (the shrink clipped to [0, 0.45]) -- the boxes of every earlier run.
    * Otherwise (see :func:`box_knobs` for the effective values): ``box_offset`` scales the
      per-tracklet errors; ``jitter`` scales per-frame errors made of the wave, the noise and a
      fresh per-frame draw of the per-tracklet errors (``u0`` ~ U(0, 0.30), ``u1``, ``u2`` ~
      U(-1, 1), drawn after all the draws of the legacy mode), each centred per tracklet (its mean
      over the tracklet's frames subtracted), so that jitter leaves the tracklet's mean box where
      ``box_offset`` put it. Only ``f_scale`` is clipped, to [0.3, 1.4], as a safety net: where
      the clip is not reached the tracklet means of ``f_scale``, ``f_dy``, ``f_dx`` -- and so of
      the box's top, height and centre, which are linear in them -- depend on ``box_offset`` only.
      With ``jitter <= 1`` and ``box_offset <= 1`` the clip is not reached in practice (over
      millions of drawn frames ``f_scale`` stays within about [0.39, 1.31]; only an extreme draw
      of the Gaussian noise could reach it); larger values do reach it on some frames.
      ``jitter = box_offset = misalignment`` is not the legacy set: it adds the per-frame draws
      and centres the per-frame errors.
    """
    f_tr = np.asarray(f_tr, dtype=np.int64)
    f_t = np.asarray(f_t)
    n_frames = len(f_tr)
    j, b = box_knobs(misalignment, jitter, box_offset)
    # the draws of the legacy mode, in their order (the same seed gives the boxes of earlier runs)
    g_scale_base = rng_geom.uniform(0.0, 0.30, size=n_tr)
    g_scale_amp = rng_geom.uniform(0.03, 0.10, size=n_tr)
    g_dy_base = rng_geom.uniform(-1, 1, size=n_tr)
    g_dx_base = rng_geom.uniform(-1, 1, size=n_tr)
    g_period = rng_geom.uniform(6, 16, size=(n_tr, 3))
    g_phase = rng_geom.uniform(0, 2 * np.pi, size=(n_tr, 3))
    g_eps = rng_geom.standard_normal(size=(n_frames, 3))
    wave = np.sin(g_phase[f_tr] + 2 * np.pi * f_t[:, None] / g_period[f_tr])  # [F, 3]
    if j is None:
        m = float(misalignment)
        shrink = np.clip(g_scale_base[f_tr] + g_scale_amp[f_tr] * wave[:, 0] + 0.02 * g_eps[:, 0], 0.0, 0.45)
        f_scale = 1.0 - m * shrink
        f_dy = m * H * (0.07 * g_dy_base[f_tr] + 0.04 * wave[:, 1] + 0.012 * g_eps[:, 1])
        f_dx = m * W * (0.10 * g_dx_base[f_tr] + 0.06 * wave[:, 2] + 0.02 * g_eps[:, 2])
        return f_scale, f_dy, f_dx
    # per-frame draws of the per-tracklet errors (after the legacy draws: those keep their values)
    u0 = rng_geom.uniform(0.0, 0.30, size=n_frames)
    u1 = rng_geom.uniform(-1, 1, size=n_frames)
    u2 = rng_geom.uniform(-1, 1, size=n_frames)
    d_shrink = g_scale_amp[f_tr] * wave[:, 0] + 0.02 * g_eps[:, 0] + (u0 - 0.15)
    d_dy = H * (0.04 * wave[:, 1] + 0.012 * g_eps[:, 1] + 0.07 * u1)
    d_dx = W * (0.06 * wave[:, 2] + 0.02 * g_eps[:, 2] + 0.10 * u2)
    shrink_t = b * g_scale_base[f_tr]
    f_scale = np.clip(1.0 - (shrink_t + j * _centred(d_shrink, f_tr, n_tr)), 0.3, 1.4)
    f_dy = b * H * 0.07 * g_dy_base[f_tr] + j * _centred(d_dy, f_tr, n_tr)
    f_dx = b * W * 0.10 * g_dx_base[f_tr] + j * _centred(d_dx, f_tr, n_tr)
    return f_scale, f_dy, f_dx


def make_synthetic(
    num_train_ids: int = 60,
    num_test_ids: int = 60,
    num_cams: int = 2,
    tracklets_per_id: int = 1,
    frames_per_tracklet: int | tuple[int, int] = (12, 24),
    height: int = 128,
    width: int = 64,
    misalignment: float = 1.0,
    seed: int = 0,
    palette_size: int = 8,
    styles_per_part: int = 6,
    occlusion_p: float = 0.25,
    clutter: float = 1.0,
    camera_shift: float = 1.0,
    noise_std: float = 6.0,
    chunk_frames: int = 256,
    jitter: float | None = None,
    box_offset: float | None = None,
) -> VideoDataset:
    """Draw the synthetic dataset.

    Every identity has ``tracklets_per_id`` tracklets in each of ``num_cams`` cameras, of a
    length drawn in ``frames_per_tracklet`` (inclusive range, or a fixed int). Train
    identities get pids ``0..num_train_ids-1``; test identities ``num_train_ids..``. Query =
    the first camera-0 tracklet of each test identity; gallery = every other test tracklet.
    ``clutter``, ``camera_shift`` and ``noise_std`` scale the scene nuisances (0 switches
    them off); ``occlusion_p`` is the share of tracklets with an occluder. Each body part has
    ``styles_per_part`` shared styles over a palette of ``palette_size`` colours (fewer = harder).
    ``misalignment`` scales all box errors; ``jitter`` (per-frame) and ``box_offset``
    (per-tracklet) scale them apart when either is given (see :func:`box_geometry`).
    """
    if num_train_ids < 1 or num_test_ids < 1 or num_cams < 2 or tracklets_per_id < 1:
        raise ValueError("need >= 1 train and test identity, >= 2 cameras and >= 1 tracklet per identity and camera")
    if misalignment < 0:
        raise ValueError(f"misalignment must be >= 0, got {misalignment}")
    jitter, box_offset = box_knobs(misalignment, jitter, box_offset)
    if isinstance(frames_per_tracklet, (int, np.integer)):
        lo_t = hi_t = int(frames_per_tracklet)
    else:
        lo_t, hi_t = (int(v) for v in frames_per_tracklet)
    if not 1 <= lo_t <= hi_t:
        raise ValueError(f"frames_per_tracklet must be >= 1 (and lo <= hi), got {frames_per_tracklet}")
    H, W = int(height), int(width)
    m = float(misalignment)
    ss = np.random.SeedSequence(seed)
    rng_id, rng_scene, rng_geom, rng_noise = (np.random.default_rng(s) for s in ss.spawn(4))

    n_ids = num_train_ids + num_test_ids
    ids = _identities(rng_id, n_ids, palette_size, styles_per_part)

    # ------------------------------------------------------------------ tracklets
    tr_pid = np.repeat(np.arange(n_ids), num_cams * tracklets_per_id)
    tr_cam = np.tile(np.repeat(np.arange(num_cams), tracklets_per_id), n_ids)
    tr_k = np.tile(np.arange(tracklets_per_id), n_ids * num_cams)
    n_tr = len(tr_pid)
    tr_len = rng_scene.integers(lo_t, hi_t + 1, size=n_tr)
    offsets = np.concatenate([[0], np.cumsum(tr_len)])
    n_frames = int(offsets[-1])
    f_tr = np.repeat(np.arange(n_tr), tr_len)                     # tracklet of each frame
    f_t = np.arange(n_frames) - offsets[f_tr]                     # index within the tracklet

    # scene per camera and tracklet
    cam_bg = rng_scene.uniform(60, 190, size=(num_cams, 3)).astype(np.float32)
    cam_gain = (1 + camera_shift * rng_scene.uniform(-0.25, 0.25, size=(num_cams, 3))).astype(np.float32)
    cam_bias = (camera_shift * rng_scene.uniform(-20, 20, size=(num_cams, 3))).astype(np.float32)
    tr_light = (1 + camera_shift * rng_scene.uniform(-0.15, 0.15, size=n_tr)).astype(np.float32)
    pad = W  # background canvas is wider than the frame; it drifts as the person walks
    blobs = _smooth_noise(rng_scene, n_tr, H, W + pad, 5, 6)
    canvas = cam_bg[tr_cam][:, None, None, :] + clutter * 55.0 * blobs
    ground = rng_scene.uniform(50, 150, size=(num_cams, 3)).astype(np.float32)
    gy = int(round(0.86 * H))
    canvas[:, gy:, :, :] = (1 - 0.6 * min(clutter, 1.0)) * canvas[:, gy:] + 0.6 * min(clutter, 1.0) * ground[tr_cam][:, None, None]
    n_bars = 4
    bar_x = rng_scene.integers(0, W + pad, size=(n_tr, n_bars))
    bar_w = rng_scene.integers(2, max(3, W // 8), size=(n_tr, n_bars))
    bar_col = PALETTE[rng_scene.integers(0, len(PALETTE), size=(n_tr, n_bars))]
    bar_on = rng_scene.random((n_tr, n_bars)) < 0.6 * min(clutter, 1.0)
    canvas = canvas.astype(np.float32)
    for i, j in zip(*np.nonzero(bar_on)):
        x0, x1 = max(0, bar_x[i, j] - bar_w[i, j] + 1), bar_x[i, j] + bar_w[i, j]
        canvas[i, :, x0:x1] = bar_col[i, j]
    canvas = canvas.astype(np.float32)
    drift = rng_scene.uniform(-1.5, 1.5, size=n_tr)
    start_x = rng_scene.uniform(0, pad, size=n_tr)
    f_shift = np.clip(np.round(start_x[f_tr] + drift[f_tr] * f_t), 0, pad).astype(np.int64)

    # occluders
    occ = rng_scene.random(n_tr) < occlusion_p
    occ_len = np.maximum(1, np.round(tr_len * rng_scene.uniform(0.3, 0.7, size=n_tr))).astype(np.int64)
    occ_start = np.floor(rng_scene.random(n_tr) * (tr_len - occ_len + 1)).astype(np.int64)
    occ_top = rng_scene.uniform(0.2, 0.7, size=n_tr)
    occ_bot = np.minimum(1.05, occ_top + rng_scene.uniform(0.2, 0.5, size=n_tr))
    occ_w = rng_scene.uniform(0.25, 0.5, size=n_tr) * W
    occ_x0 = rng_scene.uniform(-0.2, 1.2, size=n_tr) * W
    occ_v = rng_scene.uniform(-3, 3, size=n_tr)
    occ_col = PALETTE[rng_scene.integers(0, len(PALETTE), size=(n_tr, 2))]

    # walking phase (pose, not box: independent of misalignment)
    walk_period = rng_scene.uniform(7, 12, size=n_tr)
    walk_phase = rng_scene.uniform(0, 2 * np.pi, size=n_tr)
    f_walk = np.sin(walk_phase[f_tr] + 2 * np.pi * f_t / walk_period[f_tr])

    # ------------------------------------------------------------------ geometry (box errors)
    f_scale, f_dy, f_dx = box_geometry(rng_geom, f_tr, f_t, n_tr, H, W, m, jitter=jitter, box_offset=box_offset)

    body_h = 0.94 * H * f_scale                                   # person height in pixels
    f_top = 0.5 * H - 0.5 * body_h + 0.01 * H + f_dy              # top of the head
    f_cx = 0.5 * W + f_dx
    f_hw = 0.20 * W * f_scale * ids["width"][tr_pid[f_tr]]        # torso half-width

    bounds = np.concatenate([np.zeros((n_ids, 1)), ids["bounds"], np.ones((n_ids, 1))], axis=1)  # [n_ids, 5]
    f_bounds = bounds[tr_pid[f_tr]]                                # [F, 5]
    parts_px = f_top[:, None] + f_bounds * body_h[:, None]        # [F, 5] pixel rows of part boundaries
    parts = np.stack([parts_px[:, :-1], parts_px[:, 1:]], axis=2) / H
    parts = np.clip(parts, 0.0, 1.0).astype(np.float32)            # [F, 4, 2]

    # colour table: row ((pid * 6 + label) * 2 + pattern bit) -> RGB
    col_a = np.zeros((n_ids, 6, 3), np.float32)
    col_b = np.zeros((n_ids, 6, 3), np.float32)
    id_tex = np.zeros((n_ids, 6), np.int32)
    id_freq = np.ones((n_ids, 6), np.float32)
    col_a[:, _HAIR] = HAIR[ids["hair"]]
    col_a[:, _SKIN] = SKIN[ids["skin"]]
    col_b[:, _HAIR:_TORSO] = col_a[:, _HAIR:_TORSO]
    col_a[:, _TORSO:] = PALETTE[ids["col_a"]] + ids["jitter"]
    col_b[:, _TORSO:] = PALETTE[ids["col_b"]] + ids["jitter"]
    id_tex[:, _TORSO:] = ids["texture"]
    id_freq[:, _TORSO:] = ids["freq"]
    table = np.stack([col_a, col_b], axis=2).reshape(-1, 3)

    # pixel noise: a pool drawn once, read at a random offset per frame
    npix = H * W * 3
    pool = rng_noise.standard_normal(size=npix * 8, dtype=np.float32) * np.float32(noise_std)
    noise_off = rng_noise.integers(0, len(pool) - npix + 1, size=n_frames)

    # ------------------------------------------------------------------ render in chunks
    frames = np.empty((n_frames, H, W, 3), np.uint8)
    ys = (np.arange(H, dtype=np.float32) + 0.5)[None, :, None]
    xs = (np.arange(W, dtype=np.float32) + 0.5)[None, None, :]
    for s in range(0, n_frames, chunk_frames):
        sl = slice(s, min(n_frames, s + chunk_frames))
        F = sl.stop - sl.start
        tr = f_tr[sl]
        pid = tr_pid[tr]
        fb = f_bounds[sl].astype(np.float32)
        bh = body_h[sl].astype(np.float32)[:, None, None]
        u = (ys - f_top[sl].astype(np.float32)[:, None, None]) / bh             # [F, H, 1] 0 = head top, 1 = feet
        xr = (xs - f_cx[sl].astype(np.float32)[:, None, None]) / f_hw[sl].astype(np.float32)[:, None, None]  # [F,1,W]
        walk = (0.28 * f_walk[sl]).astype(np.float32)[:, None, None]
        b1, b2, b3 = fb[:, 1, None, None], fb[:, 2, None, None], fb[:, 3, None, None]

        label = np.zeros((F, H, W), np.int32)
        in_head = (u >= 0) & (u < b1)
        head_mask = in_head & ((xr / 0.5) ** 2 + ((u - 0.5 * b1) / (0.5 * b1)) ** 2 <= 1.0)
        hair_line = (ids["hair_len"][pid].astype(np.float32))[:, None, None] * b1
        label[head_mask] = _SKIN
        label[head_mask & (u < hair_line)] = _HAIR
        in_torso = (u >= b1) & (u < b2)
        neck = np.clip((u - b1) / 0.03, 0.35, 1.0)                               # narrow neck, shoulders
        label[in_torso & (np.abs(xr) <= neck * (1.0 - 0.12 * (u - b1) / (b2 - b1)))] = _TORSO
        in_legs = (u >= b2) & (u < b3)
        label[in_legs & ((np.abs(xr + 0.48 - walk) <= 0.40) | (np.abs(xr - 0.48 + walk) <= 0.40))] = _LEGS
        in_feet = (u >= b3) & (u <= 1.0)
        label[in_feet & ((np.abs(xr + 0.55 - walk) <= 0.48) | (np.abs(xr - 0.55 + walk) <= 0.48))] = _FEET

        # texture bit from the local coordinate inside the part (stripes follow the body)
        start = np.where(u < b2, b1, np.where(u < b3, b2, b3))
        end = np.where(u < b2, b2, np.where(u < b3, b3, 1.0))
        v = (u - start) / (end - start)                                        # [F, H, 1]
        row = pid[:, None, None].astype(np.int32) * 6 + label                   # [F, H, W]
        tex = id_tex.reshape(-1).take(row)
        freq = id_freq.reshape(-1).take(row)
        hs = np.floor(v * 2 * freq).astype(np.int32) & 1
        vs = np.floor((xr + 1.0) * freq).astype(np.int32) & 1
        bit = np.where(tex == 1, hs, np.where(tex == 2, vs, np.where(tex == 3, hs ^ vs, 0)))

        # background: the tracklet's canvas, shifted per frame
        img = np.empty((F, H, W, 3), np.float32)
        for j in range(F):
            x0 = f_shift[s + j]
            img[j] = canvas[tr[j], :, x0:x0 + W]
        body = label > 0
        shade = 1.0 - 0.22 * np.minimum(np.abs(xr), 1.0) ** 2                   # [F, 1, W]
        shade = np.broadcast_to(shade, (F, H, W))[body]
        img[body] = table.take(row[body] * 2 + bit[body], axis=0) * shade[:, None]

        # occluder: a striped block sliding across the frame for part of the tracklet
        t_in = f_t[sl]
        active = occ[tr] & (t_in >= occ_start[tr]) & (t_in < occ_start[tr] + occ_len[tr])
        ai = np.flatnonzero(active)
        if ai.size:
            ta = tr[ai]
            ox = (occ_x0[ta] + occ_v[ta] * (t_in[ai] - occ_start[ta]))[:, None, None]
            oy = ys / H
            omask = ((oy >= occ_top[ta][:, None, None]) & (oy <= occ_bot[ta][:, None, None])
                     & (np.abs(xs - ox) <= 0.5 * occ_w[ta][:, None, None]))
            ostripe = np.floor((xs - ox) / 4.0).astype(np.int64) & 1                # [A, 1, W]
            ocol = np.where(np.broadcast_to(ostripe, omask.shape)[..., None].astype(bool),
                            occ_col[ta, 0][:, None, None, :], occ_col[ta, 1][:, None, None, :]).astype(np.float32)
            sub = img[ai]
            sub[omask] = ocol[omask]
            img[ai] = sub

        cam = tr_cam[tr]
        img *= (cam_gain[cam] * tr_light[tr, None]).astype(np.float32)[:, None, None, :]
        img += (cam_bias[cam] + 0.5).astype(np.float32)[:, None, None, :]   # + 0.5: round on the uint8 cast
        if noise_std > 0:
            flat = img.reshape(F, -1)
            for j in range(F):
                o = noise_off[s + j]
                flat[j] += pool[o:o + npix]
        np.clip(img, 0, 255, out=img)
        frames[sl] = img

    # ------------------------------------------------------------------ records
    tracklets = []
    for i in range(n_tr):
        a, b = offsets[i], offsets[i + 1]
        tracklets.append(Tracklet(
            frames=frames[a:b], pid=int(tr_pid[i]), camid=int(tr_cam[i]), parts=parts[a:b],
            name=f"id{tr_pid[i]:04d}_c{tr_cam[i]}_t{tr_k[i]}",
        ))
    train = [t for t in tracklets if t.pid < num_train_ids]
    test = [t for t in tracklets if t.pid >= num_train_ids]
    query = [t for t in test if t.camid == 0 and t.name.endswith("_t0")]
    qset = {id(t) for t in query}
    gallery = [t for t in test if id(t) not in qset]
    info = {
        "generator": "fgra_core.data.datasets.synthetic.make_synthetic",
        "seed": seed,
        "misalignment": m,
        "jitter": jitter,          # None: the legacy mode (misalignment scales every box error)
        "box_offset": box_offset,
        "num_cams": num_cams,
        "height": H,
        "width": W,
        "part_names": list(PART_NAMES),
        "train_pid_map": {i: i for i in range(num_train_ids)},
        "num_frames": n_frames,
        "occluded_tracklets": int(occ.sum()),
        "identity_styles": ids["styles"],  # [num ids, 4] style index of head, torso, legs, feet per pid
        "split_source": "generated",
    }
    return VideoDataset("synthetic", train, query, gallery, num_train_pids=num_train_ids, info=info)


def part_offsets(tracklets) -> dict[str, float]:
    """How much the body parts move inside the crops, from the ground-truth ``parts``.

    ``centre_std``: mean over tracklets and parts of the std across frames of the part centre;
    ``height_std``: the same for part heights; ``centre_range``: mean max-min of part centres.
    All in fractions of the frame height; 0 for perfectly aligned crops.
    """
    if hasattr(tracklets, "train"):
        tracklets = tracklets.train + tracklets.query + tracklets.gallery
    c_std, h_std, c_rng = [], [], []
    for t in tracklets:
        if t.parts is None:
            raise ValueError(f"tracklet {t.name} has no ground-truth parts")
        centre = t.parts.mean(axis=2)           # [T, 4]
        extent = t.parts[:, :, 1] - t.parts[:, :, 0]
        c_std.append(centre.std(axis=0).mean())
        h_std.append(extent.std(axis=0).mean())
        c_rng.append((centre.max(axis=0) - centre.min(axis=0)).mean())
    return {"centre_std": float(np.mean(c_std)), "height_std": float(np.mean(h_std)), "centre_range": float(np.mean(c_rng))}
