"""The run configuration: defaults, YAML files, --set overrides, validation messages, presets, immutability."""

from __future__ import annotations

import dataclasses
import pickle
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from vixml.config import (
    AugmentConfig,
    ImagesConfig,
    InvalidConfigError,
    LoraConfig,
    LossConfig,
    MiningConfig,
    ModelConfig,
    PrototypeConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    describe_config,
    load_config,
    save_config,
)
from vixml.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _full() -> RunConfig:
    """Defaults with every optional section switched on."""
    return apply_overrides(RunConfig(), ["model.lora={}", "images={}", "prototypes={}", "eval.augment={}"])


def _leaves(cfg, prefix=""):
    """(dotted key, value) of every non-section field, walking into enabled sections."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def _section_classes(cls=RunConfig):
    yield cls
    for tp in typing.get_type_hints(cls).values():
        for arg in (tp, *typing.get_args(tp)):
            if isinstance(arg, type) and dataclasses.is_dataclass(arg):
                yield from _section_classes(arg)


# ------------------------------------------------------------------------------------------------ defaults


def test_defaults_of_the_contract_keys():
    cfg = RunConfig()
    assert cfg.model.name_or_path == "sentence-transformers/all-MiniLM-L6-v2"
    assert cfg.model.pooling == "mean" and cfg.model.lora is None
    assert cfg.data.max_length == 32 and cfg.data.label_length() == 32
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed) == (300, 2048, 2e-4, 0)
    assert cfg.train.precision == "auto" and cfg.model.dtype == "auto"  # resolved per device (vixml.devices)
    assert cfg.images is None and cfg.prototypes == PrototypeConfig() and cfg.eval.augment is None  # PRIME
    assert cfg.mining == MiningConfig(cluster_size=16, double_at="auto", start_epoch="auto", update_every="auto")
    assert cfg.mining.resolved(150) == MiningConfig(16, (20, 40, 60, 80, 100, 120), 10, 5)  # the reference's
    assert cfg.loss.aggressive and cfg.loss.hinge_tie == "split" and not cfg.loss.symmetric
    assert cfg.train.grad_clip == "auto" and cfg.train.clip_norm(decoder=True) == 1.0
    assert cfg.train.clip_norm(decoder=False) is None
    assert (cfg.eval.A, cfg.eval.B, cfg.eval.k) == ("auto", "auto", 5)  # the dataset family's A/B
    assert LoraConfig() == LoraConfig(r=256, alpha=256.0, rslora=True, dropout=0.0, target_modules=None)
    assert ImagesConfig().num_images == 3 and PrototypeConfig().num_free_vectors == 65536
    assert AugmentConfig() == AugmentConfig(num_labels=100, num_queries=100, temperature=0.05, label_weight=0.9)


def test_every_field_has_a_default_and_help():
    for cls in _section_classes():
        cls()  # every field has a default
        for f in dataclasses.fields(cls):
            assert len(f.metadata.get("help", "")) > 10, f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_yaml_is_the_default_config(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert load_config(path) == RunConfig()


def test_yaml_sections_missing_empty_and_null(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("images: {}\nprototypes: {lr: 1e-3}\nmining: null\nmodel: {lora: {r: 8}}\ntrain: {lr: 1e-4}\n")
    cfg = load_config(path)
    assert cfg.images == ImagesConfig()
    assert cfg.prototypes == PrototypeConfig(lr=1e-3)  # PyYAML reads "1e-3" as a string: coerced to float
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1e-4
    assert cfg.mining is None and cfg.model.lora == LoraConfig(r=8) and cfg.eval == RunConfig().eval


def test_load_config_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 5\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*expected a mapping of RunConfig keys"):
        load_config(bad)


# ----------------------------------------------------------------------------------------------- overrides

CONTRACT_OVERRIDES = [
    ("model.name_or_path", "bert-base-uncased", "bert-base-uncased"),
    ("model.pooling", "cls", "cls"),
    ("model.lora", "{}", LoraConfig()),
    ("model.lora.r", "64", 64),
    ("model.lora.alpha", "32", 32.0),
    ("data.max_length", "128", 128),
    ("train.epochs", "5", 5),
    ("train.batch_size", "256", 256),
    ("train.lr", "1e-4", 1e-4),
    ("train.seed", "7", 7),
    ("train.precision", "fp32", "fp32"),
    ("train.precision", "auto", "auto"),
    ("train.precision", "bf16", "bf16"),
    ("train.precision", "fp16", "fp16"),
    ("images", "{}", ImagesConfig()),
    ("images.num_images", "2", 2),
    ("prototypes", "{}", PrototypeConfig()),
    ("eval.A", "0.6", 0.6),
    ("eval.B", "2.6", 2.6),
    ("eval.k", "10", 10),
]


@pytest.mark.parametrize(("key", "raw", "expected"), CONTRACT_OVERRIDES)
def test_every_design_key_through_overrides(key, raw, expected):
    cfg = apply_overrides(RunConfig(), [f"{key}={raw}"])
    assert _get(cfg, key) == expected
    assert type(_get(cfg, key)) is type(expected)


@pytest.mark.parametrize("key", ["model.lora", "images", "prototypes", "mining", "eval.augment"])
def test_null_switches_a_section_off(key):
    cfg = apply_overrides(_full(), [f"{key}=null"])
    assert _get(cfg, key) is None
    assert _get(_full(), key) is not None


def test_a_nested_key_switches_a_section_on_with_defaults():
    cfg = apply_overrides(RunConfig(), ["model.lora=null", "model.lora.r=64", "images.num_images=2"])
    assert cfg.model.lora == LoraConfig(r=64)
    assert cfg.images == ImagesConfig(num_images=2)
    cfg = apply_overrides(cfg, ["eval.augment.temperature=0.1", "prototypes.lpn_heads=4"])
    assert cfg.eval.augment == AugmentConfig(temperature=0.1)
    assert cfg.prototypes == PrototypeConfig(lpn_heads=4)


def test_overrides_apply_in_order_merge_mappings_and_leave_the_input_untouched():
    base = RunConfig()
    cfg = apply_overrides(base, ["train.epochs=5", "train.epochs=6", "model.lora.r=8", "model.lora={alpha: 16}"])
    assert cfg.train.epochs == 6 and cfg.model.lora == LoraConfig(r=8, alpha=16.0)
    assert cfg.model.lora is not None and base.model.lora is None and base.train.epochs == 300
    assert apply_overrides(cfg, ["model.lora=null", "model.lora.dropout=0.1"]).model.lora == LoraConfig(dropout=0.1)


def test_override_value_parsing():
    cfg = apply_overrides(
        RunConfig(),
        [
            "model.name_or_path=1e-3",  # a string field keeps the text as written
            "model.attn_implementation=null",
            "model.transform=256",
            "mining.double_at=3, 5",
            "model.lora.target_modules=q_proj,v_proj",
            "model.prompt=[Title, '{text}', '{eos}']",
            "train.grad_clip=null",
            "model.normalize=false",
            "train.device=cuda:1",
        ],
    )
    assert cfg.model.name_or_path == "1e-3" and cfg.model.attn_implementation is None
    assert cfg.model.transform == 256 and cfg.mining.double_at == (3, 5)
    assert cfg.model.lora.target_modules == ("q_proj", "v_proj")
    assert cfg.model.prompt == ("Title", "{text}", "{eos}")
    assert cfg.train.grad_clip is None and cfg.model.normalize is False and cfg.train.device == "cuda:1"
    assert apply_overrides(cfg, ["mining.double_at="]).mining.double_at == ()
    assert apply_overrides(cfg, ["mining.double_at=[1, 2]"]).mining.double_at == (1, 2)


def test_every_leaf_key_is_reachable_by_override():
    """Rewriting every leaf of one config with another's values, key by key, yields the other config."""
    src = _full()
    dst = apply_overrides(load_config(CONFIGS / "qwen2.5-7b-images-lf-amazontitles-131k.yaml"), ["model.lora={}"])
    dst = apply_overrides(dst, ["data.cache_dir=/tmp/cache", "train.schedule=cosine", "loss.name=infonce"])
    items = []
    for key, value in _leaves(dst):
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True)
        items.append(f"{key}={text.strip().removesuffix('...').strip()}")
    assert src != dst
    assert apply_overrides(src, items) == dst


# ---------------------------------------------------------------------------------------------- validation


def test_invalid_literal_names_key_value_and_choices():
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), ["train.precision=fp8"])
    msg = str(info.value)
    assert "train.precision" in msg and "'fp8'" in msg
    assert all(f"'{v}'" in msg for v in ("fp32", "bf16", "fp16"))
    with pytest.raises(ConfigError, match=r"model\.kind: 'decoderr' is not valid \(did you mean 'decoder'\?\)"):
        RunConfig.from_dict({"model": {"kind": "decoderr"}})


def test_unknown_keys_list_valid_keys_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), ["train.epoch=5"])
    msg = str(info.value)
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in msg
    assert all(name in msg for name in ("epochs", "batch_size", "lr", "seed", "precision"))
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"trian": {}, "model": {"poling": "mean"}})
    msg = str(info.value)
    assert "trian: unknown key (did you mean 'train'?)" in msg and "model, data, images" in msg
    assert "model.poling: unknown key (did you mean 'pooling'?)" in msg and "name_or_path" in msg
    with pytest.raises(ConfigError, match=r"train\.epochs: is a value \(int\), not a section"):
        apply_overrides(RunConfig(), ["train.epochs.x=1"])
    with pytest.raises(ConfigError, match=r"lora: unknown key; .*\(the key exists as model\.lora\.r\)"):
        apply_overrides(RunConfig(), ["lora.r=8"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(RunConfig(), ["train.epochs"])


def test_every_problem_is_gathered_in_one_error():
    with pytest.raises(InvalidConfigError) as info:
        apply_overrides(
            RunConfig(),
            ["train.epochs=-1", "train.lr=abc", "train.precision=fp8", "model.lora.r=0", "images.num_images=x"],
        )
    keys = [key for key, _ in info.value.problems]
    assert keys == ["model.lora.r", "images.num_images", "train.epochs", "train.lr", "train.precision"]
    assert "train.epochs: must be >= 0, got -1" in str(info.value)
    again = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
    assert again.problems == info.value.problems and str(again) == str(info.value)


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"train": {"batch_size": 2.5}}, "train.batch_size", "expected int"),
        ({"train": {"batch_size": True}}, "train.batch_size", "expected int"),
        ({"model": {"normalize": "yes"}}, "model.normalize", "expected bool"),
        ({"model": {"name_or_path": None}}, "model.name_or_path", "expected str"),
        ({"model": {"lora": 3}}, "model.lora", "expected a mapping"),
        ({"model": {"prompt": ["{text}", "{txt}"]}}, "model.prompt", "unknown placeholder '{txt}'"),
        ({"model": {"prompt": ["no text here"]}}, "model.prompt", "exactly once"),
        ({"mining": {"double_at": [40, 20]}}, "mining.double_at", "ascending"),
        ({"mining": {"double_at": [1, "x"]}}, "mining.double_at[1]", "expected int"),
        ({"loss": {"margin_min": 0.5}}, "loss.margin_min", "<= margin_max"),
        ({"eval": {"k": 10, "topk": 5}}, "eval.topk", ">= k"),
        ({"eval": {"augment": {"label_weight": 1.5}}}, "eval.augment.label_weight", "<= 1"),
        ({"train": {"device": "gpu"}}, "train.device", "'gpu' is not valid"),
        ({"train": {"grad_clip": 0}}, "train.grad_clip", "> 0"),
        ({"model": {"kind": "encoder"}, "images": {"placement": "prompt"}}, "images.placement", "needs a decoder"),
        ({"model": {"kind": "decoder", "prompt": ["{text}"]}, "images": {}}, "model.prompt", "{images}"),
    ],
)
def test_bad_values_are_refused(data, key, fragment):
    with pytest.raises(InvalidConfigError) as info:
        RunConfig.from_dict(data)
    assert [k for k, _ in info.value.problems] == [key]
    assert fragment in str(info.value)


def test_direct_construction_validates_with_the_canonical_key():
    with pytest.raises(ConfigError, match=r"model\.lora\.r: must be >= 1, got 0"):
        LoraConfig(r=0)
    with pytest.raises(ConfigError, match=r"train\.epochs: must be >= 0"):
        dataclasses.replace(TrainConfig(), epochs=-3)
    assert ModelConfig(prompt=["{text}"]).prompt == ("{text}",)  # lists are stored as tuples


# ------------------------------------------------------------------------------------ immutability, methods


def test_configs_are_immutable_and_hashable():
    cfg = _full()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model = ModelConfig()  # type: ignore[misc]
    assert isinstance(cfg.mining.resolved(10).double_at, tuple) and isinstance(cfg.model.prompt, tuple)
    assert hash(cfg) == hash(_full()) and len({cfg, _full(), RunConfig()}) == 2


def test_derived_values():
    model = ModelConfig()
    assert model.prompt_segments(True) == ("This product text", "{text}", "and its image", "{images}", "{eos}")
    assert model.prompt_segments(False) == ("This product text", "{text}", "{eos}")
    assert ModelConfig(prompt=("{text}", "{images}")).prompt_segments(False) == ("{text}",)
    assert ImagesConfig().resolve_placement("encoder") == "before_text"
    assert ImagesConfig().resolve_placement("decoder") == "prompt"
    assert ImagesConfig(placement="before_text").resolve_placement("decoder") == "before_text"
    assert RunConfig.from_dict({"data": {"label_max_length": 64}}).data.label_length() == 64
    assert LossConfig().weights.r == 0.1


# -------------------------------------------------------------------------------------- files and presets


def test_presets_exist():
    names = {p.name for p in PRESETS}
    for required in (
        "minilm-l3-lf-amazontitles-131k.yaml",
        "distilbert-lf-amazontitles-131k.yaml",
        "distilbert-lf-amazontitles-1.3m.yaml",
        "distilbert-lf-amazon-131k.yaml",
        "distilbert-mm-amazontitles-300k.yaml",
        "cpu-small.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert path.read_text().startswith("#"), "a preset opens with a comment saying what it reproduces"
    out = tmp_path / "run" / "config.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # atomic write leaves no temporary file
    assert RunConfig.from_dict(yaml.safe_load(describe_config(cfg))) == cfg


def test_paper_presets_follow_method():
    enc = load_config(CONFIGS / "distilbert-lf-amazontitles-131k.yaml")
    assert enc.model.lora is None and enc.train.precision == "fp16" and enc.prototypes is not None
    assert (enc.eval.A, enc.eval.B, enc.train.lr, enc.data.max_length) == (0.6, 2.6, 2e-4, 32)
    assert load_config(CONFIGS / "distilbert-lf-amazon-131k.yaml").data.max_length == 128
    assert load_config(CONFIGS / "minilm-l3-lf-amazontitles-131k.yaml").train.lr == 5e-4
    vix = load_config(CONFIGS / "distilbert-images-lf-amazontitles-131k.yaml")
    assert vix.images.num_images == 3 and vix.train.epochs == 150
    dec = load_config(CONFIGS / "qwen2.5-3b-images-lf-amazontitles-1.3m.yaml")
    assert dec.model.lora == LoraConfig() and dec.train.lr == 5e-5 and dec.train.epochs == 40
    assert dec.mining == MiningConfig(double_at=(8, 12, 16, 20, 24), start_epoch=4, update_every=2)
    small = load_config(CONFIGS / "cpu-small.yaml")
    assert small.train.epochs <= 5 and small.train.batch_size <= 128


def test_round_trip_of_a_config_with_every_section(tmp_path):
    cfg = apply_overrides(_full(), ["train.lr=3.3e-5", "model.lora.target_modules=[q_proj]", "mining.double_at=[]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert load_config(tmp_path / "c.yaml", ["train.epochs=2"]).train.epochs == 2


# ----------------------------------------------------------------------------------------------- describe


@pytest.mark.parametrize("make", [RunConfig, _full], ids=["defaults", "all-sections"])
def test_describe_lists_every_field_with_its_help(make):
    text = describe_config(make())
    flat = " ".join(re.sub(r"^[\s#]+", "", line) for line in text.splitlines())
    for cls in _section_classes():
        for f in dataclasses.fields(cls):
            assert re.search(rf"^[\s#]*{f.name}:", text, re.M), f"{cls.__name__}.{f.name} missing"
            assert " ".join(f.metadata["help"].split()) in flat, f"help of {cls.__name__}.{f.name} missing"
    assert "[one of 'auto', 'fp32', 'bf16', 'fp16']" in flat
    assert RunConfig.from_dict(yaml.safe_load(text)) == make()


def test_describe_shows_switched_off_sections_commented_out():
    text = describe_config()
    assert "images: null" in text and "#   num_images: 3" in text
    enabled = yaml.safe_load(text.replace("images: null", "images: {}"))
    assert RunConfig.from_dict(enabled).images == ImagesConfig()


def test_import_is_cheap_and_base_level():
    code = (
        "import sys, vixml.config as c; "
        "assert 'torch' not in sys.modules; "
        "print(sorted(m for m in sys.modules if m.startswith('vixml')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = ["vixml", "vixml.atomic", "vixml.config", "vixml.config.effects", "vixml.config.fields"]
    expected += ["vixml.config.files", "vixml.config.sections", "vixml.devices", "vixml.errors"]
    assert out.strip() == str(expected)
