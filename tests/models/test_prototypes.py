"""PRIME label prototypes: shapes, normalisation, centroids, fallback, free-vector init, save/load."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from vixml.errors import ConfigError
from vixml.models.prototypes import LabelPrototypes

D = 16


def _module(num_labels: int = 6, num_free: int = 3, dropout: float = 0.0, **switches) -> LabelPrototypes:
    torch.manual_seed(0)
    return LabelPrototypes(num_labels, D, num_free, heads=4, ffn_dim=32, dropout=dropout, **switches)


def test_forward_shape_and_unit_norm():
    protos = _module()
    out = protos(torch.tensor([0, 3, 3, 5]), torch.randn(4, D))
    assert out.shape == (4, D)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


def test_forward_is_the_mean_of_the_lpn_over_the_three_tokens():
    protos = _module().eval()
    protos.assign_free_vectors(np.array([2, 0, 1, 1, 0, 2]))
    protos.update_centroids(torch.randn(5, D), sp.random(5, 6, density=0.5, format="csr", random_state=0))
    ids, u = torch.tensor([1, 4]), torch.randn(2, D)
    tokens = torch.stack([u, protos.free_vectors[torch.tensor([0, 0])], protos.centroids[ids]], dim=1)
    expected = F.normalize(protos.lpn(tokens).mean(dim=1), dim=-1)
    torch.testing.assert_close(protos(ids, u), expected)
    # The free vector matters: moving label 1 to another cluster changes its prototype.
    protos.label_to_free[1] = 2
    assert not torch.allclose(protos(ids, u)[0], expected[0])


def test_update_centroids_is_the_plain_mean_of_the_training_queries():
    protos = _module(num_labels=4)
    bank = torch.tensor([[1.0, 0.0] + [0.0] * (D - 2), [0.0, 2.0] + [0.0] * (D - 2), [3.0, 3.0] + [0.0] * (D - 2)])
    # label 0 <- queries 0, 1; label 1 <- query 2; label 2 <- none; label 3 <- queries 0, 1, 2 (values ignored)
    y = sp.csr_matrix(np.array([[1, 0, 0, 5], [1, 0, 0, 1], [0, 1, 0, 1]], dtype=np.float32))
    protos.update_centroids(bank, y)
    mean0 = (bank[0] + bank[1]) / 2
    mean3 = bank.mean(dim=0)
    torch.testing.assert_close(protos.centroids[0], mean0)  # xclib compute_centroid: not normalised
    torch.testing.assert_close(protos.centroids[1], bank[2])
    torch.testing.assert_close(protos.centroids[2], torch.zeros(D))
    torch.testing.assert_close(protos.centroids[3], mean3)
    assert protos.has_queries.tolist() == [True, True, False, True]
    protos.update_centroids(bank.numpy(), y)  # numpy banks too
    torch.testing.assert_close(protos.centroids[0], mean0)
    with pytest.raises(ValueError):
        protos.update_centroids(bank[:2], y)


def test_lpn_inputs_raw_reads_u_and_centroid_as_given_normalized_rescales_them():
    raw, norm = _module(), _module(lpn_inputs="normalized")
    y = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    bank = torch.randn(4, D) * 3
    for m in (raw, norm):
        m.eval().update_centroids(bank, y)
    ids, u = torch.tensor([0, 1]), torch.randn(2, D) * 5
    torch.testing.assert_close(raw(ids, u), raw.compose(u, raw.label_to_free[ids], bank[:2]))
    torch.testing.assert_close(
        norm(ids, u), raw.compose(F.normalize(u), raw.label_to_free[ids], F.normalize(bank[:2]))
    )
    torch.testing.assert_close(norm(ids, u), norm(ids, u * 7))  # the scale of u no longer counts
    assert not torch.allclose(raw(ids, u), raw(ids, u * 7))


def test_every_label_gets_a_prototype_by_default_zero_centroid_for_unseen_ones():
    protos = _module(num_labels=5).eval()
    y = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [0, 0, 1, 0, 1]], dtype=np.float32))  # labels 1, 3 unseen
    protos.update_centroids(torch.randn(2, D), y)
    text = torch.randn(5, D) * 3
    out = protos.label_embeddings(text, batch_size=2)
    unseen = torch.tensor([1, 3])
    torch.testing.assert_close(
        out[unseen], protos.compose(text[unseen], protos.label_to_free[unseen], torch.zeros(2, D))
    )
    torch.testing.assert_close(out, protos(torch.arange(5), text))


def test_label_embeddings_fall_back_to_text_for_labels_without_queries():
    protos = _module(num_labels=5, dropout=0.5, unseen_labels="text").train()
    y = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [0, 0, 1, 0, 1]], dtype=np.float32))  # labels 1, 3 unseen
    protos.update_centroids(torch.randn(2, D), y)
    text = torch.randn(5, D) * 3
    out = protos.label_embeddings(text, batch_size=2)
    assert protos.training  # mode restored
    torch.testing.assert_close(out[[1, 3]], F.normalize(text[[1, 3]], dim=-1))
    seen = torch.tensor([0, 2, 4])
    protos.eval()
    torch.testing.assert_close(out[seen], protos(seen, text[seen]))  # eval mode: deterministic, no dropout
    assert not torch.allclose(out[seen], F.normalize(text[seen], dim=-1))


def test_label_embeddings_before_any_centroid_update_are_the_text_embeddings():
    protos = _module(unseen_labels="text")
    text = torch.randn(6, D)
    torch.testing.assert_close(protos.label_embeddings(text), F.normalize(text, dim=-1))


def test_cluster_mean_initialisation():
    protos = _module(num_labels=5, num_free=3)
    emb = torch.randn(5, D)
    protos.assign_free_vectors(torch.tensor([0, 0, 1, 0, 1]), init="cluster_mean", label_embeddings=emb)
    torch.testing.assert_close(protos.free_vectors[0].detach(), emb[[0, 1, 3]].mean(dim=0))
    torch.testing.assert_close(protos.free_vectors[1].detach(), emb[[2, 4]].mean(dim=0))
    assert protos.free_vectors[2].abs().max() <= (6 / (3 + D)) ** 0.5  # unused: Xavier-uniform bound
    assert protos.label_to_free.tolist() == [0, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="label_embeddings"):
        protos.assign_free_vectors(torch.zeros(5, dtype=torch.long), init="cluster_mean")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        protos.assign_free_vectors(torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        protos.assign_free_vectors(torch.zeros(4, dtype=torch.long))


def test_state_dict_round_trip_restores_buffers_and_outputs():
    protos = _module().eval()
    protos.assign_free_vectors(np.array([2, 2, 1, 0, 1, 0]), init="xavier")
    protos.update_centroids(torch.randn(4, D), sp.csr_matrix(np.eye(4, 6, dtype=np.float32)))
    state = protos.state_dict()
    assert {"label_to_free", "centroids", "has_queries", "free_vectors"} <= set(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    torch.manual_seed(123)
    restored = LabelPrototypes(6, D, 3, heads=4, ffn_dim=32, dropout=0.0).eval()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.has_queries.tolist() == [True] * 4 + [False] * 2
    assert restored.label_to_free.tolist() == [2, 2, 1, 0, 1, 0]
    text = torch.randn(6, D)
    torch.testing.assert_close(restored.label_embeddings(text), protos.label_embeddings(text))


def test_lpn_is_the_method_layer():
    layer = LabelPrototypes(3, 64, 2).lpn
    assert layer.self_attn.num_heads == 8 and layer.linear1.out_features == 1024
    assert layer.norm_first is False and layer.self_attn.batch_first and layer.dropout.p == 0.1


def test_bad_heads_raise_config_error_with_the_fix():
    with pytest.raises(ConfigError, match=r"divisible by heads=7.*divisor of 768"):
        LabelPrototypes(10, 768, 4, heads=7)
    with pytest.raises(ConfigError) as err:
        LabelPrototypes(0, 64, 0, dropout=1.5)
    assert all(k in str(err.value) for k in ("num_labels", "num_free_vectors", "dropout"))
