import torch

from training import augment


def test_channel_aug_permutes_acc_and_gyro_identically():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(2, 5, 6)
    out = augment.expand_training_set(x, "channel_aug", torch.Generator().manual_seed(0))
    assert out.shape == (12, 5, 6)
    for k in range(6):
        copy = out[2 * k:2 * k + 2]
        acc_perm = [int((copy[0, 0, i] - x[0, 0, 0]).item()) for i in range(3)]
        gyro_perm = [int((copy[0, 0, 3 + i] - x[0, 0, 3]).item()) for i in range(3)]
        assert acc_perm == gyro_perm
    assert len({tuple(out[2 * k, 0].tolist()) for k in range(6)}) == 6, "six distinct permutations"


def test_rotation_preserves_norms_and_is_shared_by_acc_and_gyro():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 50, 6)
    out = augment.expand_training_set(x, "rotation_random", g)
    assert out.shape == (16 * 6, 50, 6)
    rotated = out[:16]
    for a, b in ((slice(0, 3), slice(0, 3)), (slice(3, 6), slice(3, 6))):
        assert torch.allclose(rotated[..., a].norm(dim=-1), x[..., b].norm(dim=-1), atol=1e-5)
    # recover each window's rotation from acc and check it maps gyro too
    for i in range(16):
        R = torch.linalg.lstsq(x[i, :, :3], rotated[i, :, :3]).solution
        assert torch.allclose(x[i, :, 3:] @ R, rotated[i, :, 3:], atol=1e-4)
        assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-4)
        assert torch.det(R) > 0


def test_permute_segments_reorders_whole_segments():
    g = torch.Generator().manual_seed(3)
    x = torch.arange(120, dtype=torch.float32).view(1, 120, 1).repeat(64, 1, 6)
    out = augment.permute_segments(x, g, max_segments=8)
    assert torch.equal(out.sort(dim=1).values, x), "a permutation of the steps"
    steps = out[..., 0]
    jumps = (steps[:, 1:] - steps[:, :-1] != 1).sum(1)
    assert (jumps <= 7).all(), "at most 7 cuts"
    assert (jumps > 0).float().mean() > 0.5, "most windows are actually permuted"


def test_other_expansions_and_views_keep_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 120, 6)
    for method in ("jitter", "scaling", "permutation"):
        out = augment.expand_training_set(x, method, g)
        assert out.shape == (48, 120, 6)
        assert torch.equal(out[-8:], x), "the originals are kept"
    assert augment.expand_training_set(x, "none", g) is x
    assert augment.weak_view(x, g).shape == x.shape
    assert augment.strong_view(x, g).shape == x.shape
