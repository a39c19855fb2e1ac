"""The splat rasterisers: CPU compositor vs a brute-force reference, geometry of single splats, occlusion,
a head-sized cloud, and gsplat on CUDA."""
import math

import pytest
import torch

from fica.prior.gaussians import GaussianSet
from fica.render.camera import orbit_camera
from scenes import flat_sphere

from fica.render.dispatch import render
from fica.render.gsplat_cuda import rasterize_gsplat
from fica.render.projection import project_gaussians
from fica.render.rasterize import rasterize_torch


def brute_force(means, quats, scales, opacities, colors, viewmat, K, width, height, background):
    """Every Gaussian at every pixel, nearest first, with gsplat's rules. Projection from gsplat's torch code.

    Returns rgb [H, W, 3], alpha [H, W] and where gsplat's early stop ended a pixel [H, W] (bool).
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    _, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmat[None], K[None], width, height)
    means2d, depths, conics = means2d[0], depths[0], conics[0]
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    T = torch.ones(height, width)
    rgb = torch.zeros(height, width, 3)
    live = torch.ones(height, width, dtype=torch.bool)
    for i in torch.argsort(depths).tolist():
        if depths[i] <= 0.01:
            continue
        dx, dy = xs - means2d[i, 0], ys - means2d[i, 1]
        a, b, c = conics[i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = (opacities[i] * torch.exp(-sigma)).clamp(max=0.999)
        use = live & (alpha >= 1 / 255)
        T_next = T * (1 - alpha)
        stop = use & (T_next <= 1e-4)
        live &= ~stop
        use &= ~stop
        rgb += torch.where(use[..., None], (alpha * T)[..., None] * colors[i], 0.0)
        T = torch.where(use, T_next, T)
    return rgb + T[..., None] * background, 1 - T, ~live


def random_scene(seed: int, n: int, opaque: bool):
    """n random Gaussians in front of the default camera."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([0.3, 0.2, 0.3])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.03 + 0.002
    opacities = torch.ones(n) if opaque else torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    return means, quats, scales, opacities, colors


def stacked_layers(seed: int, layers: int = 3, side: int = 10):
    """Jittered grids of opaque Gaussians in planes one behind the other: most pixels saturate."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.linspace(-0.12, 0.12, side), torch.linspace(-0.09, 0.09, side),
                                      indexing="xy"), -1).reshape(-1, 2)
    means = torch.cat([torch.cat([grid, torch.full((len(grid), 1), 0.05 * k)], 1) for k in range(layers)])
    n = len(means)
    means = means + 0.004 * torch.randn(n, 3, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.01 + 0.012
    return means, torch.randn(n, 4, generator=g), scales, torch.ones(n), torch.rand(n, 3, generator=g)


@pytest.mark.parametrize("scene", [random_scene(0, 60, False), random_scene(1, 60, True), stacked_layers(2)],
                         ids=["translucent", "opaque", "stacked"])
def test_torch_rasteriser_matches_brute_force_reference(scene):
    cam = orbit_camera(20, 10, width=70, height=52)
    background = torch.tensor([0.2, 0.5, 0.9])
    rgb, alpha = rasterize_torch(*scene, cam.viewmat, cam.K, cam.width, cam.height, background)
    rgb_ref, alpha_ref, _ = brute_force(*scene, cam.viewmat, cam.K, cam.width, cam.height, background)
    assert rgb.shape == (52, 70, 3) and alpha.shape == (52, 70)
    assert alpha_ref.mean() > 0.2  # the scene really covers the image
    assert (rgb - rgb_ref).abs().max() < 1e-4
    assert (alpha - alpha_ref).abs().max() < 1e-4


def test_camera_inside_the_cloud_matches_reference():
    """Gaussians behind the camera, next to it (huge footprints) and in front, at once."""
    cam = orbit_camera(10, 5, width=64, height=48, distance_m=0.16)
    scene = random_scene(7, 200, False)
    rgb, alpha = rasterize_torch(*scene, cam.viewmat, cam.K, 64, 48, torch.zeros(3))
    rgb_ref, alpha_ref, _ = brute_force(*scene, cam.viewmat, cam.K, 64, 48, torch.zeros(3))
    assert alpha_ref.mean() > 0.5
    assert (rgb - rgb_ref).abs().max() < 1e-4 and (alpha - alpha_ref).abs().max() < 1e-4


def test_stacked_scene_exercises_gsplats_early_stop():
    cam = orbit_camera(20, 10, width=70, height=52)
    _, _, stopped = brute_force(*stacked_layers(2), cam.viewmat, cam.K, 70, 52, torch.zeros(3))
    assert stopped.float().mean() > 0.2


def test_projection_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    cam = orbit_camera(-35, 15, width=96, height=80)
    means, quats, scales, _, _ = random_scene(3, 200, False)
    means2d, _, conics, depths = project_gaussians(means, quats, scales, cam.viewmat, cam.K, 96, 80)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    _, ref_means2d, ref_depths, ref_conics, _ = _fully_fused_projection(means, covars, cam.viewmat[None],
                                                                      cam.K[None], 96, 80)
    assert torch.allclose(means2d, ref_means2d[0], atol=1e-4)
    assert torch.allclose(depths, ref_depths[0], atol=1e-6)
    assert torch.allclose(conics, ref_conics[0], rtol=1e-4, atol=1e-6)


def test_single_isotropic_gaussian_lands_at_projected_pixel_with_expected_footprint():
    cam = orbit_camera(width=128, height=128)
    point = torch.tensor([[0.012, -0.007, 0.03]])
    scale_m, opacity = 0.002, 0.8
    rgb, alpha = rasterize_torch(point, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), scale_m),
                                 torch.tensor([opacity]), torch.tensor([[1.0, 0.0, 0.0]]),
                                 cam.viewmat, cam.K, 128, 128, torch.zeros(3))
    centre, depth = cam.project(point)
    sigma2 = (cam.K[0, 0] * scale_m / depth[0]) ** 2 + 0.3  # px², with gsplat's low-pass dilation
    ys, xs = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    centroid = torch.stack([(alpha * xs).sum(), (alpha * ys).sum()]) / alpha.sum()
    assert torch.allclose(centroid, centre[0], atol=0.02)
    expected = opacity * torch.exp(-0.5 * ((xs - centre[0, 0]) ** 2 + (ys - centre[0, 1]) ** 2) / sigma2)
    expected = torch.where(expected >= 1 / 255, expected, 0.0)
    assert (alpha - expected).abs().max() < 1e-4
    covered = (alpha > 0).sum().item()  # pixels inside the ellipse where alpha >= 1/255
    assert abs(covered - math.pi * 2 * math.log(255 * opacity) * sigma2) < 0.05 * covered
    assert torch.allclose(rgb[..., 0], alpha, atol=1e-6) and rgb[..., 1:].abs().max() < 1e-6


def test_nearer_gaussian_occludes_farther_one_whatever_the_input_order():
    cam = orbit_camera(width=64, height=64)
    means = torch.tensor([[0.0, 0.0, 0.05], [0.004, 0.0, -0.05]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(2, 4)
    scales = torch.full((2, 3), 0.03)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # red, blue
    args = (cam.viewmat, cam.K, 64, 64, torch.ones(3))
    rgb, _ = rasterize_torch(means, quats, scales, torch.ones(2), colors, *args)
    rgb_swapped, _ = rasterize_torch(means.flip(0), quats, scales, torch.ones(2), colors.flip(0), *args)
    assert torch.allclose(rgb, rgb_swapped, atol=1e-6)
    assert rgb[32, 32, 0] > 0.98 and rgb[32, 32, 2] < 0.02  # red is nearer
    means_blue_front = means * torch.tensor([1.0, 1.0, -1.0])
    rgb, _ = rasterize_torch(means_blue_front, quats, scales, torch.ones(2), colors, *args)
    assert rgb[32, 32, 2] > 0.98 and rgb[32, 32, 0] < 0.02


def test_gaussians_behind_the_camera_or_empty_sets_leave_the_background():
    cam = orbit_camera(width=32, height=24)
    background = torch.tensor([0.1, 0.7, 0.3])
    behind = torch.tensor([[0.0, 0.0, 2.0]])  # the camera sits at z = 0.95 looking toward -z
    for means in (behind, torch.zeros(0, 3)):
        n = len(means)
        rgb, alpha = rasterize_torch(means, torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), torch.full((n, 3), 0.05),
                                     torch.ones(n), torch.zeros(n, 3), cam.viewmat, cam.K, 32, 24, background)
        assert alpha.abs().max() == 0
        assert torch.allclose(rgb, background.expand(24, 32, 3))


def test_head_sized_cloud_renders_a_filled_disc_of_the_right_size_and_colour():
    cam = orbit_camera()  # frontal, 512²
    rgb, alpha = render(flat_sphere(60000), cam)
    f, distance = cam.K[0, 0].item(), cam.center.norm().item()
    radius_px = f * 0.1 / math.sqrt(distance ** 2 - 0.1 ** 2)  # silhouette of a 0.1 m sphere
    mask = alpha > 0.5
    assert abs(mask.sum().item() - math.pi * radius_px ** 2) < 0.02 * math.pi * radius_px ** 2
    ys, xs = torch.meshgrid(torch.arange(512) + 0.5, torch.arange(512) + 0.5, indexing="ij")
    assert abs(xs[mask].mean() - 256) < 0.5 and abs(ys[mask].mean() - 256) < 0.5
    inner = (xs - 256) ** 2 + (ys - 256) ** 2 < (0.9 * radius_px) ** 2
    assert alpha[inner].min() > 0.99  # no holes
    # The middle of the disc faces the camera: normal (0, 0, 1) -> colour (0.5, 0.5, 1).
    assert torch.allclose(rgb[250:262, 250:262].mean((0, 1)), torch.tensor([0.5, 0.5, 1.0]), atol=0.02)
    outside = (xs - 256) ** 2 + (ys - 256) ** 2 > (radius_px + 6) ** 2
    assert torch.allclose(rgb[outside], torch.ones(3), atol=1e-6)


def test_splitting_tiles_over_cpu_workers_changes_no_pixel(monkeypatch):
    import fica.render.rasterize as rasterize

    cam = orbit_camera(25, -10, width=256, height=256)
    gaussians = flat_sphere(20000)
    threads = torch.get_num_threads()
    monkeypatch.setattr(rasterize, "cores", lambda: 3)
    rgb_split, alpha_split = render(gaussians, cam)
    monkeypatch.setattr(rasterize, "cores", lambda: 1)
    rgb, alpha = render(gaussians, cam)
    assert torch.equal(rgb, rgb_split) and torch.equal(alpha, alpha_split)
    assert torch.get_num_threads() == threads  # the caller's torch threads are restored


def test_render_picks_the_torch_backend_on_cpu_and_rejects_unknown_backends():
    cam = orbit_camera(width=48, height=40)
    means, quats, scales, opacities, colors = random_scene(4, 30, False)
    gaussians = GaussianSet(means, quats, scales, opacities, colors)
    rgb, alpha = render(gaussians, cam, background=(0.0, 0.0, 0.0))
    rgb_ref, alpha_ref = rasterize_torch(means, quats, scales, opacities, colors, cam.viewmat, cam.K, 48, 40,
                                         torch.zeros(3))
    assert torch.equal(rgb, rgb_ref) and torch.equal(alpha, alpha_ref)
    with pytest.raises(ValueError):
        render(gaussians, cam, backend="opengl")


@pytest.mark.gpu
def test_torch_and_gsplat_agree_on_a_small_scene():
    cam = orbit_camera(20, 10, width=70, height=52)
    background = torch.tensor([0.2, 0.5, 0.9])
    scene = random_scene(5, 300, True)
    rgb, alpha = rasterize_torch(*scene, cam.viewmat, cam.K, cam.width, cam.height, background)
    rgb_g, alpha_g = rasterize_gsplat(*(x.cuda() for x in scene), cam.viewmat.cuda(), cam.K.cuda(), cam.width,
                                      cam.height, background.cuda())
    assert (rgb - rgb_g.cpu()).abs().max() < 1e-3
    assert (alpha - alpha_g.cpu()).abs().max() < 1e-3


@pytest.mark.gpu
def test_render_uses_gsplat_for_cuda_tensors():
    cam = orbit_camera(width=128, height=128)
    gaussians = flat_sphere(5000)
    rgb, alpha = render(gaussians.to("cuda"), cam)
    rgb_cpu, alpha_cpu = render(gaussians, cam)
    assert rgb.is_cuda and (rgb.cpu() - rgb_cpu).abs().mean() < 1e-3
