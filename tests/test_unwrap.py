"""The embedded unwrap stage on the example portraits: landmarks, head fit, dense maps, partial UV maps, and the
mesh rasteriser they rest on."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fica.drive.expression import Expression
from fica.errors import ImageTooSmall, MultipleFaces, NoFaceFound
from fica.head.model import REGIONS, default_head
from fica.render.camera import orbit_camera
from fica.render.mesh import interpolate, rasterize_mesh, shade
from fica.unwrap.dense import rasterize_fit
from fica.unwrap.embedded import EmbeddedUnwrapper
from fica.threads import one_thread
from fica.rotations import gaze_rotation, ypr_from_rotation
from fica.unwrap.fit import R_FRONT, fit_expression, fit_head
from fica.unwrap.landmarks import FACE_OVAL, detect_landmarks, person_mask
from fica.unwrap.uv_unwrap import unwrap_from_dense

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@lru_cache(maxsize=1)
def head():
    return default_head()


@pytest.fixture(scope="module")
def unwrapped(example_image):
    """``unwrapped(name)``: the embedded unwrap of an example and the full fit behind it (cached)."""
    cache = {}

    def run(name: str):
        if name not in cache:
            image = example_image(name)
            out = EmbeddedUnwrapper(head())(image)
            cache[name] = out, fit_head(out.landmarks, image.shape[:2], head())
        return cache[name]
    return run


def uv_sphere(radius_m: float, rings: int, segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed sphere mesh centred at the origin with outward (counter-clockwise) triangles."""
    theta = torch.linspace(0, math.pi, rings + 1)
    phi = torch.linspace(0, 2 * math.pi, segments + 1)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    v = torch.stack([torch.sin(t) * torch.sin(p), torch.cos(t), torch.sin(t) * torch.cos(p)], -1).reshape(-1, 3)
    i, j = torch.meshgrid(torch.arange(rings), torch.arange(segments), indexing="ij")
    a, b = i * segments + j, i * segments + (j + 1) % segments
    c, d = a + segments, b + segments
    faces = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    return v * radius_m, faces


def render_head(expression: dict[str, float], yaw_deg: float = 0.0, pitch_deg: float = 0.0):
    """Lambert render of the neutral-identity head with an expression, and its camera (cached)."""
    return _render_head(tuple(sorted(expression.items())), yaw_deg, pitch_deg)


@lru_cache(maxsize=16)
def _render_head(expression: tuple, yaw_deg: float, pitch_deg: float):
    h = head()
    camera = orbit_camera(yaw_deg, pitch_deg, fov_deg=25.0)
    v = h.deform(expression=Expression.from_dict(dict(expression)).weights)
    with one_thread():
        return shade(v, h.faces, camera, normals=h.vertex_normals(v)), camera


# --- mesh rasteriser ---------------------------------------------------------------------------------------------

def test_rasterised_sphere_depth_matches_ray_intersection():
    vertices, faces = uv_sphere(0.12, 70, 72)  # 10080 triangles
    camera = orbit_camera(0, 0)
    face_index, bary, depth = rasterize_mesh(vertices, faces, camera)
    ys, xs = torch.meshgrid(torch.arange(512) + 0.5, torch.arange(512) + 0.5, indexing="ij")
    K = camera.K
    rays = F.normalize(torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1),
                       dim=-1)
    centre = camera.viewmat[:3, 3]  # the sphere's centre in camera coordinates
    b = (rays * centre).sum(-1)
    disc = b ** 2 - (centre @ centre - 0.12 ** 2)
    hit = disc > 0
    ray_depth = (b - disc.clamp(min=0).sqrt()) * rays[..., 2]
    covered = face_index >= 0
    iou = (covered & hit).sum() / (covered | hit).sum()
    assert iou > 0.995
    inner = covered & (disc > 0.2 * disc.max())
    assert (depth - ray_depth)[inner].abs().max() < 5e-4  # facets of a 70-ring sphere deviate by < 0.3 mm
    assert torch.allclose(bary[covered].sum(-1), torch.ones(int(covered.sum())), atol=1e-5)
    # Perspective-correct barycentrics interpolate camera-space positions exactly onto the rendered depth.
    points = interpolate(vertices, face_index, bary, faces)
    cam_z = points @ camera.viewmat[2, :3] + camera.viewmat[2, 3]
    assert (cam_z - depth)[covered].abs().max() < 1e-5


def test_rasteriser_keeps_the_nearest_surface():
    near, faces = uv_sphere(0.05, 70, 72)
    far = near + torch.tensor([0.0, 0.0, -0.2])  # a sphere behind it, further from the +z camera
    vertices = torch.cat([far, near])
    both = torch.cat([faces, faces + len(near)])
    camera = orbit_camera(0, 0)
    face_index, _, _ = rasterize_mesh(vertices, both, camera)
    centre = face_index[240:272, 240:272]
    assert (centre >= len(faces)).all()  # the near sphere wins where both cover the pixel


def test_shade_is_brightest_facing_the_light():
    vertices, faces = uv_sphere(0.12, 40, 40)
    rgb = shade(vertices, faces, orbit_camera(0, 0))
    assert rgb[0, 0].tolist() == [1.0, 1.0, 1.0]  # background
    centre, rim = rgb[250, 256].mean(), rgb[256, 256 + 60].mean()
    assert centre > rim > 0.1


# --- landmarks ---------------------------------------------------------------------------------------------------

def test_landmarks_found_on_each_photo_and_stylized_variant(example_image, face_image_name):
    image = example_image(face_image_name)
    landmarks = detect_landmarks(image)
    assert landmarks.shape == (478, 3)
    H, W = image.shape[:2]
    assert (landmarks[:, 0] > 0).all() and (landmarks[:, 0] < W).all()
    assert (landmarks[:, 1] > 0).all() and (landmarks[:, 1] < H).all()
    # Upright face: eyes above the mouth, subject's right eye (landmark 33) on the image left.
    assert landmarks[33, 0] < landmarks[263, 0]
    assert landmarks[[33, 263], 1].max() < landmarks[13, 1]


def test_no_face_and_several_faces_raise(example_image):
    with pytest.raises(NoFaceFound, match="No face"):
        detect_landmarks(example_image("no_face_coffee.jpg"))
    with pytest.raises(MultipleFaces, match="2 faces"):
        detect_landmarks(example_image("two_faces.jpg"))


def _group_photo(size: tuple[int, int], people: list[tuple[str, int, int, int]]) -> np.ndarray:
    """``[H, W, 3]`` float: the example portraits ``(name, left, top, width px)`` pasted on a grey wall."""
    from PIL import Image

    wall = Image.new("RGB", size, (90, 100, 110))
    for name, left, top, width in people:
        photo = Image.open(EXAMPLES / name).convert("RGB")
        wall.paste(photo.resize((width, round(photo.height * width / photo.width))), (left, top))
    return np.asarray(wall, dtype=np.float32) / 255


def test_a_group_of_six_asks_for_a_crop_in_one_sentence():
    from fica.unwrap.landmarks import find_face

    people = [("grace_hopper.jpg" if i % 2 == 0 else "astronaut.jpg", 30 + 245 * i, 150 + 60 * (i % 2), 230)
              for i in range(6)]
    with pytest.raises(MultipleFaces) as err:
        find_face(_group_photo((1500, 700), people))
    message = str(err.value)
    assert "faces were found" in message and "crop" in message and message.count(".") == 1


# A group whose subject's face is far larger than the four others' (``_group_photo`` arguments).
DOMINATED_GROUP = ((1500, 1000), [("grace_hopper.jpg", 500, 150, 500), ("astronaut.jpg", 30, 30, 160),
                                  ("astronaut.jpg", 1300, 40, 160), ("grace_hopper.jpg", 40, 780, 150),
                                  ("astronaut.jpg", 1310, 800, 150)])


def test_the_face_that_dominates_a_group_is_used_and_the_note_says_so():
    from fica.unwrap.landmarks import find_face

    face = find_face(_group_photo(*DOMINATED_GROUP))
    centre = face.landmarks[:, :2].mean(0)
    assert 500 < centre[0] < 1000 and 150 < centre[1] < 750, "the landmarks sit on the large face"
    assert float(np.ptp(face.landmarks[:, 0].numpy())) > 150
    assert "5 faces" in face.note and "crop" in face.note


def test_the_only_face_near_the_centre_of_a_group_is_used():
    """Five people of similar size (no face twice as large as another), one of them in the middle: that one. The
    photo is searched in tiles that cut the middle face below its mouth, where the detector also finds a chin."""
    from fica.unwrap.landmarks import find_face

    subject = ("grace_hopper.jpg", 650, 330, 300)
    others = [("astronaut.jpg", 20, 20, 260), ("astronaut.jpg", 1320, 20, 260), ("grace_hopper.jpg", 20, 700, 260),
              ("astronaut.jpg", 1320, 700, 260)]
    face = find_face(_group_photo((1600, 1000), [subject, *others]))
    centre = face.landmarks[:, :2].mean(0)
    assert 650 < centre[0] < 950 and 330 < centre[1] < 680, "the landmarks sit on the middle face"
    assert "5 faces" in face.note and "crop" in face.note


def test_a_face_small_in_a_large_photo_is_found():
    from fica.unwrap.landmarks import find_face

    left, top, width = 1150, 250, 420
    image = _group_photo((1800, 1200), [("astronaut.jpg", left, top, width)])
    landmarks = find_face(image).landmarks
    inside = ((landmarks[:, 0] > left) & (landmarks[:, 0] < left + width)
              & (landmarks[:, 1] > top) & (landmarks[:, 1] < top + width))
    assert inside.all() and float(np.ptp(landmarks[:, 0].numpy())) > 48
    # Same landmarks as on the portrait itself, up to the scale and shift of the paste (within 2 % of the face).
    from PIL import Image

    portrait = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"), dtype=np.float32) / 255
    reference = detect_landmarks(portrait)[:, :2] * (width / portrait.shape[1]) + torch.tensor([left, top])
    face_width = float(np.ptp(reference[:, 0].numpy()))
    assert (landmarks[:, :2] - reference).norm(dim=1).median() < 0.02 * face_width


def test_small_face_raises_image_too_small(example_image):
    image = example_image("grace_hopper.jpg").numpy()
    small = cv2.resize(image, (110, 129), interpolation=cv2.INTER_AREA)  # the face is ~40 px wide
    with pytest.raises(ImageTooSmall, match="pixels wide"):
        detect_landmarks(small)


def test_tight_crop_is_found_and_mapped_back(example_image):
    image = example_image("grace_hopper.jpg")
    full = detect_landmarks(image)
    crop = detect_landmarks(image[150:330, 170:360])  # the face fills the crop
    shifted = crop[:, :2] + torch.tensor([170.0, 150.0])
    assert (shifted - full[:, :2]).norm(dim=1).median() < 3.0


def test_person_mask_covers_the_face_not_the_background(example_image, photo_name):
    image = example_image(photo_name)
    mask = person_mask(image)
    landmarks = detect_landmarks(image)
    inner = mask[landmarks[:, 1].long(), landmarks[:, 0].long()]
    assert inner.mean() > 0.95
    assert mask[:20, :20].mean() < 0.05  # top-left corner: flag / sky / studio background


# --- fit ---------------------------------------------------------------------------------------------------------

def test_fit_reprojection_error_is_under_two_percent_of_face_width(example_image, face_image_name):
    image = example_image(face_image_name)
    landmarks = detect_landmarks(image)
    fit = fit_head(landmarks, image.shape[:2], head())
    assert fit.error_px < 0.02 * fit.face_width_px
    uv, _ = fit.camera.project(head().landmarks(fit.vertices(head())))
    inner = torch.ones(478, dtype=torch.bool)
    inner[list(FACE_OVAL)] = False
    assert ((uv - landmarks[:, :2]).norm(dim=1)[inner] < 0.05 * fit.face_width_px).float().mean() > 0.9


@pytest.mark.parametrize("yaw_deg, pitch_deg", [(0.0, 0.0), (25.0, 0.0), (-20.0, 10.0)])
def test_fit_recovers_the_pose_of_a_rendered_head(yaw_deg, pitch_deg):
    image, camera = render_head({}, yaw_deg, pitch_deg)
    fit = fit_head(detect_landmarks(image), (512, 512), head())
    expected = ypr_from_rotation(R_FRONT @ camera.viewmat[:3, :3])
    assert (fit.rotation_deg - expected).abs()[0] < 4.0  # yaw
    assert (fit.rotation_deg - expected).abs()[1:].max() < 7.0  # pitch, roll (pitch trades with face shape)
    assert fit.expression.max() < 0.35  # measured 0.31 (brow/cheek weights at yaw 25 on an untextured render)


def test_fit_finds_an_open_jaw_and_closed_eyes():
    neutral = fit_head(detect_landmarks(render_head({})[0]), (512, 512), head()).to_expression()
    jaw = fit_head(detect_landmarks(render_head({"jawOpen": 0.7})[0]), (512, 512), head()).to_expression()
    blink = fit_head(detect_landmarks(render_head({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0})[0]), (512, 512),
                     head()).to_expression()
    # Measured: jawOpen 0.63 for a true 0.7, blink 0.28 for a true 1.0 (0.40 before the lid landmarks were moved
    # off the eyeballs onto the lids), neutral blink 0.10, other weights <= 0.1.
    # MediaPipe puts the lids of an untextured render 5 px apart when open (11 px with painted eyes) and 1 px when
    # closed, against 14 px of lid travel in the model, hence the low blink.
    assert jaw["jawOpen"] > 0.45 and jaw["jawOpen"] > neutral["jawOpen"] + 0.35
    closed = 0.5 * (blink["eyeBlinkLeft"] + blink["eyeBlinkRight"])
    assert closed > 0.25 and closed > 0.5 * (neutral["eyeBlinkLeft"] + neutral["eyeBlinkRight"]) + 0.15
    for fitted in (jaw, blink):
        assert fitted["mouthSmileLeft"] < 0.15 and fitted["browInnerUp"] < 0.15


def test_fit_expression_tracks_a_frame_keeping_the_identity():
    h = head()
    first = fit_head(detect_landmarks(render_head({})[0]), (512, 512), h)
    landmarks = detect_landmarks(render_head({"jawOpen": 0.7}, yaw_deg=5.0)[0])
    frame = fit_expression(landmarks, (512, 512), h, first)
    assert frame.expression[17] > 0.4  # jawOpen
    assert frame.identity is first.identity
    assert frame.error_px < 0.02 * frame.face_width_px


def render_gaze(yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """The neutral head with its eyeballs turned by a gaze and painted with a white sclera, a brown iris and a
    black pupil (MediaPipe finds no iris on a plain grey eyeball)."""
    from fica.uv_ops import sphere_centre

    h = head()
    eyes = h.face_region == REGIONS.index("eyes")
    vertices = h.vertices.clone()
    turn = gaze_rotation(yaw_deg, pitch_deg)
    centres = []
    for side in (-1, 1):
        ids = torch.unique(h.faces[eyes])
        ids = ids[h.vertices[ids, 0] * side > 0]
        centre = sphere_centre(vertices[ids])
        vertices[ids] = (vertices[ids] - centre) @ turn.T + centre
        centres.append(centre)
    camera = orbit_camera(0, 0, fov_deg=25.0)
    with one_thread():
        image = shade(vertices, h.faces, camera, normals=h.vertex_normals(vertices))
        face_index, bary, _ = rasterize_mesh(vertices, h.faces, camera)
    points = interpolate(vertices, face_index, bary, h.faces)
    on_eye = (face_index >= 0) & eyes[face_index.clamp(min=0)]
    axis = turn @ torch.tensor([0.0, 0.0, 1.0])
    for centre in centres:
        near = on_eye & ((points - centre).norm(dim=-1) < 0.02)
        angle = torch.acos((F.normalize(points - centre, dim=-1) @ axis).clamp(-1, 1))
        image[near] = torch.tensor([0.95, 0.95, 0.93])
        image[near & (angle < 0.42)] = torch.tensor([0.35, 0.22, 0.12])
        image[near & (angle < 0.18)] = 0.02
    return image


def test_gaze_follows_the_irises():
    fits = {yaw: fit_head(detect_landmarks(render_gaze(yaw, 0.0)), (512, 512), head()) for yaw in (-20.0, 0.0, 20.0)}
    gaze = {yaw: fit.gaze_deg for yaw, fit in fits.items()}
    # Measured: -13.4, -0.6, 15.2 degrees of yaw; pitch within 3 degrees of level.
    assert gaze[20.0][0] > 10 and gaze[-20.0][0] < -10 and abs(gaze[0.0][0]) < 4
    assert all(abs(g[1]) < 5 for g in gaze.values())
    assert torch.equal(fits[20.0].to_expression().gaze, gaze[20.0])


# --- dense maps and unwrapping -----------------------------------------------------------------------------------

def test_frontal_render_of_the_fit_overlaps_the_mediapipe_face_region(unwrapped, photo_name):
    out, fit = unwrapped(photo_name)
    h = head()
    H, W = out.dense.mask.shape
    face_index, _, _ = rasterize_fit(fit, h, (H, W))
    region = torch.where(face_index >= 0, h.face_region[face_index.clamp(min=0)], -1)
    face = torch.isin(region, torch.tensor([REGIONS.index(r) for r in ("face", "lips", "eyes", "mouth")]))
    # MediaPipe's face region: the polygon of its face-oval landmarks, which stops at the upper forehead; the
    # model's face region runs to the hairline, so both are compared below the oval's top.
    import mediapipe as mp

    edges = dict(mp.solutions.face_mesh.FACEMESH_FACE_OVAL)
    order = [next(iter(edges))]
    while len(order) < len(edges):
        order.append(edges[order[-1]])
    polygon = np.zeros((H, W), np.uint8)
    cv2.fillPoly(polygon, [out.landmarks[order, :2].numpy().round().astype(np.int32)], 1)
    oval = torch.from_numpy(polygon).bool()
    below = torch.arange(H)[:, None] >= int(out.landmarks[order, 1].min())
    face, oval = face & below, oval & below
    assert (face & oval).sum() / (face | oval).sum() > 0.8


def test_dense_maps_are_consistent_with_the_fit(unwrapped):
    out, _ = unwrapped("astronaut.jpg")
    dense = out.dense
    on = dense.mask > 0
    assert on.float().mean() > 0.02
    assert dense.uv[on].min() >= 0 and dense.uv[on].max() <= 1
    assert torch.allclose(dense.normal[on].norm(dim=-1), torch.ones(int(on.sum())), atol=1e-4)
    assert (dense.xyz[~on] == 0).all()
    # A pixel's xyz (neutral head frame) projects back near the pixel: the portrait's expression is mild.
    ys, xs = on.nonzero(as_tuple=True)
    pixels, _ = out.camera.project(dense.xyz[ys, xs])
    centres = torch.stack([xs, ys], 1).float() + 0.5
    assert (pixels - centres).norm(dim=1).median() < 3.0


def test_round_trip_texel_pixel_texel(example_image, unwrapped, photo_name):
    image = example_image(photo_name)
    out, fit = unwrapped(photo_name)
    partial, dense = out.partial, out.dense
    R = partial.resolution
    seen = partial.visibility[0] > 0.5
    assert seen.sum() > 0.15 * partial.valid.sum()
    # Where a visible texel projects, the image has the texel's colour and the dense uv points back at the texel.
    geometry = head().uv_layout(R).vertices_to_map(fit.vertices(head()))
    points = geometry[:, seen].T
    pixels, _ = out.camera.project(points)
    col, row = pixels[:, 0].long(), pixels[:, 1].long()
    colour_error = (partial.rgb[:, seen].T - image[row, col]).abs().mean()
    assert colour_error < 0.03
    rows, cols = seen.nonzero(as_tuple=True)
    texel_uv = torch.stack([cols, rows], 1).float().add(0.5) / R
    back = dense.uv[row, col]
    assert ((back - texel_uv).norm(dim=1) * R < 3.0).float().mean() > 0.95


def test_visibility_is_high_on_the_face_and_zero_on_the_back_of_the_head(unwrapped, photo_name):
    partial = unwrapped(photo_name)[0].partial
    layout = head().uv_layout(partial.resolution)
    normal = layout.vertices_to_map(head().vertex_normals(head().vertices))
    frontal = (normal[2] > 0.9) & (layout.region == REGIONS.index("face"))
    back = (normal[2] < -0.5) & (layout.region_mask("scalp", "ears", "neck")[0] > 0)
    assert partial.visibility[0][frontal].mean() > 0.9
    assert partial.visibility[0][back].max() == 0
    assert (partial.rgb[:, back] == 0).all() and (partial.xyz[:, back] == 0).all()
    seen = partial.visibility[0] > 0
    assert torch.allclose(partial.normal[:, seen].norm(dim=0), torch.ones(int(seen.sum())), atol=1e-3)


def test_unwrap_from_dense_agrees_with_texel_unwrap(example_image, unwrapped):
    image = example_image("grace_hopper.jpg")
    out, _ = unwrapped("grace_hopper.jpg")
    splatted = unwrap_from_dense(image, out.dense, out.partial.resolution, camera=out.camera)
    both = (splatted.visibility[0] > 0.5) & (out.partial.visibility[0] > 0.5)
    assert both.sum() > 0.8 * (out.partial.visibility[0] > 0.5).sum()
    assert (splatted.rgb[:, both] - out.partial.rgb[:, both]).abs().mean() < 0.04
    assert (splatted.xyz[:, both] - out.partial.xyz[:, both]).norm(dim=0).median() < 0.003


def test_embedded_unwrapper_outputs(portrait):
    unwrapper = EmbeddedUnwrapper(head(), uv_resolution=128)
    out = unwrapper(portrait)
    assert unwrapper.implementation.startswith("embedded")
    assert out.partial.rgb.shape == (3, 128, 128) and out.partial.valid.shape == (1, 128, 128)
    assert out.fitted_geometry.shape == (3, 128, 128)
    assert out.dense.uv.shape == (512, 512, 2) and out.landmarks.shape == (478, 3)
    assert (out.camera.width, out.camera.height) == (512, 512)
    assert out.expression.weights.shape == (52,)


def test_fitted_head_textured_with_the_partial_map_reproduces_the_photo(example_image, unwrapped, photo_name):
    image = example_image(photo_name)
    out, _ = unwrapped(photo_name)
    grid = (out.dense.uv * 2 - 1)[None]
    rerendered = F.grid_sample(out.partial.rgb[None], grid, align_corners=False)[0].permute(1, 2, 0)
    seen = F.grid_sample(out.partial.visibility[None], grid, align_corners=False)[0, 0] > 0.5
    H, W = seen.shape
    oval = np.zeros((H, W), np.uint8)
    hull = cv2.convexHull(out.landmarks[list(FACE_OVAL), :2].numpy().round().astype(np.int32))
    cv2.fillConvexPoly(oval, hull, 1)
    face = torch.from_numpy(oval).bool() & (out.dense.mask > 0)
    sel = face & seen
    assert sel.sum() > 0.9 * face.sum()
    psnr = -10 * math.log10(float(((rerendered[sel] - image[sel]) ** 2).mean()))
    assert psnr > 26.0  # measured 31.1 (astronaut) and 28.4 dB (Grace Hopper: her face outresolves a 256² chart)


def test_a_face_like_badge_the_detector_does_not_confirm_is_set_aside(example_image, monkeypatch):
    """The face mesh can find a 'face' the face detector does not confirm: Grace Hopper's avatar seen from 20°
    above once stopped with "2 faces were found" because the mesh read her cap's eagle badge as one (the render
    that showed it changes with every avatar, so the mesh's answer is replayed here: her real landmarks, and a
    copy shrunk onto her cap). The avatar is of the detected face, and the note says why."""
    from fica.unwrap import landmarks as lm

    image = example_image("grace_hopper.jpg").numpy()
    face = lm.find_face(image).landmarks.numpy()
    centre = face[:, :2].mean(0)
    badge = face.copy()
    badge[:, :2] = (face[:, :2] - centre) * 0.4 + centre - np.array([0.0, 0.45 * image.shape[0] * 0.5])
    run_mesh = lm._run_face_mesh
    monkeypatch.setattr(lm, "_run_face_mesh", lambda rgb: [badge, *run_mesh(rgb)])
    chosen = lm.find_face(image)
    assert (chosen.landmarks.numpy() == face).all(), "the detected face is used, not the badge"
    assert "does not confirm" in chosen.note
