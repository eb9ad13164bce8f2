"""Config: presets parse, overrides are type-checked, unknown keys are errors."""
from __future__ import annotations

import pytest

from skd.config import ConfigError, ModelConfig, load_config, preset_dir, resolve_model_config


def test_every_preset_loads() -> None:
    presets = sorted(preset_dir().glob("*.toml"))
    assert {"default", "demo"} <= {p.stem for p in presets}
    folder = {"speech": ["data.path='words'", "data.pattern='(?P<speaker>[^/]+)/'"]}  # templates: the user names the folder
    for p in presets:
        load_config(p, folder.get(p.stem))
    with pytest.raises(ConfigError, match="data.path is required"):
        load_config("speech")


def test_overrides_are_typed() -> None:
    cfg = load_config("demo", ["model.k=12", "train.lr=3e-4", "model.lstm=false", "loss.static_criterion=norm"])
    assert cfg.model.k == 12 and cfg.train.lr == 3e-4 and cfg.model.lstm is False
    assert cfg.loss.static_criterion == "norm"
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0  # int accepted for a float


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.kk=3", "unknown config key model.'kk'"),
        ("modle.k=3", "unknown config key 'modle'"),
        ("model.k=abc", "model.k='abc' must be an integer"),
        ("model.k=2.5", "must be an integer"),
        ("model.lstm=3", "must be true or false"),
        ("loss.static_criterion=circle", "must be one of"),
        ("model.k", "must look like section.key=value"),
        ("k=3", "must be section.key"),
        ("loss.static_size=50", "must be <= model.k"),
    ],
)
def test_bad_overrides_raise(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config("demo", [override])


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nk = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)


def test_model_geometry_comes_from_data() -> None:
    assert resolve_model_config(ModelConfig(), (1, 32, 32)).channels == 1
    mlp = resolve_model_config(ModelConfig(), (17,))
    assert mlp.kind == "mlp" and mlp.input_dim == 17
    with pytest.raises(ConfigError, match="cannot read video"):
        resolve_model_config(ModelConfig(kind="mlp", input_dim=3), (3, 32, 32))
    with pytest.raises(ConfigError, match="32×32 or 64×64"):
        resolve_model_config(ModelConfig(), (3, 48, 48))
