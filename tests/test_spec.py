"""The model spec: one description per model, built in one place; the encoder owns its input
normalisation."""
import pytest
import torch

from common.errors import UserError
from config import CONFIG_DIR, load_model_config
from models import spec


@pytest.mark.parametrize("norm", spec.NORMS)
def test_the_encoder_normalises_its_own_input(norm):
    torch.manual_seed(0)
    cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", "limu_v1")
    enc = spec.build(spec.encoder_spec("limu", "v1", cfg, 6, 120, norm), "test").eval()
    x = torch.randn(3, 120, 6) * 4 + 9.8
    feats, pooled = enc(x)
    assert torch.equal(feats, enc.encode(spec.normalize(x, norm))[0])
    assert feats.shape == (3, 120, enc.num_features) and pooled.shape == (3, enc.num_features)


def test_classifier_specs_rebuild_and_a_broken_spec_is_one_line():
    cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", "limu_v1")
    clf_cfg = load_model_config(CONFIG_DIR / "classifier.json", "transformer_v1")
    enc = spec.encoder_spec("limu", "v1", cfg, 6, 120)
    sup = spec.build(spec.supervised_spec(enc, 4, "linear", clf_cfg), "test")
    assert sup(torch.randn(2, 120, 6)).shape == (2, 4)
    assert spec.encoder_of(spec.supervised_spec(enc, 4, "linear", clf_cfg)) == enc
    head = spec.build(spec.transformer_spec(72, 120, 4, clf_cfg), "test")
    assert head(torch.randn(2, 120, 72)).shape == (2, 4)
    with pytest.raises(UserError, match=r"saved/x/best.pt: cannot build the model \(KeyError"):
        spec.build({"type": "encoder", "backbone": "limu"}, "saved/x/best.pt")
    with pytest.raises(UserError, match="expects 120 x 6"):
        spec.check_input(enc, 120, 9, "dsads_20_120_4c")


def test_instance_norm_per_window_and_channel():
    torch.manual_seed(0)      # unseeded, the float32 variance check failed now and then
    x = torch.randn(4, 120, 6) * torch.tensor([1.0, 5, 9, 0.1, 2, 3]) + 7
    y = spec.instance_norm(x)
    assert torch.allclose(y.mean(1), torch.zeros(4, 6), atol=1e-5)
    v = x.var(1, unbiased=False)
    assert torch.allclose(y.var(1, unbiased=False), v / (v + 1e-5), atol=1e-4)


def test_normalize_limu_keeps_orientation_instance_drops_it():
    lying = torch.zeros(2, 120, 6)
    lying[0, :, 2] = 9.8          # gravity on z
    lying[1, :, 0] = 9.8          # gravity on x: another posture
    lim = spec.normalize(lying, "limu")
    assert torch.allclose(lim[0, :, 2], torch.ones(120)) and torch.allclose(lim[1, :, 0], torch.ones(120))
    inst = spec.normalize(lying, "instance")
    assert torch.allclose(inst[0], inst[1], atol=1e-2), "instance norm maps both postures to the same input"
