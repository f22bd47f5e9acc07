"""Image-embedding extraction: registry outputs against the models' own features, bank rows in order,
resume after an injected interruption, maps beside the result, the ImageBank round trip, the CLI."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
import transformers as tf

pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

import support_vision as sv  # noqa: E402
from vixml.data import ImageBank, ImageMap, discover_image_files, write_image_map  # noqa: E402
from vixml.devices import native_bf16  # noqa: E402
from vixml.errors import ConfigError, DataError  # noqa: E402
from vixml.vision.embed import embed_bank, embed_images  # noqa: E402
from vixml.vision.embed_dataset import default_tag, embed_dataset, find_banks  # noqa: E402
from vixml.vision.embed_inputs import bank_batches, line_offsets, to_rgb  # noqa: E402
from vixml.vision.models import load_vision_model, resolve_precision  # noqa: E402
from vixml.vision.thumbnail import thumbnail  # noqa: E402

TOL = 1e-5


BUILDERS = {
    "siglip": sv.tiny_siglip,
    "siglip_full": lambda d: sv.tiny_siglip(d, full=True),
    "siglip2": sv.tiny_siglip2,
    "clip": sv.tiny_clip,
    "clip_full": lambda d: sv.tiny_clip(d, full=True),
    "clip_noproj": lambda d: sv.tiny_clip(d, projection=False),
    "vit": sv.tiny_vit,
}


class _Models(dict):
    """Tiny model folders, each built on first use."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, name):
        self[name] = BUILDERS[name](self.root / name)
        return self[name]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _Models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def siglip(models):
    return load_vision_model(str(models["siglip"]), device="cpu")


def _features(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _pooled(cls):
    return lambda path, inputs: getattr(tf, cls).from_pretrained(path)(**inputs).pooler_output


def _projected(cls):
    return lambda path, inputs: getattr(tf, cls).from_pretrained(path)(**inputs).image_embeds


def _image_features(cls):
    return lambda path, inputs: _features(getattr(tf, cls).from_pretrained(path).get_image_features(**inputs))


ORACLES = {  # name -> (expected model_type, expected output, reference features from the model's own API)
    "siglip": ("siglip_vision_model", "pooler_output", _pooled("SiglipVisionModel")),
    "siglip_full": ("siglip", "pooler_output", _image_features("SiglipModel")),
    "siglip2": ("siglip2_vision_model", "pooler_output", _pooled("Siglip2VisionModel")),
    "clip": ("clip_vision_model", "image_embeds", _projected("CLIPVisionModelWithProjection")),
    "clip_full": ("clip", "image_embeds", _image_features("CLIPModel")),
    "clip_noproj": ("clip_vision_model", "pooler_output", _pooled("CLIPVisionModel")),
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_registry_keeps_each_families_documented_feature(models, name):
    model_type, output, oracle = ORACLES[name]
    images = sv.coloured_images(5, seed=1)
    encoder = load_vision_model(str(models[name]), device="cpu")
    assert (encoder.model_type, encoder.output) == (model_type, output)
    got = embed_images(encoder, images, pad_to=None, batch_size=2)
    inputs = tf.AutoImageProcessor.from_pretrained(models[name])(images=images, return_tensors="pt")
    with torch.no_grad():
        want = oracle(models[name], dict(inputs)).numpy()
    assert got.shape == want.shape == (5, encoder.dim)
    np.testing.assert_allclose(got, want, atol=TOL)


def test_unknown_model_type_uses_the_generic_pooled_output_and_says_so(models, caplog):
    images = sv.coloured_images(3, seed=2)
    with caplog.at_level(logging.INFO, logger="vixml.vision.models"):
        encoder = load_vision_model(str(models["vit"]), device="cpu")
    assert any("'vit' is not in the vision registry" in r.getMessage() for r in caplog.records)
    assert encoder.output == "pooler_output"
    inputs = tf.AutoImageProcessor.from_pretrained(models["vit"])(images=images, return_tensors="pt")
    with torch.no_grad():
        want = tf.ViTModel.from_pretrained(models["vit"])(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(embed_images(encoder, images, pad_to=None), want, atol=TOL)


def test_dataset_files_shapes_rows_and_imagebank(tmp_path, siglip):
    banks = sv.tiny_image_dataset(tmp_path / "data")
    results = embed_dataset(tmp_path / "data", siglip, batch_size=3, workers=0, progress=False)
    assert [r.split for r in results] == ["trn", "tst", "lbl"]
    for r in results:
        assert r.embeddings.name == f"{r.split}_embs_imgs_3_32_siglip.npy"
        emb = np.load(r.embeddings)
        images = sv.decode_bank(banks[r.split])
        assert emb.dtype == np.float32 and emb.shape == (len(images), 32) == (r.n_images, r.dim)
        if r.split == "trn":  # row r of the bank, embedded alone, is row r
            alone = np.concatenate([embed_images(siglip, [img], pad_to=None) for img in images])
        else:
            alone = embed_images(siglip, images, pad_to=None, batch_size=len(images))
        np.testing.assert_allclose(emb, alone, atol=TOL)
        assert len({tuple(np.round(row, 4)) for row in emb}) == len(emb)  # distinct images, distinct rows
    found = discover_image_files(tmp_path / "data", model="siglip")
    bank = ImageBank(found["trn"].embeddings, found["trn"].map_npz, num_images=3)
    gathered, mask = bank.gather([2, 3])
    trn = np.load(results[0].embeddings)
    assert mask.tolist() == [[True, True, False], [True, True, True]]
    np.testing.assert_array_equal(gathered[0, :2], trn[1:3])  # item 2: rows 1, 2 (item 1 holds row 0)
    np.testing.assert_array_equal(gathered[1], trn[3:6])


def test_out_dir_gets_the_maps_and_a_rerun_keeps_the_result(tmp_path, siglip):
    sv.tiny_image_dataset(tmp_path / "data")
    out = tmp_path / "out"
    first = embed_dataset(tmp_path / "data", siglip, splits="tst", out_dir=out, tag="sig", workers=0, progress=False)
    written = sorted(p.name for p in out.iterdir() if p.name != ".vixml.lock")  # the lock file may stay
    assert written == ["test_imgs_64_3_map.npz", "tst_embs_imgs_3_32_sig.npy"]
    again = embed_dataset(tmp_path / "data", siglip, splits=["tst"], out_dir=out, tag="sig", progress=False)
    assert again[0].skipped and not first[0].skipped
    ImageBank(again[0].embeddings, again[0].map, 3)


def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path, siglip):
    bank = sv.write_bank(tmp_path / "train_imgs_64_3.bin", sv.coloured_images(7, seed=3))
    reference = np.load(
        embed_bank(siglip, bank, tmp_path / "ref.npy", batch_size=2, workers=0, progress=False).embeddings
    )

    def interrupt(done):
        raise KeyboardInterrupt(f"injected after {done} rows")

    out = tmp_path / "trn_embs_imgs_3_32_x.npy"
    with pytest.raises(KeyboardInterrupt):
        embed_bank(siglip, bank, out, batch_size=2, chunk_rows=2, workers=0, progress=False, on_chunk=interrupt)
    partial = tmp_path / f".{out.name}.partial"
    assert not out.exists() and json.loads((partial / "state.json").read_text())["done"] == 2
    commits = []
    result = embed_bank(
        siglip, bank, out, batch_size=2, chunk_rows=2, workers=0, progress=False, on_chunk=commits.append
    )
    assert result.resumed_from == 2 and commits == [4, 6, 7] and not partial.exists()
    np.testing.assert_array_equal(np.load(out), reference)


def test_a_changed_bank_starts_over(tmp_path, siglip):
    bank = sv.write_bank(tmp_path / "b.bin", sv.coloured_images(6, seed=4))
    out = tmp_path / "e.npy"

    def interrupt(done):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        embed_bank(siglip, bank, out, batch_size=2, chunk_rows=2, workers=0, progress=False, on_chunk=interrupt)
    new_images = sv.coloured_images(6, seed=5)
    sv.write_bank(bank, new_images)
    result = embed_bank(siglip, bank, out, batch_size=2, workers=0, progress=False)
    assert result.resumed_from == 0
    expected = embed_images(siglip, sv.decode_bank(bank), pad_to=None)
    np.testing.assert_allclose(np.load(out), expected, atol=TOL)


def test_undecodable_lines_are_named_or_zeroed(tmp_path, siglip):
    images = sv.coloured_images(5, seed=6)
    bank = sv.write_bank(tmp_path / "b.bin", images, lines={1: b"this is not base64!", 3: b""})
    with pytest.raises(DataError) as err:
        embed_bank(siglip, bank, tmp_path / "e.npy", batch_size=8, workers=0, progress=False)
    assert [(p.file, p.line) for p in err.value.problems if p.line] == [(str(bank), 2), (str(bank), 4)]
    assert "--bad-images zero" in str(err.value)
    result = embed_bank(siglip, bank, tmp_path / "e.npy", bad_images="zero", workers=0, progress=False)
    emb = np.load(result.embeddings)
    assert result.bad_rows == (1, 3) and not emb[[1, 3]].any()
    good = sv.decode_bank(sv.write_bank(tmp_path / "g.bin", [images[i] for i in (0, 2, 4)]))
    np.testing.assert_allclose(emb[[0, 2, 4]], embed_images(siglip, good, pad_to=None), atol=TOL)


def test_decoding_workers_give_the_inline_result(tmp_path, siglip):
    bank = sv.write_bank(tmp_path / "b.bin", sv.coloured_images(9, seed=7))
    inline = embed_bank(siglip, bank, tmp_path / "a.npy", batch_size=4, workers=0, progress=False)
    pooled = embed_bank(siglip, bank, tmp_path / "b.npy", batch_size=4, workers=2, progress=False)
    np.testing.assert_array_equal(np.load(inline.embeddings), np.load(pooled.embeddings))


def test_line_offsets_count_a_last_line_without_newline(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"ab\ncde\n\nf")
    assert line_offsets(tmp_path / "a.bin").tolist() == [0, 3, 7, 8, 9]
    (tmp_path / "e.bin").write_bytes(b"")
    assert line_offsets(tmp_path / "e.bin").tolist() == [0]


def test_new_images_from_files_are_thumbnailed_like_the_banks(tmp_path, siglip):
    wide = Image.new("RGBA", (100, 50), (255, 0, 0, 255))
    wide.putpixel((0, 0), (0, 0, 0, 0))
    assert to_rgb(wide).getpixel((0, 0)) == (255, 255, 255)
    square = thumbnail(wide, 64)
    assert square.size == (64, 64) and square.getpixel((32, 5)) == (255, 255, 255)
    wide.save(tmp_path / "wide.png")
    from_file = embed_images(siglip, [tmp_path / "wide.png", str(tmp_path / "wide.png")], pad_to=64)
    np.testing.assert_allclose(from_file, embed_images(siglip, [square, square], pad_to=None), atol=TOL)
    assert not np.allclose(from_file[0], embed_images(siglip, [wide], pad_to=None)[0], atol=1e-3)  # padding matters
    with pytest.raises(DataError) as err:
        embed_images(siglip, [square, tmp_path / "missing.png"])
    assert err.value.problems[0].field == "image 1" and "missing.png" in err.value.problems[0].file


def test_bank_batches_read_any_row_range_in_order(tmp_path, siglip):
    images = sv.coloured_images(7, seed=10)
    bank = sv.write_bank(tmp_path / "b.bin", images)
    got = list(bank_batches(siglip.preprocess, bank, batch_size=2, start=3, stop=6))
    assert [(start, len(inputs["pixel_values"]), bad) for start, inputs, bad in got] == [(3, 2, []), (5, 1, [])]
    want = siglip.preprocess(sv.decode_bank(bank)[3:6])["pixel_values"]
    np.testing.assert_array_equal(torch.cat([inputs["pixel_values"] for _, inputs, _ in got]).numpy(), want.numpy())


def test_maps_missing_pickled_or_out_of_range(tmp_path, siglip):
    data = tmp_path / "data"
    sv.tiny_image_dataset(data, {"trn": 3})
    (data / "train_imgs_64_3_map.npz").unlink()
    with pytest.raises(DataError, match="no map for this bank"):
        embed_dataset(data, siglip, workers=0, progress=False)
    released = np.empty(3, dtype=object)
    released[:] = [-1, [0], [1, 2]]
    np.save(data / "train_imgs_64_3_map.npy", released, allow_pickle=True)
    with pytest.raises(DataError, match="trust-pickle"):
        embed_dataset(data, siglip, workers=0, progress=False)
    assert not list(data.glob("*_embs_*"))  # refused before any image was embedded
    result = embed_dataset(data, siglip, trust_pickle=True, workers=0, progress=False)[0]
    assert result.map.name == "train_imgs_64_3_map.npz" and ImageBank(result.embeddings, result.map, 3).n_items == 3
    write_image_map(result.map, ImageMap(np.array([0, 1, 2]), np.array([0, 3])))  # row 3 of a 3-row bank
    with pytest.raises(DataError, match="out of range"):
        embed_dataset(data, siglip, workers=0, progress=False)


def test_bank_choice_tags_and_precision(tmp_path):
    for n in (1, 3):
        sv.write_bank(tmp_path / f"train_imgs_64_{n}.bin", sv.coloured_images(1))
    with pytest.raises(ConfigError, match="several image banks"):
        find_banks(tmp_path)
    assert find_banks(tmp_path, num_images=3)["trn"].path.name == "train_imgs_64_3.bin"
    assert default_tag("google/siglip2-so400m-patch14-384") == "siglip2-so400m-patch14-384"
    assert default_tag("/models/My CLIP/") == "my-clip"
    with pytest.raises(ConfigError, match="tag"):  # refused before any model is loaded
        embed_dataset(tmp_path, "no/such/model", num_images=3, tag="a/b")
    with pytest.raises(ConfigError, match="split"):
        embed_dataset(tmp_path, "no/such/model", splits="dev")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_bf16_weights_give_nearby_float32_features(models, siglip):
    images = sv.coloured_images(3, seed=8)
    half = load_vision_model(str(models["siglip"]), device="cpu", precision="bf16")
    assert half.precision == "bf16" and next(half.model.parameters()).dtype == torch.bfloat16
    got = embed_images(half, images, pad_to=None)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, embed_images(siglip, images, pad_to=None), atol=0.1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when there is no CUDA device")
def test_asking_for_cuda_without_one_says_what_to_do(models):
    with pytest.raises(ConfigError, match="--device auto or cpu"):
        load_vision_model(str(models["siglip"]), device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_precision_on_gpu_is_the_default_and_close_to_fp32(models, siglip):
    images = sv.coloured_images(4, seed=9)
    gpu = load_vision_model(str(models["siglip"]), device="cuda")
    assert gpu.precision == ("bf16" if native_bf16("cuda") else "fp16")  # the vixml.devices rule
    np.testing.assert_allclose(
        embed_images(gpu, images, pad_to=None), embed_images(siglip, images, pad_to=None), atol=0.05
    )


def test_cli_embeds_a_split_and_prints_json(tmp_path, models):
    import typer
    from typer.testing import CliRunner

    from vixml.cli.images_embed import embed

    app = typer.Typer()
    app.command()(embed)
    sv.tiny_image_dataset(tmp_path / "data")
    args = [str(tmp_path / "data"), "--model", str(models["clip"]), "--split", "lbl", "--workers", "0", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)["splits"]
    assert [(r["split"], r["n_images"], r["dim"], r["tag"]) for r in record] == [("lbl", 6, 16, "clip")]
    assert record[0]["model_type"] == "clip_vision_model" and record[0]["feature"].startswith("projected")
    assert (tmp_path / "data" / "lbl_embs_imgs_3_16_clip.npy").is_file()
    bad = CliRunner().invoke(app, [str(tmp_path / "data"), "--split", "dev"])
    assert bad.exit_code == 2
    shutil.rmtree(tmp_path / "data")
