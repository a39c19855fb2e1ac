"""The surface-splatting renderer: agreement with the exact compositor on a synthetic surface and on the real
avatar, occlusion between surfaces, background and empty scenes."""
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

import fica.render.surface as surface
from fica.prior.gaussians import GaussianSet
from fica.render.camera import orbit_camera
from fica.render.dispatch import render
from fica.render.projection import project_gaussian_rows
from fica.render.rasterize import rasterize_torch
from fica.render.surface import rasterize_surface
from fica.rotations import quat_to_matrix_rows
from scenes import flat_sphere


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / max(float(((a - b) ** 2).mean()), 1e-12))


def _args(g: GaussianSet, cam, background=(1.0, 1.0, 1.0)):
    return (g.means, g.quats, g.scales, g.opacities, g.colors, cam.viewmat, cam.K, cam.width, cam.height,
            torch.tensor(background))


def plane(z_m: float, half_m: float, color, n: int = 48) -> GaussianSet:
    """An n×n grid of flat splats facing the default camera at depth offset ``z_m``, ``2 half_m`` wide."""
    side = torch.linspace(-half_m, half_m, n)
    y, x = torch.meshgrid(side, side, indexing="ij")
    means = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((n * n,), z_m)], 1)
    spacing = 2 * half_m / (n - 1)
    scales = torch.tensor([0.6 * spacing, 0.6 * spacing, 0.07 * spacing]).expand(n * n, 3).clone()
    quats = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n * n, 4).clone()
    return GaussianSet(means, quats, scales, torch.full((n * n,), 0.99), torch.tensor(color).expand(n * n, 3))


@pytest.mark.parametrize("width, stride", [(160, 1), (401, 2)])
@pytest.mark.parametrize("yaw", [0, 50])
def test_surface_sphere_matches_exact_compositor(width, stride, yaw):
    """Small splats are evaluated at every pixel, wide ones (here ~3.4 px) at every other pixel (odd image
    sizes included)."""
    g = flat_sphere(8000, tangent_scale=0.6, normal_scale=0.07, opacity=0.99, striped=True)
    cam = orbit_camera(yaw, 15, width=width, height=width * 4 // 5)
    projected = project_gaussian_rows(g.means, quat_to_matrix_rows(g.quats), g.scales.T.contiguous(), cam.viewmat,
                                      cam.K, cam.width, cam.height)
    assert surface._sampling_stride(*projected, cam.width, cam.height) == stride
    rgb_exact, alpha_exact = rasterize_torch(*_args(g, cam))
    rgb, alpha = rasterize_surface(*_args(g, cam))
    assert rgb.shape == (cam.height, width, 3) and alpha.shape == (cam.height, width)
    covered = (alpha_exact > 0.01) | (alpha > 0.01)
    assert float(alpha_exact.mean()) > 0.1
    assert float(alpha[0, 0]) == 0.0 and torch.equal(rgb[0, 0], torch.ones(3))  # background
    # measured: 36.2 dB at every pixel, 30.3 dB at every other (the sharp opaque silhouette is interpolated);
    # mean |Δalpha| 0.0016 and 0.0072
    assert _psnr(rgb[covered], rgb_exact[covered]) > (34.0 if stride == 1 else 28.5)
    assert float((alpha - alpha_exact).abs().mean()) < (0.004 if stride == 1 else 0.012)


def test_front_surface_hides_back_surface_completely():
    front = plane(0.03, 0.05, [1.0, 0.0, 0.0])
    back = plane(-0.03, 0.08, [0.0, 0.0, 1.0])
    cam = orbit_camera(0, 0, width=128, height=128)
    rgb, alpha = rasterize_surface(*_args(GaussianSet.concat([back, front]), cam))
    (u0, v0), (u1, v1) = cam.project(torch.tensor([[-0.045, 0.045, 0.03], [0.045, -0.045, 0.03]]))[0].tolist()
    inside_front = rgb[int(v0) + 2:int(v1) - 2, int(u0) + 2:int(u1) - 2]
    assert inside_front.numel() > 0
    assert float(inside_front[..., 2].max()) < 0.01 and float(inside_front[..., 0].min()) > 0.99
    (u0, v0), _ = cam.project(torch.tensor([[-0.075, 0.075, -0.03], [0.0, 0.0, 0.0]]))[0].tolist()
    corner = rgb[int(v0) + 2, int(u0) + 2]  # back plane only
    assert float(corner[2]) > 0.99 and float(corner[0]) < 0.01
    assert float(alpha[int(v0) + 2:-int(v0) - 2, int(u0) + 2:-int(u0) - 2].min()) > 0.99


def test_background_where_nothing_is_drawn():
    background = (0.2, 0.5, 0.9)
    cam = orbit_camera(0, 0, width=96, height=80)
    rgb, alpha = rasterize_surface(*_args(plane(0.0, 0.02, [1.0, 1.0, 0.0]), cam, background))
    assert float(alpha.max()) > 0.99
    assert torch.equal(alpha[:5], torch.zeros(5, 96)) and torch.equal(alpha[:, :5], torch.zeros(80, 5))
    assert torch.allclose(rgb[:5], torch.tensor(background).expand(5, 96, 3))


def test_empty_scene_is_background():
    background = torch.tensor([0.1, 0.2, 0.3])
    empty = GaussianSet(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    cam = orbit_camera(width=40, height=30)
    rgb, alpha = render(empty, cam, background=tuple(background.tolist()), backend="surface")
    assert rgb.shape == (30, 40, 3) and torch.equal(alpha, torch.zeros(30, 40))
    assert torch.allclose(rgb, background.expand(30, 40, 3))


@pytest.fixture(scope="module")
def avatar():
    from fica import FiCAPipeline

    return FiCAPipeline.from_pretrained()("examples/astronaut.jpg").avatar


def test_shares_over_cpu_workers_draw_the_one_share_picture(avatar, monkeypatch):
    """With ``SPLIT_MIN_CORES`` cores and more the splats are drawn in shares, one per worker, each share's
    splats tested against its own depth buffer in the depth pass: isolated pixels move (the astronaut at yaw 0,
    384², three shares: 58.1 dB, mean |Δalpha| 0.00016), the picture does not; one share's sums left out: 27.5 dB.
    """
    cam = orbit_camera(0, 0, width=384, height=384)
    monkeypatch.setattr(surface, "cores", lambda: 1)
    rgb, alpha = avatar.render(cam, backend="surface")
    monkeypatch.setattr(surface, "cores", lambda: surface.SPLIT_MIN_CORES)
    rgb_split, alpha_split = avatar.render(cam, backend="surface")
    assert _psnr(rgb_split, rgb) > 45.0
    assert float((alpha_split - alpha).abs().mean()) < 1e-3


@pytest.mark.parametrize("view", ["yaw0", "yaw45", "portrait"])
def test_real_avatar_matches_exact_compositor(avatar, view):
    """Measured on the astronaut before the hair shell (head region: either render's alpha > 0.01): 33.8, 35.0 and
    33.7 dB; with the hair shell 31.2, 32.2 and 30.8 dB, and since translucent splats reach further
    (``TRANSLUCENT_WEIGHT_SIGMA``) 31.8, 32.8 and 31.5 dB; on today's avatar, with faint splats writing no depth,
    32.7, 33.1 and 32.2 dB; with splats in front of the opaque surface composited over it as a front layer, 33.1,
    33.5 and 32.9 dB (32.7, 33.0 and 31.9 without it, on the same avatar); with smooth skin's wider splats 32.5,
    33.4 and 31.6 dB, and since surface splatting counts the opaque surface's gaps twice 32.5, 33.5 and 31.6
    (mean |Δalpha| 0.0076, 0.0069, 0.0034 -> 0.0067, 0.0061, 0.0031)."""
    if view == "portrait":
        cam, expression = avatar.fitted_camera, avatar.fitted_expression
    else:
        cam, expression = orbit_camera(45 if view == "yaw45" else 0, 0), None
    rgb_exact, alpha_exact = avatar.render(cam, expression, backend="torch")
    rgb, alpha = avatar.render(cam, expression, backend="surface")
    head = (alpha_exact > 0.01) | (alpha > 0.01)
    assert _psnr(rgb[head], rgb_exact[head]) > 31.0
    assert float((alpha - alpha_exact)[head].abs().mean()) < 0.03


@pytest.mark.xfail(strict=True, reason="29.5 dB (28.5 while the cap's slanted cells took the photo's white crown "
                   "and eagle; 31.1 before the hair shell kept the photo's colour with 2x2 detail Gaussians): the "
                   "surface render draws the badge's gold leaves on those detail Gaussians in vertical serrations "
                   "(rows 50-100 of the portrait hold 36% of the error; 30.4 dB with no detail Gaussians); half "
                   "of it lies lower, over the face and the glasses (rows 150-350)")
def test_grace_hopper_portrait_view_matches_exact_compositor():
    """The same bar at the portrait camera of a photo with a cap and grey hair (the avatar from the photo as given)."""
    from fica import FiCAPipeline

    grace = FiCAPipeline.from_pretrained()("examples/grace_hopper.jpg").avatar
    cam, expression = grace.fitted_camera, grace.fitted_expression
    rgb_exact, alpha_exact = grace.render(cam, expression, backend="torch")
    rgb, alpha = grace.render(cam, expression, backend="surface")
    head = (alpha_exact > 0.01) | (alpha > 0.01)
    assert float((alpha - alpha_exact)[head].abs().mean()) < 0.03
    assert _psnr(rgb[head], rgb_exact[head]) > 31.0


def test_animate_uses_surface_backend_on_cpu(avatar):
    from fica.drive.expression import Clip, Expression

    clip = Clip([Expression.neutral()], fps=24)
    frame = next(avatar.animate(clip))
    rgb, _ = avatar.render(None, Expression.neutral(), backend="surface")
    expected = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    assert frame.shape == (512, 512, 3) and np.array_equal(frame, expected)


FACE_REGIONS = ("face", "lips", "eyes", "mouth")
OPAQUE_MIN = 0.995  # alpha of 99 % of the face's pixels, in every renderer: less lets the background through
LOWEST_MIN = 0.98  # ... and of every one (the compositor caps a splat's alpha at 0.99)
JAW_OPEN = {"jawOpen": 0.8, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}


@pytest.fixture(scope="module")
def grace():
    from fica import FiCAPipeline

    return FiCAPipeline.from_pretrained()("examples/grace_hopper.jpg").avatar


@pytest.mark.parametrize("name, yaw, expression", [("astronaut", 0, None), ("astronaut", 45, None),
                                                   ("astronaut", -45, None), ("astronaut", 0, JAW_OPEN),
                                                   ("grace", 0, None), ("grace", 0, JAW_OPEN)])
def test_the_face_is_opaque_in_both_renderers(request, name, yaw, expression):
    """The face (its skin, lips, eyes and an open mouth's cavity: where the compositor shows the face's Gaussians)
    covers the background in surface splatting as in the compositor (256², the face eroded by 2 px). Alpha of the
    1st percentile and the lowest pixel, before surface splatting counted the near side's gaps twice (the closed
    head's far side behind them): astronaut 0.993-0.998 / 0.959-0.994 (the open mouth lowest), Grace Hopper 0.993
    and 0.989 / 0.977 and 0.969 (at 384² the lead saw 0.85 on her face before smooth skin's splats were widened);
    since, 0.9998-1.0 / 0.988-1.0; the compositor 0.9985-0.9991 / 0.991-0.993."""
    from fica.drive.expression import Expression
    from fica.head.model import REGIONS, default_head

    avatar = request.getfixturevalue("avatar" if name == "astronaut" else name)
    identity = avatar.identity
    expression = Expression.from_dict(expression) if expression else None
    g = avatar.gaussians(expression)
    region = default_head().uv_layout(identity.resolution).region.reshape(-1)[identity.texel]
    face = torch.zeros(len(g), 3)
    face[:len(region)] = torch.isin(region, torch.tensor([REGIONS.index(r) for r in FACE_REGIONS]))[:, None].float()
    cam = orbit_camera(yaw, 0, width=256, height=256)
    flags, _ = rasterize_torch(*_args(GaussianSet(g.means, g.quats, g.scales, g.opacities, face), cam, (0, 0, 0)))
    shown = torch.from_numpy(binary_erosion(flags[..., 0].numpy() > 0.99, iterations=2))
    assert int(shown.sum()) > 3000
    lowest = {}
    for backend in ("torch", "surface"):
        alpha = render(g, cam, backend=backend)[1][shown]
        lowest[backend] = (float(alpha.quantile(0.01)), float(alpha.min()))
    print(name, yaw, expression is not None, {k: (round(a, 4), round(b, 3)) for k, (a, b) in lowest.items()})
    assert all(p1 >= OPAQUE_MIN and low >= LOWEST_MIN for p1, low in lowest.values()), lowest


HAIR_VIEWS = [(0, 30), (0, 60), (45, 30), (45, 60), (-45, 30), (-45, 60), (180, 30), (180, 60)]  # yaw, pitch
HAIR_OPAQUE_MIN = 0.99  # alpha of 99 % of the hair's pixels over the head: less greys dark hair over white


@pytest.fixture(scope="module")
def long_hair():
    from fica import FiCAPipeline

    return FiCAPipeline.from_pretrained()("examples/long_hair_clipart.jpg").avatar


def _hair_pixels(avatar, g: GaussianSet, cam, over_head: bool) -> torch.Tensor:
    """Where the compositor shows the hair's Gaussians ``[H, W]`` (bool): the pixels they cover (alpha > 0.99,
    at least 90 % of it theirs) with the head's own surface covering the pixel behind them (``over_head``) or
    not at all (alpha < 0.01), eroded by 3 px."""
    head = len(avatar.identity.positions)  # the prior's order: the head's surface first, then the hair's layers
    flag = torch.zeros(len(g), 3)
    flag[head:, 0] = 1.0
    flag[:head, 1] = 1.0
    flags, covered = rasterize_torch(*_args(GaussianSet(g.means, g.quats, g.scales, g.opacities, flag), cam,
                                            (0, 0, 0)))
    _, under = rasterize_torch(*_args(GaussianSet(g.means[:head], g.quats[:head], g.scales[:head],
                                                  g.opacities[:head], g.colors[:head]), cam))
    behind = under > 0.99 if over_head else under < 0.01
    hair = (flags[..., 0] > 0.9 * covered) & (covered > 0.99) & behind
    return torch.from_numpy(binary_erosion(hair.numpy(), iterations=3))


@pytest.mark.parametrize("name", ["astronaut", "grace", "long_hair"])
def test_the_hair_over_the_head_is_opaque_in_surface_splatting(request, name):
    """The hair over the head (the pixels where the compositor shows the hair's Gaussians in front of the head's
    surface, both covering, eroded by 3 px) hides the background in surface splatting as in the compositor, seen
    from above, the sides and behind (512²): alpha of its 1st percentile >= ``HAIR_OPAQUE_MIN`` and its render
    over white and over black differ by at most 1 % (99th percentile). Before the opaque surface behind a
    translucent layer was drawn (it failed the depth test against the hair in front of it), 1st percentile
    0.88-0.95 on the astronaut and Grace Hopper, 0.96-0.99 on the drawing, 1-12 % of the background through; since,
    0.9999-1.0 and at most 0.01 %. Hair beyond the head: ``test_hair_beyond_the_head_is_opaque_in_surface_splatting``.
    """
    avatar = request.getfixturevalue("avatar" if name == "astronaut" else name)
    measured = []
    for yaw, pitch in HAIR_VIEWS:
        cam = orbit_camera(yaw, pitch, width=512, height=512)
        g = avatar.gaussians(None, cam)
        hair = _hair_pixels(avatar, g, cam, over_head=True)
        assert int(hair.sum()) > 10000
        over_white, alpha = render(g, cam, background=(1.0, 1.0, 1.0), backend="surface")
        over_black, _ = render(g, cam, background=(0.0, 0.0, 0.0), backend="surface")
        through = (over_white - over_black)[hair].abs().amax(-1)
        measured.append((yaw, pitch, round(float(alpha[hair].quantile(0.01)), 4),
                         round(float(through.quantile(0.99)), 4)))
    print(name, measured)
    assert all(p1 >= HAIR_OPAQUE_MIN and through <= 0.01 for _, _, p1, through in measured), measured


@pytest.mark.parametrize("yaw", [90, -90, 180])
def test_hair_beyond_the_head_is_opaque_in_surface_splatting(long_hair, yaw):
    """Long hair hanging below the jaw and over the shoulders, where no head lies behind it (the pixels where the
    compositor shows the hair's Gaussians and the head's surface covers nothing, eroded by 3 px), hides the
    background in surface splatting as in the compositor, seen from both sides and from behind (512²): alpha of
    its 1st percentile >= ``HAIR_OPAQUE_MIN``. While a translucent layer hid the layers behind it (the shell's
    inner layer, the far side of the hanging hair), the shell's nearest layer alone let 5-7 % through: 1st
    percentile 0.935, 0.935 and 0.947 at yaw 90, -90 and 180, in a grid of the splats' gaps; since, 0.994, 0.996
    and 0.994; the compositor's 0.997, 0.998 and 0.997."""
    cam = orbit_camera(yaw, 0, width=512, height=512)
    g = long_hair.gaussians(None, cam)
    hair = _hair_pixels(long_hair, g, cam, over_head=False)
    assert int(hair.sum()) > 10000
    alpha = {backend: float(render(g, cam, backend=backend)[1][hair].quantile(0.01))
             for backend in ("torch", "surface")}
    print(yaw, int(hair.sum()), alpha)
    assert alpha["torch"] >= HAIR_OPAQUE_MIN  # the bar is one the compositor meets
    assert alpha["surface"] >= HAIR_OPAQUE_MIN, alpha
