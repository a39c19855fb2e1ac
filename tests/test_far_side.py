"""The far side of a turned face (issue 7): the cycle portrait -> avatar -> yaw-45° render -> avatar -> frontal
render, compared with the first avatar's frontal render inside the face (``fica.cycle``), and the registration of
the turned render's head fit that the second avatar's texture is sampled through."""
from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn.functional as F

from fica import FiCAPipeline
from fica.cycle import far_side_cycle, turned_registration
from fica.head.model import default_head
from fica.maps import Source
from fica.render.camera import orbit_camera
from fica.rotations import ypr_from_rotation
from fica.unwrap.fit import R_FRONT, fit_head
from fica.unwrap.landmarks import detect_landmarks

PORTRAITS = ("astronaut.jpg", "grace_hopper.jpg", "grace_hopper_smooth.jpg")
CYCLES = [(name, yaw) for name in PORTRAITS for yaw in (45, -45)]
PHOTOS = ("astronaut.jpg", "grace_hopper.jpg")  # the two real faces (the variants repeat Grace Hopper's)
# A face texel sampled this far (fraction of the face width, ~7 px of a 225 px face) from its place blurs an eye
# corner or a lip line into its neighbour, and the mirrored far side doubles it.
REGISTRATION_BAR = 0.03


@pytest.fixture(scope="module")
def pipe() -> FiCAPipeline:
    return FiCAPipeline.from_pretrained()


@pytest.fixture(scope="module")
def cycles(pipe, example_image) -> dict:
    return {(name, yaw): far_side_cycle(pipe, example_image(name).numpy(), yaw) for name, yaw in CYCLES}


@pytest.fixture(scope="module")
def gaps(cycles) -> dict:
    return {key: cycle.gap_db for key, cycle in cycles.items()}


@pytest.fixture(scope="module")
def rebuilt(pipe, cycles) -> dict:
    """Avatar B of each photo's cycles: A's turned render (over white) rebuilt as a portrait."""
    return {key: pipe(cycle.turned.clamp(0, 1).numpy()) for key, cycle in cycles.items() if key[0] in PHOTOS}


@pytest.fixture(scope="module")
def firsts(pipe, example_image) -> dict:
    """Avatar A of each photo (its pipeline output)."""
    return {name: pipe(example_image(name).numpy()) for name in PHOTOS}


@pytest.fixture(scope="module")
def misregistration(firsts) -> dict:
    return {(name, yaw): turned_registration(first, yaw) for name, first in firsts.items() for yaw in (45, -45)}


def _fitted_pitch_deg(first, yaw_deg: float, pitch_deg: float, size: int = 384) -> tuple[float, float]:
    """(fitted, true) head pitch in degrees when ``first``'s avatar is rendered by the orbit camera at
    (yaw, pitch) and the head is fitted to that render; the true one is the pitch of the camera's head rotation."""
    camera = orbit_camera(yaw_deg, pitch_deg, width=size, height=size)
    image, _ = first.avatar.render(camera)
    fit = fit_head(detect_landmarks(image.clamp(0, 1).cpu().numpy()), (size, size), default_head())
    return float(fit.rotation_deg[1]), float(ypr_from_rotation(R_FRONT @ camera.viewmat[:3, :3])[1])


def test_a_turned_portrait_s_fit_registers_its_face_within_3_percent_of_the_face_width(misregistration):
    """Median over both photos at ±45°: 1.55% (1.6% before the turned fit's pitch prior, 2.5% before the near
    half's features and the Cauchy weights followed the turn; 4.7% before the fit trusted the featureless landmarks
    less on turned faces: Grace Hopper 7.5% / 6.0%, her fitted head 7-10% too big and shifted)."""
    assert statistics.median(misregistration.values()) <= REGISTRATION_BAR, misregistration


def test_every_turned_portrait_s_fit_registers_within_3_percent(misregistration):
    """The astronaut 1.5% / 1.4% at +45° / -45°, Grace Hopper 1.6% / 2.3% (1.7% / 2.5% while her turned fits
    pitched 3-5° down, before the pitch prior; 3.7% / 3.1% while the fit trusted the near half's eye and
    brow landmarks, which MediaPipe drags outward on her turned render, the more the farther from the midline,
    and its Cauchy weights kept the frontal scale)."""
    assert max(misregistration.values()) <= REGISTRATION_BAR, misregistration


def test_a_level_turned_portrait_s_fit_keeps_its_head_level(firsts):
    """MediaPipe's landmarks on a turned face can pitch the whole face: Grace Hopper's avatar at ±45° from level
    was fitted 3.4 / 5.1° pitched down (every landmark group agreeing), so its texture was sampled off. With the
    turned fit's pitch prior (``fica.unwrap.fit.TURNED_PITCH_PRIOR``) no photo's level turn is fitted more than
    4.5° off: at 384² Grace Hopper 2.2 / 3.3°, the astronaut 1.8 / 0.2° (without it 3.4 / 5.1° and 2.2 / 0.1°)."""
    errors = {}
    for name, first in firsts.items():
        for yaw in (45, -45):
            fitted, truth = _fitted_pitch_deg(first, yaw, 0.0)
            errors[(name, yaw)] = round(fitted - truth, 1)
    assert max(map(abs, errors.values())) <= 4.5, errors


def test_a_turned_portrait_s_real_nod_still_shows(firsts):
    """The pitch prior must not level a head that is really pitched: between the photos' avatars seen at ±45° from
    10° above and from 10° below, the fitted pitch changes by at least 40% of the true change (47-65% with the
    prior, 84-110% without it; a prior 5x stronger keeps 7-21%)."""
    kept = {}
    for name, first in firsts.items():
        for yaw in (45, -45):
            (up, up_true), (down, down_true) = (_fitted_pitch_deg(first, yaw, p) for p in (10.0, -10.0))
            kept[(name, yaw)] = round((up - down) / (up_true - down_true), 2)
    assert min(kept.values()) >= 0.4, kept


@pytest.mark.xfail(strict=True, reason="issue 7 bar not reached, and out of reach of any completion from the seen "
                   "half: median gap over the photos 4.1 dB (astronaut +45° 10.2, -45° 6.7 dB; Grace Hopper 1.6, "
                   "-0.5 dB). Mirroring the astronaut's TRUE texture, perfectly registered and lit as A, gives 16.1 dB "
                   "on the completed half against 25-26 dB for the seen one (her fringe, smile and light are "
                   "one-sided); the pipeline's completed half is 15.5 / 18.6 dB (16.6 / 17.0 before the refiner "
                   "stopped taking glare from the silhouette's glimpses), around that ceiling. Registering the "
                   "turned fit better sharpens the seen half more than the completed one (the gap was 3.8 dB before "
                   "the turned fit's pitch prior). "
                   "test_the_completion_comes_within_2_db_of_a_perfect_mirror is the reachable reading")
def test_completed_half_is_within_2_db_of_the_seen_half(gaps):
    photos = [v for k, v in gaps.items() if k[0] in PHOTOS]
    assert statistics.median(photos) <= 2.0, gaps


def test_a_near_symmetric_face_completes_within_3_db(gaps):
    """Grace Hopper's face is close to symmetric, so the mirrored, relit and blended far side must come close to
    the seen one: no cycle of hers (photo and painted variant, both turns) loses more than 3 dB on the completed
    half (before the lit mirror and the membrane blend, yaw +45° lost 3.5 dB)."""
    hopper = {k: v for k, v in gaps.items() if k[0].startswith("grace_hopper")}
    assert max(hopper.values()) <= 3.0, hopper


def test_the_completion_comes_within_2_db_of_a_perfect_mirror(cycles):
    """The issue's 2 dB, measured against what is reachable: the completed half's PSNR against that of A's own
    texture with its completed half mirrored from the seen one (``fica.cycle``, ``mirror_ceiling_db``). Median over
    the photos 1.7 dB (1.9 before the turned fit's pitch prior, 2.3 before it stopped following the near eye and
    brow): the astronaut's completed half comes within 0.6 dB of a perfect mirror of her true texture at +45° and
    beats it by 2.5 dB at -45° (relit, glimpses); Grace Hopper's falls 2.8 / 2.8 dB short of it (3.2 / 3.4 while
    her turned fits pitched 3-5° down), her re-built face still misregistered (seen half 19.8 / 17.8 dB, 18.7 /
    17.0 before the pitch prior)."""
    photos = [c.below_mirror_db for k, c in cycles.items() if k[0] in PHOTOS]
    assert statistics.median(photos) <= 2.0, {k: round(c.below_mirror_db, 2) for k, c in cycles.items()}


def test_a_turned_portrait_s_silhouette_draws_no_glare_on_its_completed_cheek(rebuilt):
    """At the far cheek's outline a turned portrait's pixels mix in the white background; those glimpses set the
    refiner's membrane and drew white streaks down the mirrored cheek (the 99th percentile of the lightening of
    the mirrored skin 0.14-0.37 on main before the refiner took only trusted glimpses, 0.07-0.10 after)."""
    skin = default_head().uv_layout(256).region_mask("face", "ears", "neck") > 0.5
    lightening = {}
    for key, b in rebuilt.items():
        mirrored = (b.complete.source == Source.MIRRORED) & skin
        change = (b.refined.texture - b.complete.texture).mean(0, keepdim=True)[mirrored]
        lightening[key] = round(float(torch.quantile(change, 0.99)), 3)
    assert max(lightening.values()) <= 0.12, lightening


def _outside_neighbours(b, radius: int = 3) -> torch.Tensor:
    """How far (max over channels) each MIRRORED texel within ``radius`` of the seen ones lies outside the range of
    the completed colours of its mirrored and seen neighbours and of its own glimpse in the portrait. ``[K]``."""
    source, complete = b.complete.source, b.complete.texture
    seen = (source == Source.SEEN) | (source == Source.BLENDED)
    mirrored = source == Source.MIRRORED
    size = 2 * radius + 1
    pool = lambda m, x: F.max_pool2d(torch.where(m, x, -10.0)[None], size, 1, radius)[0]  # noqa: E731
    hi = torch.maximum(pool(seen, complete), pool(mirrored, complete))
    lo = -torch.maximum(pool(seen, -complete), pool(mirrored, -complete))
    glimpse = mirrored & (b.unwrapped.partial.visibility > 0.2)
    hi = torch.where(glimpse, torch.maximum(hi, b.unwrapped.partial.rgb), hi)
    lo = torch.where(glimpse, torch.minimum(lo, b.unwrapped.partial.rgb), lo)
    near = mirrored & (pool(seen, torch.ones_like(complete[:1])) > 0)
    outside = torch.maximum(b.refined.texture - hi, lo - b.refined.texture).clamp(min=0).amax(0, keepdim=True)
    return outside[near]


def test_the_membrane_brings_the_mirrored_side_to_the_seen_colour_and_not_past_it(rebuilt):
    """Where a turned portrait's seen half meets its mirrored half, the refiner's membrane moves the completed
    colour toward the seen one. Its step used to be read against the completion continued from far away (a
    push-pull: hair and shadow beside a nose), and carried the mirrored side past the seen colour: a light line
    down the nose. Mirrored texels within 3 texels of the seen ones more than 0.02 outside their neighbours' and
    their glimpse's colours: 5-14 % on main before, 2-8 % after."""
    fractions = {key: round(float((_outside_neighbours(b) > 0.02).float().mean()), 3) for key, b in rebuilt.items()}
    assert max(fractions.values()) <= 0.10, fractions
