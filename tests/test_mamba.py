"""HARMamba backbone: direction of information flow, the backbone contract, config checks."""
import pytest
import torch
import torch.nn.functional as F

from models import build_backbone, list_backbones
from models.mamba import MAMBA_DEFAULTS, BiMambaBlock, Mamba, build_mamba

SMALL = dict(depth=2, d_model=32, hidden=24)         # fast variant for most tests


def perturbed_outputs(module, t0, d_model=16, L=20):
    """Outputs of module for x and for x changed at step t0 only: (B, L, d) each."""
    torch.manual_seed(0)
    x = torch.randn(2, L, d_model)
    x2 = x.clone()
    x2[:, t0] += 1.0
    module.eval()
    with torch.no_grad():
        return module(x), module(x2)


def test_forward_mamba_is_exactly_causal():
    torch.manual_seed(0)
    y, y2 = perturbed_outputs(Mamba(16), t0=10)
    assert torch.equal(y[:, :10], y2[:, :10])
    assert not torch.allclose(y[:, 10:], y2[:, 10:])


def test_bidirectional_block_sees_the_future():
    torch.manual_seed(0)
    y, y2 = perturbed_outputs(BiMambaBlock(16), t0=10)
    assert (y[:, :10] - y2[:, :10]).abs().amax(-1).min() > 0     # every earlier step changes
    assert not torch.allclose(y[:, 10:], y2[:, 10:])


def test_mamba_init_follows_mamba():
    m = Mamba(64, d_state=16)
    assert m.dt_rank == 4
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 1e-1 * (1 + 1e-5)
    torch.testing.assert_close(m.A_log.exp(), torch.arange(1.0, 17.0).expand(128, 16))
    assert torch.equal(m.D, torch.ones(128))


@pytest.mark.parametrize("C", [6, 9])
def test_backbone_contract(C):
    model = build_backbone("mamba", {}, feature_num=C, seq_len=120)
    x = torch.randn(3, 120, C)
    feats, pooled = model(x)
    H = model.num_features
    assert H == MAMBA_DEFAULTS["hidden"]
    assert feats.shape == (3, 120, H) and pooled.shape == (3, H)
    assert torch.isfinite(feats).all() and torch.isfinite(pooled).all()
    assert "mamba" in list_backbones()


def test_default_size_matches_harmamba():
    model = build_mamba({}, feature_num=6, seq_len=120)
    assert model.n_patches == 10 and len(model.blocks) == 6
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.38e6 < n_params < 0.45e6, n_params                 # HARMamba: about 0.41 M


def test_steps_inside_a_patch_differ():
    model = build_mamba(SMALL, feature_num=6, seq_len=120).eval()
    with torch.no_grad():
        feats, _ = model(torch.randn(2, 120, 6))
    assert not torch.allclose(feats[:, 0], feats[:, 1])          # same patch, different step


def test_overlapping_patches_and_other_lengths():
    model = build_mamba({**SMALL, "patch_size": 20, "stride": 10}, feature_num=6, seq_len=100)
    assert model.n_patches == 9
    torch.testing.assert_close(model.cover.sum(1), torch.ones(100))
    feats, pooled = model(torch.randn(2, 100, 6))
    assert feats.shape == (2, 100, SMALL["hidden"])


def test_gradients_reach_every_parameter():
    model = build_mamba({**SMALL, "drop_path": 0.0}, feature_num=6, seq_len=120).train()
    feats, pooled = model(torch.randn(4, 120, 6))
    (feats.square().mean() + pooled.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_eval_is_deterministic_and_drop_path_is_train_only():
    model = build_mamba({**SMALL, "drop_path": 0.5}, feature_num=6, seq_len=120)
    x = torch.randn(4, 120, 6)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        c = model(x)
    assert not torch.allclose(c[0], a[0])


def test_scan_impls_agree_in_the_encoder():
    torch.manual_seed(0)
    model = build_mamba({**SMALL, "depth": 1, "scan": "ref"}, feature_num=6, seq_len=120).double().eval()
    x = torch.randn(2, 120, 6, dtype=torch.float64)
    ref = model(x)
    for m in model.modules():
        if isinstance(m, Mamba):
            m.scan = "torch"
    fast = model(x)
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(fast[1], ref[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("cfg,match", [
    ({"depht": 4}, r"unknown config key\(s\) \['depht'\]"),
    ({"scan": "fast"}, "scan must be one of"),
    ({"patch_size": 16, "stride": 16}, "do not cover seq_len=120"),
    ({"feature_num": 9}, "feature_num=9 disagrees"),
])
def test_bad_config_raises(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_mamba(cfg, feature_num=6, seq_len=120)


def test_config_may_repeat_matching_data_shape():
    model = build_mamba({**SMALL, "feature_num": 6, "seq_len": 120}, feature_num=6, seq_len=120)
    assert model.feature_num == 6


def test_wrong_input_shape_raises():
    model = build_mamba(SMALL, feature_num=6, seq_len=120)
    with pytest.raises(ValueError, match=r"built for \(T, C\) = \(120, 6\)"):
        model(torch.randn(2, 120, 9))


def test_bf16_autocast_forward_backward():
    model = build_mamba(SMALL, feature_num=6, seq_len=120)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, pooled = model(torch.randn(2, 120, 6))
    (feats.float().square().mean() + pooled.float().square().mean()).backward()
    assert torch.isfinite(feats.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_tokens_are_time_major_channel_patches():
    """Token p * C + c (before the class token is inserted) embeds channel c's patch p."""
    torch.manual_seed(0)
    model = build_mamba({**SMALL, "depth": 0}, feature_num=6, seq_len=120)
    x = torch.randn(2, 120, 6)
    seen = []
    model.blocks.append(type("Spy", (torch.nn.Module,), {"forward": lambda self, s: seen.append(s) or s})())
    model(x)
    seq = seen[0]
    mid = model.cls_index
    tokens = torch.cat([seq[:, :mid], seq[:, mid + 1:]], dim=1)
    for p, c in [(0, 0), (3, 5), (9, 2)]:
        patch = x[:, p * model.stride:p * model.stride + model.patch_size, c]
        want = model.patch_embed(patch) + model.channel_embed[c] + model.patch_pos[p]
        torch.testing.assert_close(tokens[:, p * 6 + c], want)
    torch.testing.assert_close(seq[:, mid], model.cls_token.expand(2, -1))


def test_drop_path_zeroes_or_rescales_whole_samples():
    from models.mamba import drop_path
    torch.manual_seed(0)
    x = torch.randn(64, 5, 3)
    y = drop_path(x, 0.25, training=True)
    kept = (y != 0).flatten(1).all(1)
    assert 0 < kept.sum() < 64 and (y[~kept] == 0).all()
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert drop_path(x, 0.25, training=False) is x
