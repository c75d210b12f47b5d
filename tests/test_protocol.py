"""The classifier's labelled set and the pretraining views under each protocol option:
what is trained on comes from the training split only; validation and test windows stay out."""
import numpy as np
import pytest
import torch

from common.errors import UserError
from config import ClassifierTrainConfig, PretrainConfig, check
from dataset.load import labelled_subset, split_indices
from models.spec import instance_norm
from training import augment
from training.classifier import labelled_windows
from training.loop import make_generator
from training.pretrain import draw_views

CPU = torch.device("cpu")


def tagged(n, t=12):
    """Window i holds the value i + 1 in every step and channel: any axis permutation keeps
    it, so the windows a labelled set came from can be read off its values."""
    data = torch.arange(1, n + 1, dtype=torch.float32).view(n, 1, 1).expand(n, t, 6).contiguous()
    return data, torch.arange(n) % 4


def origins(x):
    assert torch.all(x == x[:, :1, :1]), "expansion mixed windows"
    return x[:, 0, 0].long() - 1


def test_default_pool_trains_on_the_labelled_rows_as_they_are():
    data, y = tagged(100)
    assert labelled_windows(data, y, np.arange(80), 0.1, ClassifierTrainConfig(), "channel_aug", CPU) is None


@pytest.mark.parametrize("method", ["channel_aug", "jitter", "rotation_random"])
def test_expand_labelled_is_the_labelled_windows_with_their_copies(method):
    n, rate = 200, 0.1
    data, y = tagged(n)
    train, val, test = split_indices(n, 5, 0.8, 0.1)
    cfg = ClassifierTrainConfig(seed=5, expand_labelled=True)
    x, labels = labelled_windows(data, y, train, rate, cfg, method, CPU)
    lab = labelled_subset(train, rate, cfg.seed)
    assert len(x) == 6 * len(lab)
    if method == "channel_aug":        # values survive a permutation exactly
        src = origins(x)
        assert sorted(src.tolist()) == sorted(np.repeat(lab, 6).tolist())
        assert torch.equal(labels, y[src])
    assert torch.equal(labels, y[torch.as_tensor(np.tile(lab, 6))])
    assert not set(np.tile(lab, 6)) & (set(val) | set(test))


def test_expanded_pool_samples_the_expanded_training_split_only():
    n, rate = 300, 0.1
    data, y = tagged(n)
    train, val, test = split_indices(n, 3, 0.8, 0.1)
    cfg = ClassifierTrainConfig(seed=3, label_pool="expanded")
    x, labels = labelled_windows(data, y, train, rate, cfg, "channel_aug", CPU)
    assert len(x) == int(6 * len(train) * rate)          # the published code's count
    src = origins(x)
    assert set(src.tolist()) <= set(train.tolist())      # never a validation or test window
    assert torch.equal(labels, y[src])
    distinct = len(set(src.tolist()))
    assert int(len(train) * rate) < distinct < len(x)    # more distinct windows than rate x train


def test_unknown_or_conflicting_choices_are_refused_on_load(tmp_path):
    for bad in (ClassifierTrainConfig(label_pool="all"),
                ClassifierTrainConfig(label_pool="expanded", expand_labelled=True)):
        with pytest.raises(UserError, match="label_pool"):
            check(bad, "c.json")
    with pytest.raises(UserError, match="views"):
        check(PretrainConfig(views="epoch"), "p.json")
    with pytest.raises(UserError, match="weak_view"):
        check(PretrainConfig(weak_view="window"), "p.json")


def test_weak_view_per_step_survives_instance_norm_per_channel_does_not():
    g = make_generator(CPU, 0)
    x = torch.randn(64, 120, 6)
    step = instance_norm(augment.weak_view(x, g, "step"))
    chan = instance_norm(augment.weak_view(x, g, "channel"))
    base = instance_norm(x)
    # per channel: the normalisation cancels the factor up to its sign
    assert (chan.abs() - base.abs()).abs().mean() < 1e-3
    assert (step.abs() - base.abs()).abs().mean() > 0.1
    with pytest.raises(ValueError):
        augment.weak_view(x, g, "window")


def test_draw_views_is_seeded():
    x = torch.randn(16, 120, 6)
    a = draw_views(x, make_generator(CPU, 4), instance_norm, "step")
    b = draw_views(x, make_generator(CPU, 4), instance_norm, "step")
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_pretraining_defaults_are_the_published_choices():
    """The three choices of the published code that the side-by-side ablation measured better
    (README) are what a run gets without asking; the other choices stay available."""
    from config import CONFIG_DIR, load_model_config
    from models.heads import ContrastiveHead
    cfg = PretrainConfig()
    assert (cfg.weak_view, cfg.views) == ("step", "once")
    head = ContrastiveHead(72, **load_model_config(CONFIG_DIR / "pretrain_model.json", "contrastive_head"))
    assert head.scale == pytest.approx(100 ** -0.5)          # the whole width, as published
    assert ContrastiveHead(72).scale == pytest.approx(25 ** -0.5)   # a config without the key: per head
    g = make_generator(CPU, 0)
    x = torch.randn(4, 12, 6)
    factors = augment.weak_view(x, g) / x
    assert torch.allclose(factors, factors[..., :1].expand_as(factors), rtol=1e-4)   # shared by the channels
