"""File I/O: portraits, PNG, splat files, videos, UV map images, atomic writes."""
import io
import math
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from fica.errors import ImageTooLarge, ImageTooSmall, UnsupportedInput
from fica.io._atomic import atomic_path
from fica.io.image import load_portrait, save_png
from fica.io.splat_files import SH_C0, load_ply, load_splat, save_ply, save_splat
from fica.io.uv_images import CHECKER_GREYS, save_uv_maps, uv_map_to_image
from fica.io.video import read_video, side_by_side, write_mp4
from fica.prior.gaussians import GaussianSet


def gradient_image(height=96, width=128) -> np.ndarray:
    """uint8 [H, W, 3] with distinct values per pixel row / column."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], -1).astype(np.uint8)


def png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def random_gaussians(n: int = 500, seed: int = 0) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    return GaussianSet(means=torch.randn(n, 3, generator=g) * 0.1,
                       quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
                       scales=torch.rand(n, 3, generator=g) * 0.01 + 1e-4,
                       opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
                       colors=torch.rand(n, 3, generator=g))


def moving_square_frames(n: int = 30, height: int = 47, width: int = 63) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 2] = np.linspace(40, 200, width, dtype=np.uint8)
        frame[10:30, i:i + 20] = (240, 200, 30)
        frames.append(frame)
    return frames


# --- portraits ---------------------------------------------------------------------------------------------------

def test_load_portrait_gives_the_same_pixels_from_paths_bytes_pil_and_arrays(tmp_path):
    pixels = gradient_image()
    path = tmp_path / "portrait.png"
    Image.fromarray(pixels).save(path)
    expected = pixels.astype(np.float32) / 255
    sources = [str(path), path, path.read_bytes(), Image.open(path), pixels, expected, torch.from_numpy(expected),
               pixels.astype(np.int64)]
    for source in sources:
        image = load_portrait(source)
        assert image.dtype == np.float32 and image.shape == (96, 128, 3)
        assert np.abs(image - expected).max() < 1e-6


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((80, 120, 3), np.uint8)
    stored[:40] = (255, 0, 0)  # top half red
    stored[40:] = (0, 0, 255)  # bottom half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the stored top ends up on the right
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = load_portrait(path)
    assert image.shape == (120, 80, 3)
    assert image[60, 70, 0] > 0.9 and image[60, 70, 2] < 0.1
    assert image[60, 10, 2] > 0.9 and image[60, 10, 0] < 0.1


def test_transparency_is_composited_on_white_and_grey_becomes_three_channels():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 32:, 3] = 255  # right half opaque red-ish, left half fully transparent
    rgba[:8, 32:, 3] = 128
    for source in (rgba, png_bytes(Image.fromarray(rgba))):
        image = load_portrait(source)
        assert np.allclose(image[:, :32], 1.0)
        assert np.allclose(image[8:, 32:], [200 / 255, 0, 0], atol=1e-6)
        a = 128 / 255
        assert np.allclose(image[:8, 32:], [200 / 255 * a + 1 - a, 1 - a, 1 - a], atol=1e-6)
    grey = gradient_image()[..., 0]
    for source in (grey, grey[..., None], png_bytes(Image.fromarray(grey)), np.stack([grey, grey * 0 + 255], -1)):
        image = load_portrait(source)
        assert image.shape == (96, 128, 3)
        assert np.allclose(image, (grey.astype(np.float32) / 255)[..., None], atol=1e-6)


def test_sixteen_bit_png_keeps_its_range():
    grey16 = (np.linspace(0, 1, 64 * 80).reshape(64, 80) * 65535).astype(np.uint16)
    image = load_portrait(png_bytes(Image.fromarray(grey16)))
    assert np.allclose(image[..., 1], grey16 / 65535, atol=1e-6)


def test_unreadable_inputs_raise_unsupported_input_with_a_clear_message(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    renamed = tmp_path / "portrait.png"
    renamed.write_text("not a picture")
    video = write_mp4(moving_square_frames(), tmp_path / "clip.mp4", fps=24)
    full_png = png_bytes(Image.fromarray(gradient_image()))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(full_png[: len(full_png) // 2])
    for source in (text, renamed, video, corrupt, full_png[:30], b"", tmp_path / "missing.png", 42, [1, 2],
                   np.zeros((64, 64, 5), np.uint8), np.zeros((2, 64, 64, 3)), np.full((64, 64, 3), 255.0),
                   np.full((64, 64), np.nan, np.float32), np.zeros((64, 64), bool)):
        with pytest.raises(UnsupportedInput) as error:
            load_portrait(source)
        message = str(error.value)
        assert message.endswith(".") and "\n" not in message and len(message) < 160
    with pytest.raises(UnsupportedInput, match="not a readable image"):
        load_portrait(renamed)
    with pytest.raises(UnsupportedInput, match="damaged or truncated"):
        load_portrait(corrupt)


def test_too_small_and_too_large_inputs_are_refused(tmp_path):
    with pytest.raises(ImageTooSmall, match="at least 64 pixels"):
        load_portrait(np.zeros((63, 400, 3), np.uint8))
    with pytest.raises(ImageTooSmall):
        load_portrait(png_bytes(Image.new("RGB", (300, 40))))
    assert load_portrait(np.zeros((64, 64, 3), np.uint8)).shape == (64, 64, 3)

    huge_file = tmp_path / "huge.png"
    with open(huge_file, "wb") as f:
        f.truncate(51 * 2 ** 20)  # sparse: 51 MB on paper
    with pytest.raises(ImageTooLarge, match="50 MB"):
        load_portrait(huge_file)
    with pytest.raises(ImageTooLarge, match="megapixels"):  # refused from the header, before decoding
        load_portrait(png_bytes(Image.new("1", (8000, 6000))))
    with pytest.raises(ImageTooLarge, match="megapixels"):
        load_portrait(np.zeros((6400, 6400), np.uint8))


def test_images_over_2048_px_are_downscaled_by_area_averaging():
    image = np.zeros((1024, 3072, 3), np.uint8)
    image[:, ::2] = 255  # one-pixel stripes: area averaging turns them into an even grey
    loaded = load_portrait(image)
    assert loaded.shape == (683, 2048, 3)
    assert abs(loaded.mean() - 0.5) < 0.01 and loaded[10:-10, 10:-10].std() < 0.2


def test_save_png_writes_floats_uint8_and_tensors_exactly(tmp_path):
    pixels = gradient_image()
    for image in (pixels, pixels.astype(np.float32) / 255, torch.from_numpy(pixels.astype(np.float32) / 255)):
        path = save_png(image, tmp_path / "out" / "image.png")
        assert np.array_equal(np.asarray(Image.open(path)), pixels)
    clipped = save_png(np.full((8, 8, 3), 1.7, np.float32), tmp_path / "clipped.png")
    assert np.asarray(Image.open(clipped)).min() == 255
    with pytest.raises(ValueError):
        save_png(np.zeros((8, 8, 5)), tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["clipped.png", "image.png", "out"]


# --- atomic writes -------------------------------------------------------------------------------------------------

def test_failed_writes_leave_no_file_and_keep_the_old_one(tmp_path):
    target = tmp_path / "avatar.ply"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]

    def frames_then_failure():
        yield from moving_square_frames(5)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_mp4(frames_then_failure(), tmp_path / "talk.mp4", fps=24)
    with pytest.raises(ValueError):
        write_mp4([], tmp_path / "empty.mp4", fps=24)
    assert list(tmp_path.iterdir()) == [target]


# --- splat files -------------------------------------------------------------------------------------------------

def test_ply_has_the_3dgs_layout_read_by_plyfile(tmp_path):
    from plyfile import PlyData

    gaussians = random_gaussians()
    path = save_ply(gaussians, tmp_path / "avatar.ply")
    ply = PlyData.read(path)
    vertex = ply["vertex"]
    assert ply.byte_order == "<" and not ply.text
    assert [p.name for p in vertex.properties] == [
        "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
        "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(vertex[p.name].dtype == np.float32 for p in vertex.properties)
    assert vertex.count == len(gaussians)

    def column(*names):
        return np.stack([vertex[n] for n in names], 1)

    assert np.allclose(column("x", "y", "z"), gaussians.means.numpy(), atol=1e-7)
    assert np.allclose(column("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5, gaussians.colors.numpy(), atol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-vertex["opacity"])), gaussians.opacities.numpy(), atol=1e-6)
    assert np.allclose(np.exp(column("scale_0", "scale_1", "scale_2")), gaussians.scales.numpy(), rtol=1e-5)
    assert np.allclose(column("rot_0", "rot_1", "rot_2", "rot_3"), gaussians.quats.numpy(), atol=1e-7)

    loaded = load_ply(path)
    for name in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.allclose(getattr(loaded, name), getattr(gaussians, name), rtol=1e-5, atol=1e-6), name


def test_load_ply_reads_splats_written_by_other_tools(tmp_path):
    from plyfile import PlyData, PlyElement

    n = 10
    fields = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(9)), "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.zeros(n, [(name, "<f4") for name in fields])
    data["x"] = np.arange(n)
    data["rot_0"] = 2.0  # unnormalised, as 3DGS training leaves them
    data["scale_0"] = np.log(0.01)
    path = tmp_path / "other.ply"
    PlyData([PlyElement.describe(data, "vertex")], byte_order="<").write(path)
    loaded = load_ply(path)
    assert len(loaded) == n and torch.allclose(loaded.means[:, 0], torch.arange(n, dtype=torch.float32))
    assert torch.allclose(loaded.quats, torch.tensor([1.0, 0, 0, 0]).expand(n, 4))
    assert torch.allclose(loaded.scales[:, 0], torch.full((n,), 0.01))
    assert torch.allclose(loaded.colors, torch.full((n, 3), 0.5)) and torch.allclose(loaded.opacities,
                                                                                         torch.full((n,), 0.5))

    ascii_path = tmp_path / "ascii.ply"
    PlyData([PlyElement.describe(data, "vertex")], text=True).write(ascii_path)
    text = tmp_path / "notes.ply"
    text.write_text("hello")
    mesh = tmp_path / "mesh.ply"
    PlyData([PlyElement.describe(np.zeros(3, [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]), "vertex")],
            byte_order="<").write(mesh)
    for bad in (ascii_path, text, mesh):
        with pytest.raises(UnsupportedInput):
            load_ply(bad)


def test_splat_round_trip_within_quantisation_and_sorted_by_size_times_opacity(tmp_path):
    gaussians = random_gaussians()
    path = save_splat(gaussians, tmp_path / "avatar.splat")
    assert path.stat().st_size == 32 * len(gaussians)
    loaded = load_splat(path)
    importance = gaussians.scales.prod(1) * gaussians.opacities
    order = torch.argsort(importance, descending=True)
    assert torch.equal(loaded.means, gaussians.means[order])
    assert torch.equal(loaded.scales, gaussians.scales[order])
    assert (loaded.colors - gaussians.colors[order]).abs().max() <= 0.5 / 255 + 1e-6
    assert (loaded.opacities - gaussians.opacities[order]).abs().max() <= 0.5 / 255 + 1e-6
    # Quaternions: 8 bits a component; same rotation up to sign.
    assert (loaded.quats * gaussians.quats[order]).sum(1).abs().min() > 0.999
    first = np.frombuffer(path.read_bytes()[:32], np.float32, count=6)
    assert np.allclose(first[:3], gaussians.means[order[0]].numpy())
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(UnsupportedInput):
        load_splat(tmp_path / "bad.splat")


def test_splat_bytes_of_a_known_gaussian_follow_the_format(tmp_path):
    import struct

    half = math.radians(90) / 2  # a quarter turn about x: q = (cos 45°, sin 45°, 0, 0)
    gaussian = GaussianSet(means=torch.tensor([[1.0, 2.0, 3.0]]),
                           quats=torch.tensor([[math.cos(half), math.sin(half), 0.0, 0.0]]),
                           scales=torch.tensor([[0.1, 0.2, 0.3]]), opacities=torch.tensor([0.5]),
                           colors=torch.tensor([[1.0, 0.0, 0.5]]))
    written = save_splat(gaussian, tmp_path / "one.splat").read_bytes()
    expected = (struct.pack("<3f", 1.0, 2.0, 3.0) + struct.pack("<3f", 0.1, 0.2, 0.3)
                + bytes([255, 0, 128, 128])  # RGBA, 0..1 -> 0..255
                + bytes([219, 219, 128, 128]))  # w, x, y, z as q·128 + 128
    assert written == expected


def _read_like_the_3dgs_reference(path: Path, sh_degree: int = 3) -> dict[str, np.ndarray]:
    """What the 3DGS reference loader takes from a PLY, written from its documented behaviour: the model is built
    for ``sh_degree`` (its command line's ``--sh_degree``, default 3) and the loader asserts that the file holds
    exactly that degree's 3·((d + 1)² − 1) ``f_rest_*`` columns; it reads the position, f_dc, f_rest, opacity, and
    the scale_* and rot_* columns in the order of their numeric suffix; every other property is ignored."""
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    names = [p.name for p in vertex.properties]

    def numbered(prefix: str) -> list[str]:
        return sorted((n for n in names if n.startswith(prefix)), key=lambda n: int(n.split("_")[-1]))

    rest = numbered("f_rest_")
    if len(rest) != 3 * ((sh_degree + 1) ** 2 - 1):
        raise AssertionError(f"{len(rest)} f_rest columns for SH degree {sh_degree}")

    def columns(cols):
        return np.stack([np.asarray(vertex[n]) for n in cols], 1) if cols else np.zeros((vertex.count, 0))

    return {"xyz": columns(["x", "y", "z"]), "f_dc": columns(["f_dc_0", "f_dc_1", "f_dc_2"]),
            "f_rest": columns(rest), "opacity": np.asarray(vertex["opacity"]),
            "scale": columns(numbered("scale_")), "rot": columns(numbered("rot_"))}


def test_ply_reads_as_the_3dgs_reference_loader_reads_it_at_sh_degree_0(tmp_path):
    """No ``f_rest_*`` columns: a viewer must accept degree-0 SH. The reference loader does when its model is built
    with ``--sh_degree 0``; at its default degree 3 it refuses the file (the README says so)."""
    gaussians = random_gaussians()
    path = save_ply(gaussians, tmp_path / "avatar.ply")
    with pytest.raises(AssertionError, match="0 f_rest columns for SH degree 3"):
        _read_like_the_3dgs_reference(path)
    ref = _read_like_the_3dgs_reference(path, sh_degree=0)
    assert ref["f_rest"].shape == (len(gaussians), 0)
    assert np.allclose(ref["xyz"], gaussians.means.numpy(), atol=1e-7)
    assert np.allclose(ref["f_dc"] * SH_C0 + 0.5, gaussians.colors.numpy(), atol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-ref["opacity"])), gaussians.opacities.numpy(), atol=1e-6)
    assert np.allclose(np.exp(ref["scale"]), gaussians.scales.numpy(), rtol=1e-5)
    assert np.allclose(ref["rot"] / np.linalg.norm(ref["rot"], axis=1, keepdims=True), gaussians.quats.numpy(),
                       atol=1e-6)


# --- video ---------------------------------------------------------------------------------------------------------

def test_write_mp4_encodes_every_frame_as_h264_yuv420p_with_even_size(tmp_path):
    frames = moving_square_frames(30, 47, 63)
    path = write_mp4(iter(frames), tmp_path / "talk.mp4", fps=24)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (64, 48) and meta["fps"] == 24
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 30
    decoded = np.stack(list(iio.imiter(path, plugin="FFMPEG")))
    assert decoded.shape == (30, 48, 64, 3)
    error = np.abs(decoded[:, :47, :63].astype(float) - np.stack(frames)).mean()
    assert error < 3.0  # x264 at CRF 18


def test_read_video_limits_frames_and_size(tmp_path):
    path = write_mp4(moving_square_frames(30, 96, 128), tmp_path / "driving.mp4", fps=12)
    frames, fps = read_video(path)
    assert len(frames) == 30 and fps == 12 and frames[0].shape == (96, 128, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[5].astype(float) - moving_square_frames(30, 96, 128)[5]).mean() < 3.0
    frames, _ = read_video(path, max_frames=7, max_side=64)
    assert len(frames) == 7 and frames[0].shape == (48, 64, 3)


def test_broken_or_non_video_files_raise_unsupported_input(tmp_path):
    good = write_mp4(moving_square_frames(48, 64, 64), tmp_path / "good.mp4", fps=24).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    header_only = tmp_path / "header_only.mp4"
    header_only.write_bytes(good[:200])
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video")
    for path in (truncated, header_only, text, tmp_path / "missing.mp4"):
        with pytest.raises(UnsupportedInput) as error:
            read_video(path)
        assert "\n" not in str(error.value) and str(error.value).endswith(".")


def test_side_by_side_scales_the_right_frame_to_the_left_height():
    left = np.full((100, 80, 3), 10, np.uint8)
    right = np.full((50, 60, 3), 200, np.uint8)
    both = side_by_side(left, right)
    assert both.shape == (100, 200, 3) and both.dtype == np.uint8
    assert (both[:, :80] == 10).all() and (both[:, 80:] == 200).all()
    assert side_by_side(left, np.zeros((300, 30, 3), np.float32)).shape == (100, 90, 3)


# --- UV map images -------------------------------------------------------------------------------------------------

def chart(resolution: int = 64):
    v, u = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
    valid = (u ** 2 + v ** 2 < 0.8)[None].float()  # [1, R, R]
    return u, v, valid


def test_uv_map_kinds_render_as_documented():
    u, v, valid = chart()
    inside = valid[0] > 0
    rgb = torch.stack([(u + 1) / 2, (v + 1) / 2, torch.full_like(u, 0.25)])
    image = uv_map_to_image(rgb, "texture", valid)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.abs(image[inside.numpy()] / 255 - rgb.permute(1, 2, 0)[inside].numpy()).max() <= 0.5 / 255 + 1e-6

    visibility = ((u + 1) / 2)[None]
    image = uv_map_to_image(visibility, "visibility", valid)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()

    normal = torch.nn.functional.normalize(torch.stack([u, v, torch.ones_like(u)]), dim=0)
    image = uv_map_to_image(normal, "normal", valid)
    assert np.abs(image[32, 32] / 255 - (normal[:, 32, 32].numpy() + 1) / 2).max() < 1 / 255

    xyz = torch.stack([u * 0.1, v * 0.05 + 0.3, u * v * 0.02 - 0.1]) * valid
    xyz[:, 30:34, 30:34] = 0  # unseen texels of a partial map
    image = uv_map_to_image(xyz, "xyz", valid)
    seen = inside.numpy() & (image.sum(-1) > 0)
    for axis in range(3):
        assert image[seen, axis].min() == 0 and image[seen, axis].max() == 255
    assert (image[30:34, 30:34] == 0).all()

    outside = image[~inside.numpy()]
    greys = {int(g * 255 + 0.5) for g in CHECKER_GREYS}
    assert set(np.unique(outside)) == greys
    with pytest.raises(ValueError):
        uv_map_to_image(rgb, "depth", valid)


def test_save_uv_maps_writes_one_png_per_map(tmp_path):
    u, v, valid = chart(32)
    maps = {"visibility": (valid, "visibility"), "partial_rgb": (torch.rand(3, 32, 32), "rgb")}
    paths = save_uv_maps(maps, tmp_path / "uv", valid)
    assert [p.name for p in paths] == ["visibility.png", "partial_rgb.png"]
    for path, (uv_map, kind) in zip(paths, maps.values()):
        assert np.array_equal(np.asarray(Image.open(path)), uv_map_to_image(uv_map, kind, valid))
