"""Every registered backbone honours the one interface (timm's test_models idea)."""
import pytest
import torch

from config import CONFIG_DIR, load_model_config
from models import build_backbone, list_backbones


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("channels", [6, 9])
def test_backbone_contract(name, channels):
    torch.manual_seed(0)
    cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", f"{name}_v1")
    m = build_backbone(name, cfg, feature_num=channels, seq_len=120)
    x = torch.randn(3, 120, channels)
    feats, pooled = m(x)
    assert feats.shape == (3, 120, m.num_features)
    assert pooled.shape == (3, m.num_features)
    assert torch.isfinite(feats).all() and torch.isfinite(pooled).all()
    (feats.sum() + pooled.sum()).backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_unknown_backbone_and_config_key():
    with pytest.raises(KeyError, match="unknown backbone"):
        build_backbone("resnet", {}, 6, 120)
    with pytest.raises(ValueError, match="unknown config key"):
        build_backbone("limu", {"hidden": 72, "hiden_ff": 3}, 6, 120)
