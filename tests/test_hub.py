"""Where weights come from: embedded default, local folders, Hub ids offline, partial repos, broken weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fica.errors import WeightsUnavailable
from fica.hub import MODEL_INDEX, resolve_source, write_model_index
from fica.stages import load_stages

STAGE_COMPONENT = {"unwrap": "dense_predictor", "complete": "uv_diffusion", "refine": "uv_refiner",
                   "prior": "universal_prior"}


@pytest.fixture(scope="module")
def untrained_repo(tmp_path_factory) -> Path:
    """Every component in its tiny configuration, untrained (the layout is what these tests are about)."""
    from fica.train.tiny import build_tiny_repo

    return build_tiny_repo(tmp_path_factory.mktemp("tiny_untrained"), steps_scale=0)


def copy_repo(repo: Path, dest: Path, components: list[str]) -> Path:
    dest.mkdir(parents=True)
    for c in components:
        shutil.copytree(repo / c, dest / c)
    write_model_index(dest, components)
    return dest


def test_no_source_gives_every_stage_embedded():
    stages = load_stages(None)
    assert set(stages) == set(STAGE_COMPONENT)
    assert all(not s.implementation.startswith("learned") for s in stages.values())


def test_local_folder_gives_every_stage_learned_and_names_the_component(untrained_repo):
    stages = load_stages(str(untrained_repo))
    for stage, component in STAGE_COMPONENT.items():
        assert stages[stage].implementation == f"learned: {untrained_repo}/{component}"


def test_repo_with_some_components_keeps_the_rest_embedded(untrained_repo, tmp_path):
    repo = copy_repo(untrained_repo, tmp_path / "partial", ["universal_prior", "dense_predictor"])
    stages = load_stages(str(repo))
    assert stages["unwrap"].implementation.startswith("learned")
    assert stages["prior"].implementation.startswith("learned")
    assert not stages["complete"].implementation.startswith("learned")
    assert not stages["refine"].implementation.startswith("learned")


def test_component_listed_without_its_companions_is_reported(untrained_repo, tmp_path):
    repo = copy_repo(untrained_repo, tmp_path / "no_vae", ["uv_diffusion", "image_encoder", "scheduler"])
    index = json.loads((repo / MODEL_INDEX).read_text())
    index["vae"] = ["diffusers", "AutoencoderKL"]  # listed, but the folder is missing
    (repo / MODEL_INDEX).write_text(json.dumps(index))
    with pytest.raises(WeightsUnavailable, match="vae"):
        load_stages(str(repo))


def test_corrupt_weights_raise_weights_unavailable_naming_the_component(untrained_repo, tmp_path):
    repo = copy_repo(untrained_repo, tmp_path / "corrupt", ["universal_prior"])
    weights = next((repo / "universal_prior").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsUnavailable) as err:
        load_stages(str(repo))
    assert "universal_prior" in str(err.value) and "FICA_MODEL" in str(err.value)


def test_folder_without_model_index_is_reported(tmp_path):
    with pytest.raises(WeightsUnavailable, match="model_index.json.*FICA_MODEL"):
        load_stages(str(tmp_path))


def test_unknown_repo_offline_names_the_repo_and_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("fica.hub.CACHE_DIR", tmp_path)
    with pytest.raises(WeightsUnavailable) as err:
        load_stages("fica-test/does-not-exist")
    message = str(err.value)
    assert "fica-test/does-not-exist" in message and "FICA_MODEL" in message and "HF_TOKEN" in message


def test_repo_id_resolves_offline_from_a_populated_cache(untrained_repo, monkeypatch, tmp_path):
    """The Hub code path (snapshot_download, offline) with the repo already in the cache under checkpoints/hub."""
    commit = "0" * 40
    cached = tmp_path / "models--fica-test--tiny"
    copy_repo(untrained_repo, cached / "snapshots" / commit, ["universal_prior"])
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("fica.hub.CACHE_DIR", tmp_path)
    stages = load_stages("fica-test/tiny")
    assert stages["prior"].implementation == "learned: fica-test/tiny/universal_prior"
    assert not stages["unwrap"].implementation.startswith("learned")


def test_resolve_source_reads_fica_model(monkeypatch):
    monkeypatch.delenv("FICA_MODEL", raising=False)
    assert resolve_source() is None
    monkeypatch.setenv("FICA_MODEL", "org/model")
    assert resolve_source() == "org/model"
    assert resolve_source("other/dir") == "other/dir"


def test_a_path_that_is_not_a_folder_or_repo_id_is_reported(tmp_path):
    with pytest.raises(WeightsUnavailable, match="neither a folder nor a Hub repo id"):
        load_stages(str(tmp_path / "missing" / "deeper" / "path"))
