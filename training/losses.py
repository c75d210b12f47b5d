"""Losses: masked reconstruction and NT-Xent (SimCLR's normalised temperature-scaled CE)."""
import torch
import torch.nn.functional as F


def reconstruction_loss(pred, target):
    """Mean squared error over the masked steps and channels (LIMU-BERT)."""
    return F.mse_loss(pred.float(), target.float())


def nt_xent(z1, z2, temperature=0.2):
    """NT-Xent with cosine similarity over the 2N views; the positive of view i is its
    partner, the other 2N - 2 views are negatives. Mean over the 2N anchors. Computed in fp32."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.size(0)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)
