"""The learned networks and stages in tiny configurations: shapes, save/load, and the wiring around them."""
from __future__ import annotations

import pytest
import torch

from fica.models.codec_prior import CodecPrior
from fica.models.dense_vit import DenseViT
from fica.models.uv_dit import UVDiT
from fica.models.uv_refiner import MAP_CHANNELS, UVRefiner
from fica.train import dense, diffusion, prior, refiner


def tiny(name: str):
    torch.manual_seed(0)
    return {"dense": lambda: DenseViT(**dense.TINY_CONFIG), "dit": lambda: UVDiT(**diffusion.TINY_DIT),
            "refiner": lambda: UVRefiner(**refiner.TINY_CONFIG, feature_dim=dense.TINY_CONFIG["hidden_size"]),
            "prior": lambda: CodecPrior(**prior.TINY_CONFIG)}[name]().eval()


def example_inputs(name: str, batch: int = 2) -> tuple:
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    if name == "dense":
        return (torch.rand(batch, 3, 64, 48, generator=g),)
    if name == "dit":
        return (r(batch, 4, 16, 16), r(batch, 12, 16, 16), torch.tensor([900.0, 10.0][:batch]),
                torch.tensor([0, 1][:batch]), r(batch, 16))
    if name == "refiner":
        return r(batch, MAP_CHANNELS, 32, 32), r(batch, 48, 64), r(batch, 48, 64)
    return r(batch, 7, 32, 32), torch.rand(batch, 55, generator=g), r(batch, 3), r(batch, 2)


EXPECTED_SHAPES = {"dense": (2, 9, 64, 48), "dit": (2, 4, 16, 16), "refiner": (2, 6, 32, 32), "prior": (2, 14, 32, 32)}


@pytest.mark.parametrize("name", list(EXPECTED_SHAPES))
def test_forward_shapes(name):
    with torch.no_grad():
        assert tuple(tiny(name)(*example_inputs(name)).shape) == EXPECTED_SHAPES[name]


@pytest.mark.parametrize("name", list(EXPECTED_SHAPES))
def test_save_then_load_gives_identical_outputs(name, tmp_path):
    model = tiny(name)
    for p in model.parameters():  # zero-initialised output layers would make the comparison trivial
        p.data.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / name)
    assert any((tmp_path / name).glob("*.safetensors"))
    loaded = type(model).from_pretrained(tmp_path / name).eval()
    with torch.no_grad():
        a, b = model(*example_inputs(name)), loaded(*example_inputs(name))
    assert a.abs().max() > 0
    assert torch.equal(a, b)


def test_dense_features_are_one_token_per_patch():
    model = tiny("dense")
    tokens = model.features(torch.rand(1, 3, 64, 48))
    cfg = dense.TINY_CONFIG
    assert tokens.shape == (1, (64 // cfg["patch_size"]) * (48 // cfg["patch_size"]), cfg["hidden_size"])


def test_dit_domain_token_and_image_embedding_change_the_velocity():
    model = tiny("dit")
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    x, c, t, _, e = example_inputs("dit", 1)
    with torch.no_grad():
        texture = model(x, c, t, torch.tensor([0]), e)
        geometry = model(x, c, t, torch.tensor([1]), e)
        unconditional = model(x, c, t, torch.tensor([0]), None)
    assert (texture - geometry).abs().mean() > 1e-4
    assert (texture - unconditional).abs().mean() > 1e-4


def test_flow_sampling_is_seeded_and_guidance_moves_it():
    from fica.complete.learned import flow_sample

    model = tiny("dit")
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    _, scheduler = diffusion.tiny_components()[1:]
    _, condition, _, _, embeds = example_inputs("dit", 1)

    def run(seed, guidance):
        with torch.no_grad():
            return flow_sample(model, scheduler, condition, embeds, "texture", steps=4, guidance_scale=guidance,
                               generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0, 2.0), run(0, 2.0))
    assert not torch.equal(run(0, 2.0), run(1, 2.0))
    assert (run(0, 2.0) - run(0, 1.0)).abs().mean() > 1e-4


def test_untrained_refiner_is_the_identity():
    with torch.no_grad():
        assert tiny("refiner")(*example_inputs("refiner")).abs().max() == 0


def test_camera_is_recovered_from_dense_correspondences():
    from fica.render.camera import orbit_camera
    from fica.unwrap.learned import solve_camera

    g = torch.Generator().manual_seed(0)
    truth = orbit_camera(25.0, -8.0, width=384, height=512, distance_m=1.05)
    points = torch.randn(800, 3, generator=g) * torch.tensor([0.08, 0.11, 0.08])
    pixels = truth.project(points)[0] + 0.3 * torch.randn(800, 2, generator=g)
    solved = solve_camera(points, pixels, 384, 512)
    assert (solved.viewmat - truth.viewmat).abs().max() < 5e-3
    assert (solved.project(points)[0] - pixels).norm(dim=1).mean() < 0.6


def test_identity_fit_from_true_dense_maps_matches_the_true_head():
    from fica.head.model import default_head
    from fica.train.synthetic import make_dataset
    from fica.unwrap.learned import fit_identity

    head = default_head()
    s = make_dataset(1, seed=3, max_yaw_deg=5.0)[0]
    coefficients = fit_identity(s.dense, head)
    true_vertices, template = head.deform(identity=s.identity), head.vertices
    fitted = head.deform(identity=coefficients)
    error_fit = (fitted - true_vertices).norm(dim=1).mean()
    error_template = (template - true_vertices).norm(dim=1).mean()
    assert error_fit < 0.5 * error_template


def test_learned_unwrapper_with_true_dense_maps_recovers_camera_and_head(monkeypatch):
    """The stage around the network: given perfect dense maps it finds the camera and the identity."""
    from fica.head.model import default_head
    from fica.train.synthetic import make_dataset
    from fica.unwrap.learned import LearnedUnwrapper

    head = default_head()
    s = make_dataset(1, seed=4)[0]
    stage = LearnedUnwrapper(tiny("dense"), uv_resolution=64)
    monkeypatch.setattr(stage, "dense", lambda image: s.dense)
    out = stage(s.image)
    assert (out.camera.viewmat - s.camera.viewmat).abs().max() < 0.03  # the expression moves some pixels
    truth = head.uv_layout(64).vertices_to_map(head.deform(identity=s.identity))
    template = head.uv_layout(64).vertices_to_map(head.vertices)
    assert (out.fitted_geometry - truth).norm(dim=0).mean() < 0.5 * (template - truth).norm(dim=0).mean()
    seen = out.partial.visibility[0] > 0.5
    assert int(seen.sum()) > 200
    assert (out.partial.rgb - s.partial.rgb).abs().amax(0)[seen].max() < 1e-4


def test_untrained_learned_prior_leaves_the_neutral_surface_where_it_is_whatever_the_expression():
    """Only the decoder moves Gaussians (no blendshapes or head turn outside it), and its output layer starts at
    zero: an untrained prior is the identity's neutral surface for every expression."""
    from fica.drive.expression import Expression
    from fica.head.model import default_head
    from fica.maps import CompleteUV
    from fica.prior.learned import LearnedPrior

    head = default_head()
    layout = head.uv_layout(32)
    maps = CompleteUV(texture=torch.full((3, 32, 32), 0.5) * layout.valid,
                      geometry=layout.vertices_to_map(head.vertices), valid=layout.valid)
    stage = LearnedPrior(tiny("prior"))
    identity = stage.encode(maps)
    neutral = stage.decode(identity, Expression.neutral())
    assert len(neutral) == int(layout.valid.sum())
    assert torch.allclose(neutral.means, maps.geometry.permute(1, 2, 0)[layout.valid[0] > 0], atol=1e-6)
    assert torch.allclose(neutral.quats.norm(dim=1), torch.ones(len(neutral)), atol=1e-5)
    jaw = Expression.from_dict({"jawOpen": 1.0}, rotation_deg=(30.0, 0.0, 0.0))
    moved = stage.decode(identity, jaw)
    assert torch.equal(moved.means, neutral.means)
    # The same stage with trained-looking weights: the decoder's output must reach the Gaussians (a stage that
    # dropped it would pass everything above).
    for p in stage.model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    identity = stage.encode(maps)
    decoded = stage.decode(identity, Expression.neutral())
    assert (decoded.means - neutral.means).norm(dim=1).mean() > 1e-4
    assert (decoded.colors - neutral.colors).abs().mean() > 1e-3
    assert not torch.equal(stage.decode(identity, jaw).means, decoded.means), "the expression must reach the means"

