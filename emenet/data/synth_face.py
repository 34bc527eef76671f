"""A parametric cartoon face whose pixels carry the synthetic labels.

The synthetic dataset is only useful if a small CNN can learn its labels from the crops, so each
of the 12 action units moves a distinct part of the face (brows, lids, cheeks, lips, jaw), every
expression adds a few cues of its own (wide eyes, nose wrinkle, drooping lids, ...), valence
bends the mouth and tints the cheeks, and arousal opens the eyes and lifts the brows. Identity
(shape, skin, hair) and lighting vary per video so that the task is not trivial.

Geometry is written in "face units" around the face centre (x right, y down; the face is about
90 units wide) and drawn with OpenCV's anti-aliased primitives at sub-pixel precision into a
patch scaled by `scale` pixels per unit; the caller warps that patch into the video frame.

    >>> import numpy as np
    >>> renderer = FaceRenderer(Identity.sample(np.random.default_rng(0)), scale=1.2)
    >>> rgba = renderer.render(FaceState.neutral())
    >>> rgba.shape[2], rgba.dtype.name
    (4, 'uint8')
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from emenet.tasks import AU_NAMES

# Index of each action unit in a 12-vector, in the annotation files' column order.
AU = {name: i for i, name in enumerate(AU_NAMES)}

# Unlabelled cues that each expression adds on top of its AUs, so that the expression is
# visible on its own: AU5 (upper lid raiser, "widen"), AU9 (nose wrinkler), AU20 (lip stretcher),
# drooping lids, a glare, an O-shaped mouth, blush, a lowered gaze, an angry flush, fearful pallor.
EXTRA_NAMES: tuple[str, ...] = ("widen", "nose_wrinkle", "stretch", "droop", "glare", "o_mouth", "blush", "gaze_down",
                                "flush", "pallor")
EXTRA = {name: i for i, name in enumerate(EXTRA_NAMES)}

# Patch extent in face units: x in [-PATCH_HALF_W, PATCH_HALF_W], y in [PATCH_TOP, PATCH_BOTTOM].
PATCH_HALF_W = 78.0
PATCH_TOP = -88.0
PATCH_BOTTOM = 130.0

_GAIN_ONE = 128.0   # uint8 shading maps: 128 means a gain of 1
_LIGHT_STEP = 0.02  # lighting is quantised to this step so shading maps can be reused
_SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn with 1/16 pixel precision
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA

Color = tuple[float, float, float]

# Skin tones (RGB) from light to dark; kept above a minimum brightness so the eyes and brows
# stay darker than the skin (which also keeps the faces findable by a Haar cascade).
_SKIN_TONES = np.array([[236, 200, 176], [224, 180, 150], [206, 158, 124], [188, 138, 104],
                        [170, 120, 90], [150, 102, 74], [226, 190, 160], [214, 170, 140]], np.float64)
_HAIR_COLORS = np.array([[30, 22, 18], [60, 40, 25], [95, 65, 40], [140, 100, 60], [20, 20, 24],
                         [120, 110, 100], [170, 140, 90]], np.float64)
_IRIS_COLORS = np.array([[60, 40, 25], [50, 80, 110], [70, 100, 60], [40, 30, 25]], np.float64)


def _tup(c: np.ndarray | Color) -> Color:
    return tuple(float(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _mix(a: Color, b: Color, k: float) -> Color:
    """Colour a blended towards b by k in [0, 1] (OpenCV draws opaquely, so fades are mixes)."""
    k = min(max(float(k), 0.0), 1.0)
    return (a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k, a[2] + (b[2] - a[2]) * k)


@functools.lru_cache(maxsize=None)
def _lin(a: float, b: float, n: int) -> np.ndarray:
    """np.linspace, cached: the renderer asks for the same few grids hundreds of times a second."""
    out = np.linspace(a, b, n)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Identity:
    """Per-person appearance, constant within a video."""

    face_w: float      # half width of the head at the cheeks
    face_h: float      # centre-to-chin distance
    chin: float        # 0 round .. 1 pointed jaw
    skin: Color
    hair: Color
    hair_style: int    # 0 short, 1 long, 2 buzz cut, 3 side parting
    eye_dx: float      # half distance between the eye centres
    eye_y: float
    eye_w: float       # half width of an eye
    eye_h: float       # half height of an open eye
    brow_gap: float    # eye centre to brow
    brow_th: float
    brow_color: Color
    nose_y: float      # nose tip
    nose_w: float
    mouth_y: float
    mouth_w: float     # half width of the mouth
    lip: Color
    lip_u: float       # upper lip thickness
    lip_l: float       # lower lip thickness
    iris: Color
    clothes: Color

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Identity:
        skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.94, 1.06, 3)
        hair = _HAIR_COLORS[rng.integers(len(_HAIR_COLORS))] * rng.uniform(0.85, 1.15)
        face_h = rng.uniform(50, 57)
        eye_y = rng.uniform(-6, -2)
        lip = np.array([skin[0] * 0.85, skin[1] * 0.50, skin[2] * 0.52]) * rng.uniform(0.9, 1.05)
        brow = np.minimum(hair, skin * 0.45) * rng.uniform(0.8, 1.0)
        return cls(
            face_w=rng.uniform(39, 46), face_h=face_h, chin=rng.uniform(0.1, 0.9),
            skin=_tup(skin), hair=_tup(hair), hair_style=int(rng.integers(4)),
            eye_dx=rng.uniform(15.5, 19), eye_y=eye_y, eye_w=rng.uniform(7.5, 9.5), eye_h=rng.uniform(3.6, 4.6),
            brow_gap=rng.uniform(8.5, 10.5), brow_th=rng.uniform(2.6, 3.8), brow_color=_tup(brow),
            nose_y=eye_y + rng.uniform(17, 21), nose_w=rng.uniform(5.5, 7.5),
            mouth_y=rng.uniform(28.5, 32), mouth_w=rng.uniform(12.5, 15.5), lip=_tup(lip),
            lip_u=rng.uniform(2.4, 3.4), lip_l=rng.uniform(3.2, 4.6),
            iris=_tup(_IRIS_COLORS[rng.integers(len(_IRIS_COLORS))]),
            clothes=_tup(rng.uniform(30, 220, 3)),
        )


@dataclass
class FaceState:
    """What changes from frame to frame: AU intensities (0..1), expression cues, V/A, eyes."""

    au: np.ndarray                     # (12,) intensities in [0, 1], AU_NAMES order
    extra: np.ndarray                  # (len(EXTRA_NAMES),) intensities in [0, 1]
    valence: float = 0.0
    arousal: float = 0.0
    blink: float = 0.0                 # 1 = lids closed
    gaze: tuple[float, float] = (0.0, 0.0)
    yaw: float = 0.0                   # horizontal shift of the inner features, face units
    talk: float = 0.0                  # small lower-lip movement while speaking

    @classmethod
    def neutral(cls) -> FaceState:
        return cls(np.zeros(len(AU_NAMES)), np.zeros(len(EXTRA_NAMES)))


def _gauss(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))


def template_crop(idn: Identity, scale: float, centre: tuple[float, float], size: int = 112
                  ) -> tuple[float, tuple[float, float]]:
    """(side, centre) in patch pixels of the square whose size x size crop puts the face's eyes,
    nose tip and mouth centre on ALIGN_TEMPLATE (least squares; the face is upright in its patch)."""
    from emenet.face.align import ALIGN_TEMPLATE, similarity_transforms
    cx, cy = centre
    points = np.array([[cx - idn.eye_dx * scale, cy + idn.eye_y * scale],  # the subject's right eye (image left)
                       [cx + idn.eye_dx * scale, cy + idn.eye_y * scale],
                       [cx, cy + idn.nose_y * scale], [cx, cy + idn.mouth_y * scale]])
    affine = similarity_transforms(points[None], ALIGN_TEMPLATE * (size / 112))[0]  # patch -> crop pixels
    s = float(np.hypot(affine[0, 0], affine[1, 0]))
    middle = np.linalg.solve(affine[:, :2], np.array([size / 2, size / 2]) - affine[:, 2])
    return size / s, (float(middle[0]), float(middle[1]))


@dataclass
class FaceRenderer:
    """Draws one identity's face into an RGBA patch (alpha: where the person is).

    `scale` is pixels per face unit; `centre` the face centre in patch pixels; `crop_side` the side
    of the aligned crop (in patch pixels) that the dataset's 112x112 crops cover.
    """

    identity: Identity
    scale: float
    centre: tuple[float, float] = field(init=False)
    size: tuple[int, int] = field(init=False)   # (width, height)
    crop_side: float = field(init=False)
    crop_centre: tuple[float, float] = field(init=False)
    _shade: np.ndarray = field(init=False, repr=False)
    _shade_x: np.ndarray = field(init=False, repr=False)
    _shade_y: np.ndarray = field(init=False, repr=False)
    _blob: np.ndarray = field(init=False, repr=False)
    _base: np.ndarray | None = field(init=False, repr=False, default=None)
    _gain_key: tuple[int, int] | None = field(init=False, repr=False, default=None)
    _gain_map: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        k = self.scale
        w = int(np.ceil(2 * PATCH_HALF_W * k)) // 2 * 2
        h = int(np.ceil((PATCH_BOTTOM - PATCH_TOP) * k)) // 2 * 2
        self.size = (w, h)
        self.centre = (w / 2.0, -PATCH_TOP * k)
        idn = self.identity
        # Aligned crop: the eyes, nose tip and mouth centre on emenet.face.align's template, the
        # alignment that inference applies to detected faces, so training and inference agree.
        self.crop_side, self.crop_centre = template_crop(idn, k, self.centre)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        xu = (xs - self.centre[0]) / k   # face units
        yu = (ys - self.centre[1]) / k
        r = np.sqrt((xu / idn.face_w) ** 2 + (yu / idn.face_h) ** 2)
        shade = 1.0 - 0.22 * np.clip(r, 0, 1.05) ** 3
        for sx in (-1, 1):  # eye sockets darker, cheekbones lighter: the structure of a lit face
            shade -= 0.16 * _gauss(xu, yu, sx * idn.eye_dx, idn.eye_y - 1, idn.eye_w * 1.35, idn.eye_h * 2.3)
            shade += 0.07 * _gauss(xu, yu, sx * (idn.eye_dx + 3), idn.eye_y + 15, 8, 6)
        shade += 0.08 * _gauss(xu, yu, 0, idn.eye_y + 6, 3.0, 9)          # nose bridge highlight
        shade -= 0.10 * _gauss(xu, yu, 0, idn.nose_y + 3, 6, 1.8)         # shadow under the nose
        neck = (yu > idn.face_h * 0.8) & (np.abs(xu) < idn.face_w * 0.6)
        shade[neck] *= 0.82
        # 4 channels: the alpha channel's gain is exactly 1 (and its lighting terms 0)
        self._shade = np.dstack([shade, shade, shade, np.ones_like(shade)]).astype(np.float32)
        # side lighting varies across the face (normalised by its size), flat beyond it
        lx = shade * np.clip(xu / idn.face_w, -1.2, 1.2)
        ly = shade * np.clip(yu / idn.face_h, -1.2, 1.2)
        zero = np.zeros_like(shade)
        self._shade_x = np.dstack([lx, lx, lx, zero]).astype(np.float32)
        self._shade_y = np.dstack([ly, ly, ly, zero]).astype(np.float32)
        g = np.arange(-20, 21, dtype=np.float32)
        self._blob = np.exp(-0.5 * (g[None, :] ** 2 + g[:, None] ** 2) / 49.0)[..., None]  # soft spot, sigma 7 px

    # --- coordinate helpers ---------------------------------------------------------------

    def _px(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Face units -> fixed-point patch pixels, shaped for OpenCV's polygon functions."""
        x = np.asarray(x, np.float64)
        out = np.empty((x.size, 1, 2), np.float64)
        out[:, 0, 0] = x.ravel()
        out[:, 0, 1] = np.ravel(y)
        out *= self.scale * _ONE
        out[:, 0, 0] += self.centre[0] * _ONE
        out[:, 0, 1] += self.centre[1] * _ONE
        return np.rint(out).astype(np.int32)

    # Shapes are drawn opaque (alpha 255) into the RGBA patch; anti-aliased edges blend the alpha
    # channel too, so the silhouette's coverage comes out right.
    def _poly(self, img: np.ndarray, x: np.ndarray, y: np.ndarray, color: Color) -> None:
        cv2.fillPoly(img, [self._px(x, y)], (*color, 255), _AA, _SHIFT)

    def _line(self, img: np.ndarray, x: np.ndarray, y: np.ndarray, color: Color, width: float = 1.0) -> None:
        th = max(1, int(round(width * self.scale)))
        cv2.polylines(img, [self._px(x, y)], False, (*color, 255), th, _AA, _SHIFT)

    def _lines(self, img: np.ndarray, segs: list[tuple[np.ndarray, np.ndarray]], color: Color,
               width: float = 1.0) -> None:
        """Several polylines of one colour in one call (the renderer is bound by call overhead)."""
        pts = self._px(np.concatenate([np.ravel(x) for x, _ in segs]), np.concatenate([np.ravel(y) for _, y in segs]))
        cuts = np.cumsum([np.size(x) for x, _ in segs])[:-1]
        th = max(1, int(round(width * self.scale)))
        cv2.polylines(img, np.split(pts, cuts), False, (*color, 255), th, _AA, _SHIFT)

    def _ellipse(self, img: np.ndarray, cx: float, cy: float, ax: float, ay: float, color: Color,
                 angle: float = 0.0) -> None:
        c = self._px(cx, cy)[0, 0]
        axes = (max(1, int(round(ax * self.scale * _ONE))), max(1, int(round(ay * self.scale * _ONE))))
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, angle, 0, 360, (*color, 255), -1, _AA, _SHIFT)

    # --- the face -------------------------------------------------------------------------

    @functools.cached_property
    def _head_base(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head outline (x, y) and how much each point follows a jaw drop (w)."""
        idn = self.identity
        th = _lin(0, 2 * np.pi, 73)[:-1]
        c, s = np.cos(th), np.sin(th)
        x = idn.face_w * np.sign(c) * np.abs(c) ** (2 / 2.4)
        y = idn.face_h * np.sign(s) * np.abs(s) ** (2 / 2.4)
        low = np.clip(y / idn.face_h, 0, 1)
        x = x * (1 - (0.18 + 0.22 * idn.chin) * low ** 2)            # jaw narrows to the chin
        w = np.clip((y - idn.eye_y) / (idn.face_h - idn.eye_y), 0, 1) ** 1.5
        return x, y, w

    def _head_outline(self, jaw_drop: float) -> tuple[np.ndarray, np.ndarray]:
        x, y, w = self._head_base
        return x, y + jaw_drop * w

    @functools.cached_property
    def _hair_front(self) -> tuple[np.ndarray, Color]:
        """Fixed-point polygon and colour of the hair over the head (the same in every frame)."""
        idn = self.identity
        fw, fh = idn.face_w, idn.face_h
        t = _lin(np.pi * 1.02, np.pi * 1.98, 26)
        grow = {0: 4.5, 1: 5.0, 2: 1.6, 3: 5.5}[idn.hair_style]
        xo = (fw + grow) * np.cos(t)
        yo = (fh + grow) * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / 2.4) - 1
        hairline = -0.66 * fh if idn.hair_style != 2 else -0.72 * fh
        xi = _lin(fw * 0.97, -fw * 0.97, 20)
        bump = 4.0 * np.cos(_lin(-np.pi / 2, np.pi / 2, 20))
        yi = hairline + 0.5 * (xi / fw) ** 4 * fh * 0.55 - (bump if idn.hair_style != 3 else -2.0 * _lin(-1, 1, 20))
        color = idn.hair if idn.hair_style != 2 else _mix(idn.hair, idn.skin, 0.35)
        return self._px(np.concatenate([xo, xi]), np.concatenate([yo, yi])), color

    def _hair(self, img: np.ndarray, back: bool) -> None:
        idn = self.identity
        fw, fh = idn.face_w, idn.face_h
        if back:
            if idn.hair_style == 1:   # long hair falls behind the head and over the shoulders
                t = _lin(np.pi, 2 * np.pi, 24)
                x = np.concatenate([[-fw - 7], (fw + 7) * np.cos(t), [fw + 7]])
                y = np.concatenate([[fh * 1.15], (fh + 8) * np.sin(t) * 1.02, [fh * 1.15]])
                self._poly(img, x, y, idn.hair)
            return
        pts, color = self._hair_front
        cv2.fillPoly(img, [pts], (*color, 255), _AA, _SHIFT)

    def _brows(self, img: np.ndarray, st: FaceState) -> float:
        """Draw both brows; returns the y of the brows' top (for forehead lines)."""
        idn, au, ex = self.identity, st.au, st.extra
        a = st.arousal
        inner_dy = -6.0 * au[AU["AU1"]] + 4.5 * au[AU["AU4"]] + 1.8 * ex[EXTRA["glare"]] - 1.2 * ex[EXTRA["widen"]]
        outer_dy = -6.0 * au[AU["AU2"]] + 1.0 * au[AU["AU4"]] - 1.0 * ex[EXTRA["widen"]] - 0.6 * ex[EXTRA["glare"]]
        inner_dy += -2.0 * a - 2.0 * ex[EXTRA["droop"]]     # sadness: oblique brows, inner ends up
        outer_dy += -2.0 * a + 2.5 * ex[EXTRA["droop"]]
        inner_dx = -2.4 * au[AU["AU4"]]
        t = _lin(0, 1, 9)
        top = idn.eye_y - idn.brow_gap
        for side in (-1, 1):
            x0 = idn.eye_dx - idn.eye_w * 0.95 + inner_dx
            x1 = idn.eye_dx + idn.eye_w * 1.25
            xc = side * (x0 + (x1 - x0) * t) + st.yaw
            arch = 2.6 * np.sin(np.pi * (0.15 + 0.75 * t)) * (1 + 0.5 * au[AU["AU2"]])
            yc = top - arch + (1 - t) * inner_dy + t * outer_dy
            half = idn.brow_th * (0.62 - 0.3 * t)
            x = np.concatenate([xc, xc[::-1]])
            y = np.concatenate([yc - half, (yc + half)[::-1]])
            self._poly(img, x, y, idn.brow_color)
        return top - 2.6 + min(inner_dy, outer_dy)

    def _eyes(self, img: np.ndarray, st: FaceState) -> None:
        idn, au, ex = self.identity, st.au, st.extra
        open_u = 1 + 0.75 * ex[EXTRA["widen"]] + 0.25 * st.arousal - 0.55 * ex[EXTRA["droop"]] \
            - 0.3 * ex[EXTRA["glare"]] - 0.22 * au[AU["AU7"]] - 0.12 * au[AU["AU4"]] - 0.1 * au[AU["AU6"]]
        open_l = 1 + 0.3 * ex[EXTRA["widen"]] - 0.55 * au[AU["AU7"]] - 0.45 * au[AU["AU6"]] \
            - 0.35 * ex[EXTRA["nose_wrinkle"]]
        lid = max(0.0, 1 - st.blink)
        hu = idn.eye_h * max(open_u, 0.15) * lid
        hl = idn.eye_h * 0.8 * max(open_l, 0.15) * max(lid, 0.2)
        t = _lin(-1, 1, 15)
        skin_dark = _mix(idn.skin, (0, 0, 0), 0.45)
        for side in (-1, 1):
            ex_c = side * idn.eye_dx + st.yaw
            ey = idn.eye_y
            x = ex_c + idn.eye_w * t
            tilt = 0.6 * side * t                       # outer corners slightly higher
            yu = ey - tilt - hu * (1 - t ** 2) ** 0.7
            flat = 0.6 * au[AU["AU7"]]                  # AU7 straightens the lower lid
            yl = ey - tilt + hl * ((1 - t ** 2) ** 0.8 * (1 - flat) + flat * (1 - t ** 8))
            # crease above the upper lid; it moves with the lid
            self._line(img, x[2:-2], yu[2:-2] - 2.2 - 0.5 * hu, _mix(idn.skin, (0, 0, 0), 0.3), 0.8)
            if hu + hl > 0.8:
                self._eyeball(img, ex_c, x, yu, yl, st)
            self._line(img, x, yu, (25, 20, 20), 1.1 + 0.2 * (1 - lid))           # lashes
            self._line(img, x[2:-2], yl[2:-2], skin_dark, 0.6)
            # AU6: the cheek pushes up an arc under the eye, and crow's feet at the outer corner
            k6 = au[AU["AU6"]]
            if k6 > 0.05:
                self._line(img, x[3:-2], yl[3:-2] + 2.4 + 0.6 * (1 - t[3:-2] ** 2),
                           _mix(idn.skin, (0, 0, 0), 0.42 * k6), 0.8)
                ox, oy = ex_c + side * (idn.eye_w + 1.5), ey - tilt[-1 if side > 0 else 0]
                ang = np.array([-0.45, 0.0, 0.45])
                dx, dy = side * np.cos(ang) * 4.5, np.sin(ang) * 4.5
                segs = [(np.array([ox, ox + dx[i]]), np.array([oy + dy[i] * 0.3, oy + dy[i]])) for i in range(3)]
                self._lines(img, segs, _mix(idn.skin, (0, 0, 0), 0.45 * k6), 0.6)
            # AU7: a tense fold under the straightened lower lid
            k7 = au[AU["AU7"]]
            if k7 > 0.05:
                self._line(img, x[2:-2], yl[2:-2] + 1.3, _mix(idn.skin, (255, 255, 255), 0.35 * k7), 0.7)

    def _eyeball(self, img: np.ndarray, ex_c: float, x: np.ndarray, yu: np.ndarray, yl: np.ndarray,
                 st: FaceState) -> None:
        """Sclera, iris and pupil clipped to the lids; composed in a small box around the eye."""
        idn = self.identity
        pts = self._px(np.concatenate([x, x[::-1]]), np.concatenate([yu, yl[::-1]]))
        x0, y0 = (pts.reshape(-1, 2).min(0) >> _SHIFT) - 2
        x1, y1 = (pts.reshape(-1, 2).max(0) >> _SHIFT) + 3
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
        if x1 <= x0 or y1 <= y0:
            return
        off = np.array([x0, y0], np.int32) << _SHIFT
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [pts - off], 255, _AA, _SHIFT)
        eye = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
        eye[:] = (238, 236, 230, 255)
        gx = ex_c + 3.0 * st.gaze[0]
        gy = idn.eye_y + 1.5 * st.gaze[1] + 1.2 * st.extra[EXTRA["gaze_down"]]
        r_iris = idn.eye_h * 0.95
        for cx, cy, r, col in ((gx, gy, r_iris, idn.iris), (gx, gy, r_iris * 0.45, (12, 10, 10)),
                               (gx + 0.9, gy - 0.9, 0.7, (250, 250, 250))):
            c = self._px(cx, cy)[0, 0] - off
            rr = max(1, int(round(r * self.scale * _ONE)))
            cv2.circle(eye, (int(c[0]), int(c[1])), rr, (*col, 255), -1, _AA, _SHIFT)
        roi = img[y0:y1, x0:x1]
        m = mask.astype(np.float32) * (1 / 255.0)
        roi[:] = cv2.blendLinear(eye, roi, m, 1 - m)

    def _forehead(self, img: np.ndarray, st: FaceState, brow_top: float) -> None:
        idn, au = self.identity, st.au
        k1, k2, k4 = au[AU["AU1"]], au[AU["AU2"]], au[AU["AU4"]]
        if k1 > 0.05:   # AU1: horizontal lines over the middle of the forehead
            x = _lin(-10, 10, 9) + st.yaw
            y = brow_top - 1.5 * np.cos(_lin(-1.4, 1.4, 9))
            self._lines(img, [(x, y - 6.0), (x, y - 10.5)], _mix(idn.skin, (0, 0, 0), 0.4 * k1), 0.7)
        if k2 > 0.05:   # AU2: lines above the outer brows
            y = brow_top + 1.2 * _lin(-1, 1, 7) ** 2
            self._lines(img, [(side * _lin(12, 27, 7) + st.yaw, y - dy) for side in (-1, 1) for dy in (5.5, 9.5)],
                        _mix(idn.skin, (0, 0, 0), 0.4 * k2), 0.7)
        if k4 > 0.05:   # AU4: vertical furrows between the lowered brows
            yb = idn.eye_y - idn.brow_gap + 2.5
            y = np.array([yb - 6.0, yb - 2, yb + 1.5])
            self._lines(img, [(np.array([sx, sx * 0.7, sx]) + st.yaw, y) for sx in (-2.2, 2.2)],
                        _mix(idn.skin, (0, 0, 0), 0.5 * k4), 0.8)

    def _nose(self, img: np.ndarray, st: FaceState) -> None:
        idn, au, ex = self.identity, st.au, st.extra
        lift = 1.4 * au[AU["AU10"]] + 1.6 * ex[EXTRA["nose_wrinkle"]]
        flare = 1 + 0.25 * au[AU["AU10"]] + 0.15 * ex[EXTRA["glare"]]
        nx = 1.4 * st.yaw
        ny = idn.nose_y - lift
        dark = _mix(idn.skin, (0, 0, 0), 0.55)
        # side of the nose bridge and the wings
        self._line(img, np.array([-2.5, -3.2, -idn.nose_w * 0.8 * flare]) + nx,
                   np.array([idn.eye_y + 5, ny - 5, ny - 1.0]), _mix(idn.skin, (0, 0, 0), 0.22), 0.8)
        for side in (-1, 1):
            self._ellipse(img, nx + side * 2.6 * flare, ny + 0.8, 1.9 * flare, 1.0, dark, angle=side * 15)
        t = _lin(0, 1, 6)
        wing = idn.nose_w * flare - 1.5 * np.sin(np.pi * t)
        self._lines(img, [(nx + side * wing, ny - 2.8 + 3.2 * t) for side in (-1, 1)],
                    _mix(idn.skin, (0, 0, 0), 0.35), 0.8)
        kw = ex[EXTRA["nose_wrinkle"]]
        if kw > 0.05:   # disgust's nose wrinkle (AU9, unlabelled in ABAW)
            x = np.array([-4.0, 0, 4.0]) + 0.6 * st.yaw
            y = np.array([0.8, 0.0, 0.8]) + idn.eye_y + 4.5
            self._lines(img, [(x, y + dy) for dy in (0.0, 2.2, 4.4, 6.6)], _mix(idn.skin, (0, 0, 0), 0.6 * kw), 0.8)

    def _mouth(self, img: np.ndarray, st: FaceState, jaw_drop: float) -> None:
        idn, au, ex = self.identity, st.au, st.extra
        v = st.valence
        k12, k15, k23, k24 = au[AU["AU12"]], au[AU["AU15"]], au[AU["AU23"]], au[AU["AU24"]]
        k10, k25, k26 = au[AU["AU10"]], au[AU["AU25"]], au[AU["AU26"]]
        o = ex[EXTRA["o_mouth"]]
        hw = idn.mouth_w * (1 + 0.22 * k12 + 0.28 * ex[EXTRA["stretch"]] - 0.30 * k23 + 0.06 * k24
                            - 0.05 * k15 - 0.22 * o * k25)
        corner = -5.0 * k12 + 4.5 * k15 - 3.0 * v + 1.0 * ex[EXTRA["stretch"]] + 1.5 * ex[EXTRA["droop"]]
        gap = 3.2 * k25 + 7.0 * k26 * k25 + 0.25 * k26 + 1.5 * o * k25 + 0.25 * st.talk
        thin = max(0.15, 1 - 0.55 * k23 - 0.72 * k24)
        mx = st.yaw * 1.1
        my = idn.mouth_y + 0.35 * jaw_drop
        t = _lin(-1, 1, 21)
        x = mx + hw * t
        body = 1 - t ** 2
        yline = my + corner * t ** 2
        raise10 = 3.2 * k10 * body ** 0.35             # AU10: the upper lip rises, most in its middle
        raise10 = raise10 + 2.5 * ex[EXTRA["nose_wrinkle"]] * np.clip(-t, 0, 1) ** 0.5 * body ** 0.35  # disgust: sneer
        y_ui = yline - 0.5 * gap * body ** 0.8 - raise10
        y_li = yline + 0.5 * gap * body ** 0.8 + 0.4 * jaw_drop * body
        bow = 0.9 * np.exp(-((np.abs(t) - 0.22) / 0.15) ** 2) - 0.4 * np.exp(-(t / 0.1) ** 2)
        y_uo = y_ui - idn.lip_u * thin * body ** 0.55 * (1 + 0.25 * bow) - 0.8 * k10 * body ** 0.35
        y_lo = y_li + idn.lip_l * thin * body ** 0.6
        lip_dark = _mix(idn.lip, (60, 10, 20), 0.35 * k23 + 0.25 * k24)
        if np.max(y_li - y_ui) > 0.3:
            self._poly(img, np.concatenate([x, x[::-1]]), np.concatenate([y_ui, y_li[::-1]]), (45, 18, 22))
            teeth = np.minimum(y_ui + 1.8 + 1.2 * k10, y_li)
            sel = slice(4, -4)
            self._poly(img, np.concatenate([x[sel], x[sel][::-1]]), np.concatenate([y_ui[sel], teeth[sel][::-1]]),
                       (236, 232, 220))
        self._poly(img, np.concatenate([x, x[::-1]]), np.concatenate([y_uo, y_ui[::-1]]), lip_dark)
        self._poly(img, np.concatenate([x, x[::-1]]), np.concatenate([y_li, y_lo[::-1]]),
                   _mix(lip_dark, (255, 255, 255), 0.06))
        self._line(img, x, 0.5 * (y_ui + y_li) if gap < 0.3 else y_ui, _mix(idn.lip, (0, 0, 0), 0.55), 0.7)
        skin_dark = _mix(idn.skin, (0, 0, 0), 0.35)
        for side in (-1, 1):                            # corners (commissures)
            self._ellipse(img, mx + side * (hw + 0.3), my + corner, 0.9, 0.9, _mix(idn.skin, (0, 0, 0), 0.45))
        # nasolabial folds deepen with AU10, AU12 and AU6
        fold = 0.12 + 0.5 * k10 + 0.45 * k12 + 0.15 * au[AU["AU6"]]
        s = _lin(0, 1, 8)
        fx = idn.nose_w + 1.5 + (hw - idn.nose_w + 2.5) * s ** 0.7 + 2.5 * k12 * np.sin(np.pi * s)
        fy = idn.nose_y - 1.5 - 1.2 * k10 + (my + corner - idn.nose_y + 1.5) * s
        self._lines(img, [(side * fx + mx, fy) for side in (-1, 1)],
                    _mix(idn.skin, (0, 0, 0), 0.45 * min(fold, 1)), 0.8)
        if k15 > 0.05:   # AU15: lines running down from the depressed corners
            y = np.array([1.5, 4.5, 7.5]) + my + corner
            self._lines(img, [(mx + side * (hw + np.array([0.5, 1.3, 1.0])), y) for side in (-1, 1)],
                        _mix(idn.skin, (0, 0, 0), 0.45 * k15), 0.7)
        if k24 > 0.05:   # AU24: lips pressed together bulge the skin above and below
            self._line(img, mx + 0.8 * hw * t[4:-4], np.max(y_lo) + 2.2 + 0.8 * t[4:-4] ** 2,
                       _mix(idn.skin, (0, 0, 0), 0.45 * k24), 0.8)
            self._line(img, mx + 0.7 * hw * t[5:-5], np.min(y_uo) - 1.8 - 0.3 * t[5:-5] ** 2,
                       skin_dark if k24 > 0.5 else _mix(idn.skin, (0, 0, 0), 0.25), 0.6)
        if k23 > 0.05:   # AU23: tightened lips show small vertical wrinkles
            segs = [(np.array([mx + hw * tx] * 2), my + corner * tx ** 2 + np.array([-2.0, 2.4]))
                    for tx in (-0.45, -0.15, 0.15, 0.45)]
            self._lines(img, segs, _mix(idn.lip, (0, 0, 0), 0.4 * k23), 0.5)

    def _static_layer(self) -> np.ndarray:
        """Torso, neck, long hair and ears: drawn once per identity, copied every frame."""
        idn = self.identity
        w, h = self.size
        img = np.zeros((h, w, 4), np.uint8)
        img[..., :3] = idn.clothes
        sx = np.array([-PATCH_HALF_W, -PATCH_HALF_W, -idn.face_w * 0.9, idn.face_w * 0.9, PATCH_HALF_W, PATCH_HALF_W])
        sy = np.array([PATCH_BOTTOM, idn.face_h + 38, idn.face_h + 18, idn.face_h + 18, idn.face_h + 38, PATCH_BOTTOM])
        torso = np.zeros((h, w), np.uint8)
        cv2.fillPoly(torso, [self._px(sx, sy)], 255, _AA, _SHIFT)
        img[..., 3] = torso   # the clothes colour is already everywhere; the torso sets the alpha
        self._hair(img, back=True)
        nx = np.array([-idn.face_w * 0.45, -idn.face_w * 0.5, idn.face_w * 0.5, idn.face_w * 0.45])
        ny = np.array([0, idn.face_h + 24, idn.face_h + 24, 0])
        self._poly(img, nx, ny, _mix(idn.skin, (0, 0, 0), 0.15))
        self._poly(img, idn.face_w * 0.55 * _lin(-1, 1, 9),
                   idn.face_h + 20 + 4 * np.cos(_lin(-1.4, 1.4, 9)), idn.clothes)   # collar
        for side in (-1, 1):   # ears
            self._ellipse(img, side * (idn.face_w - 0.5), idn.eye_y + 6, 4.5, 9, _mix(idn.skin, (0, 0, 0), 0.08))
        return img

    def _soft(self, img: np.ndarray, st: FaceState, jaw_drop: float) -> None:
        """Soft shading spots: cheek raise (AU6), blush (valence, happiness), chin boss (AU24)."""
        idn, au = self.identity, st.au
        k6 = au[AU["AU6"]]
        blush = 0.35 * max(st.valence, 0.0) + 0.7 * st.extra[EXTRA["blush"]]
        spots = []
        for side in (-1, 1):
            cx, cy = side * (idn.eye_dx + 2) + st.yaw, idn.eye_y + 15 - 4.0 * k6
            spots.append((cx, cy, (18 * k6, 12 * k6, 10 * k6)))
            spots.append((cx, cy + 3, (22 * blush, -12 * blush, -10 * blush)))
        k24 = au[AU["AU24"]]
        spots.append((st.yaw, idn.mouth_y + 11 + 0.35 * jaw_drop, (-16 * k24, -16 * k24, -14 * k24)))
        for x, y, weight in spots:
            if max(abs(c) for c in weight) > 0.5:
                self._add_blob(img, x, y, np.array(weight, np.float32))

    def _add_blob(self, img: np.ndarray, x: float, y: float, weight: np.ndarray) -> None:
        """Add a soft spot (weight per channel) centred at face units (x, y) into a uint8 image."""
        h, w = img.shape[:2]
        cx = int(round(x * self.scale + self.centre[0]))
        cy = int(round(y * self.scale + self.centre[1]))
        r = self._blob.shape[0] // 2
        x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, w), max(cy - r, 0), min(cy + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            return
        b = self._blob[y0 - cy + r:y1 - cy + r, x0 - cx + r:x1 - cx + r] * np.append(weight, 0).astype(np.float32)
        roi = img[y0:y1, x0:x1]
        roi[:] = cv2.add(roi, b, dtype=cv2.CV_8U)

    def render(self, st: FaceState, light: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Return the RGBA patch (H, W, 4) uint8 for one frame.

        `light` is a (dx, dy) brightness gradient across the face (side lighting): the gain
        changes by about dx from the face centre to its left/right edge.
        """
        idn = self.identity
        if self._base is None:
            self._base = self._static_layer()
        img = self._base.copy()
        jaw_drop = 7.5 * st.au[AU["AU26"]] + 1.0 * st.talk
        # skin tint: warmer with positive valence, flushed in anger, pale in fear and sadness
        v, fl, pa = st.valence, st.extra[EXTRA["flush"]], st.extra[EXTRA["pallor"]]
        skin = (idn.skin[0] * (1 + 0.03 * v + 0.08 * fl - 0.06 * pa),
                idn.skin[1] * (1 - 0.015 * v - 0.08 * fl - 0.01 * pa),
                idn.skin[2] * (1 - 0.03 * v - 0.06 * fl + 0.05 * pa))
        hx, hy = self._head_outline(jaw_drop)
        self._poly(img, hx, hy, skin)
        self._hair(img, back=False)
        brow_top = self._brows(img, st)
        self._forehead(img, st, brow_top)
        self._eyes(img, st)
        self._nose(img, st)
        self._mouth(img, st, jaw_drop)
        self._soft(img, st, jaw_drop)
        return cv2.multiply(img, self._gain(light), scale=1 / _GAIN_ONE)

    def render_crop(self, st: FaceState, size: int = 112, background: Color = (128, 128, 128)) -> np.ndarray:
        """The aligned RGB crop (size x size, uint8) of one state over a flat background: the
        dataset's crop geometry without a video frame, for tests and quick looks."""
        rgba = self.render(st)
        alpha = rgba[..., 3:].astype(np.float32) / 255.0
        rgb = (rgba[..., :3] * alpha + np.array(background, np.float32) * (1 - alpha)).astype(np.uint8)
        k = self.crop_side / size
        m = np.array([[k, 0, self.crop_centre[0] - k * size / 2], [0, k, self.crop_centre[1] - k * size / 2]])
        return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)

    def _gain(self, light: tuple[float, float]) -> np.ndarray:
        """Shading times side lighting as a uint8 map (_GAIN_ONE = 1.0); lighting drifts slowly,
        so the map is rebuilt only when the light moves by a quantisation step."""
        key = (round(light[0] / _LIGHT_STEP), round(light[1] / _LIGHT_STEP))
        if key != self._gain_key:
            gain = cv2.scaleAdd(self._shade_x, key[0] * _LIGHT_STEP, self._shade)
            gain = cv2.scaleAdd(self._shade_y, key[1] * _LIGHT_STEP, gain)
            self._gain_map = cv2.convertScaleAbs(gain, alpha=_GAIN_ONE)
            self._gain_key = key
        return self._gain_map
