"""Embedding maps: how far apart are source and target in an encoder's space?

Each window's pooled vector (the encoder's (B, H) output: LIMU-BERT's mean over time steps,
HARMamba's class token; the encoder normalises its raw input itself) for an equal, seeded
sample of every dataset; a 2-D map of them (t-SNE, or UMAP where umap-learn is installed)
coloured by dataset and by class; and numbers beside it, all from logistic regression on the
standardised vectors:
  * domain separability: cross-validated accuracy of telling the datasets apart (chance 1/k,
    the samples being balanced): 1.0 = disjoint, chance = indistinguishable;
  * class accuracy: cross-validated accuracy of the class over all sampled windows;
  * probe transfer: a class probe trained on the first dataset, scored on each other one.
The PNG and its JSON are written together; the JSON records the encoder (path relative to
itself, and id) as every artifact does (training/artifacts.py).
"""
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from common.io import atomic_write_many, json_bytes
from common.lock import hold
from dataset.load import DEFAULT_VERSION, load_windows
from models import spec as model_spec

from . import artifacts
from .loop import batched_eval

METHODS = ("tsne", "umap")


def encoder_path(path):
    """An encoder checkpoint: `path` itself, or best.pt in a run folder."""
    path = Path(path)
    return path / "best.pt" if path.is_dir() else path


def load_encoder(path=None, *, random_init=False, seed=None, spec=None, device="cpu"):
    """-> (encoder in eval mode, its model spec, a short description, its checkpoint or None).

    path: an encoder checkpoint (best.pt) or its pretraining run folder, loaded and checked as
    every stage does. random_init: the same architecture untrained ("before pretraining"); with
    a checkpoint, built under its pretraining seed (unless `seed`), exactly as pretraining builds
    the encoder it then trains. Without a checkpoint, `spec` (models/spec.py) says what to build.
    """
    ckpt = None
    if path is not None:
        path = encoder_path(path)
        ckpt = artifacts.load_checkpoint(path, "encoder", map_location=device)
        spec = ckpt["model_args"]
        if seed is None:
            seed = ckpt["config"].get("train", {}).get("seed", 0)
    elif not random_init or spec is None:
        raise UserError("no encoder: expected -f ENCODER (best.pt or its run folder) or -s RUN, or "
                        "--random-init for an untrained one")
    if not random_init:
        encoder = artifacts.build_model(ckpt, path, device).eval()
        return encoder, spec, f"{path} (epoch {ckpt['epoch']})", ckpt
    seed = 0 if seed is None else seed
    torch.manual_seed(seed)         # what run_pretraining does right before building its encoder
    encoder = model_spec.build(spec, path or "--random-init").to(device).eval()
    what = f"untrained {spec['backbone']} encoder (seed {seed}" + (f", as {path} before pretraining)"
                                                                    if path else ")")
    return encoder, spec, what, ckpt


def pooled(encoder, x, device, precision="fp32"):
    """Pooled vectors (N, H) of raw windows x, float64 numpy."""
    return batched_eval(lambda b: encoder(b)[1], x, device, precision).cpu().double().numpy()


def balanced_sample(sizes, per_dataset, seed):
    """Per dataset, sorted indices of min(per_dataset, smallest size) windows (seeded)."""
    n = min([per_dataset, *sizes])
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(size, n, replace=False)) for size in sizes]


def _probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def cv_accuracy(x, y, folds, seed):
    """Stratified k-fold accuracy of a logistic-regression probe: mean, std and per fold."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    folds = min(folds, int(np.bincount(y).min()))
    if folds < 2:
        raise UserError("too few windows per group for cross-validation; expected at least 2 each")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(_probe(), x, y, cv=cv)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()), "folds": scores.tolist()}


def separability(x, domain, classes, n_classes, folds=5, seed=0):
    """The numbers of the map (see the module docstring)."""
    k = int(domain.max()) + 1
    result = {"domain": {**cv_accuracy(x, domain, folds, seed), "chance": 1 / k}}
    present = np.unique(classes)
    if len(present) > 1:
        counts = np.bincount(classes, minlength=n_classes)
        result["class"] = {**cv_accuracy(x, np.searchsorted(present, classes), folds, seed),
                           "majority": float(counts.max() / counts.sum())}
        first = domain == 0
        if len(np.unique(classes[first])) > 1:
            probe = _probe().fit(x[first], classes[first])
            result["probe_transfer"] = {
                str(d): float((probe.predict(x[domain == d]) == classes[domain == d]).mean())
                for d in range(1, k)}
    return result


def project(x, method="tsne", seed=0):
    """(N, H) -> (N, 2) on the standardised vectors."""
    from sklearn.preprocessing import StandardScaler
    x = StandardScaler().fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise UserError("--method umap needs umap-learn, which is not installed: expected "
                            "`pip install umap-learn`, or the default --method tsne")
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    perplexity = min(30.0, (len(x) - 1) / 3)
    # one OpenMP thread: on shared cores its spinning threads made t-SNE 10-20x slower
    # (200 points: 65 s -> 4 s on the 2-core machine of the README, under load)
    with threadpool_limits(1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(x)


def draw(points, domain, names, classes, class_names, title, file):
    """Two panels, by dataset and by class (marker = dataset), as PNG into a binary file."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    markers = "o^sDvP*X"
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    colours = plt.get_cmap("tab10").colors
    for d, name in enumerate(names):
        at = domain == d
        axes[0].scatter(*points[at].T, s=7, alpha=0.6, color=colours[d % 10], label=name,
                        marker=markers[d % len(markers)], linewidths=0)
    class_colours = plt.get_cmap("Set1").colors
    for c, class_name in enumerate(class_names):
        label = class_name          # one legend entry per class, on its first dataset
        for d in range(len(names)):
            at = (classes == c) & (domain == d)
            if at.any():
                axes[1].scatter(*points[at].T, s=7, alpha=0.6, color=class_colours[c % 9],
                                marker=markers[d % len(markers)], linewidths=0, label=label)
                label = None
    for ax, what in zip(axes, ("dataset", "class (marker: dataset)")):
        ax.set_title(f"by {what}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=8, markerscale=3, loc="best", framealpha=0.8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(file, format="png", dpi=90)
    plt.close(fig)


def summary_line(numbers):
    d = numbers["domain"]
    line = (f"domain classifier (logistic regression, {len(d['folds'])}-fold): accuracy "
            f"{d['accuracy']:.3f} ± {d['std']:.3f} (chance {d['chance']:.3f})")
    if "class" in numbers:
        c = numbers["class"]
        line += f"; class accuracy {c['accuracy']:.3f} (majority {c['majority']:.3f})"
    return line


def embedding_map(datasets, out, *, encoder=None, random_init=False, spec_for=None,
                  version=DEFAULT_VERSION, data_dir="dataset", per_dataset=1500, method="tsne",
                  folds=5, seed=0, init_seed=None, device="cpu", precision="fp32", say=print):
    """Write OUT (.png) and OUT with .json together; return the JSON's content.

    encoder: a checkpoint or run folder (see load_encoder); spec_for: Windows -> encoder spec,
    for --random-init without one (training/cli.py encoder_spec with the flags)."""
    from tqdm import tqdm
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: expected a .png path (the .json goes beside it)")
    if len(datasets) < 2 or len(set(datasets)) != len(datasets):
        raise UserError(f"datasets {' '.join(datasets)}: expected two or more distinct ones")
    if method not in METHODS:
        raise UserError(f"--method {method}: expected one of {', '.join(METHODS)}")
    if per_dataset < 2 * folds or folds < 2:
        raise UserError(f"--per-dataset {per_dataset}, --folds {folds}: expected at least 2 folds "
                        "and 2 windows per fold")
    windows = [load_windows(name, version, data_dir) for name in datasets]
    spec = spec_for(windows[0]) if spec_for is not None and encoder is None else None
    model, spec, described, ckpt = load_encoder(encoder, random_init=random_init, seed=init_seed,
                                                spec=spec, device=device)
    for w in windows:
        model_spec.check_input(spec, w.data.shape[1], w.data.shape[2], f"{w.name}_{w.version}")
    class_names = list(dict.fromkeys(c for w in windows for c in w.class_names))
    picks = balanced_sample([len(w.data) for w in windows], per_dataset, seed)
    vectors, domain, classes = [], [], []
    for d, (w, pick) in enumerate(tqdm(list(zip(windows, picks)), desc="embedding", unit="dataset",
                                       disable=None)):
        vectors.append(pooled(model, torch.as_tensor(w.data[pick], device=device), device, precision))
        domain.append(np.full(len(pick), d))
        classes.append(np.array([class_names.index(w.class_names[a]) for a in w.activity[pick]]))
    x, domain, classes = np.concatenate(vectors), np.concatenate(domain), np.concatenate(classes)
    say(f"{described}: {len(pick)} windows per dataset of {', '.join(datasets)}; "
        f"{method} map of {len(x)} pooled vectors ({x.shape[1]} dims)")
    numbers = separability(x, domain, classes, len(class_names), folds, seed)
    if "probe_transfer" in numbers:
        numbers["probe_transfer"] = {datasets[int(d)]: v for d, v in numbers["probe_transfer"].items()}
    say(summary_line(numbers))
    points = project(x, method, seed)
    d = numbers["domain"]
    title = (f"{', '.join(datasets)} ({version}) in {described}\n"
             f"domain classifier accuracy {d['accuracy']:.3f} ± {d['std']:.3f} "
             f"(chance {d['chance']:.3f}), {len(pick)} windows each")
    json_path = out.with_suffix(".json")
    result = {"datasets": list(datasets), "version": version, "encoder": described,
              "random_init": bool(random_init), "model_args": spec,
              "lineage": {"encoder": artifacts.ref(encoder_path(encoder), ckpt["id"], json_path.parent)
                          if ckpt else None},
              "windows_per_dataset": len(pick), "method": method, "seed": seed,
              "class_names": class_names, **numbers}
    with hold(out):
        atomic_write_many({out: lambda f: draw(points, domain, datasets, classes, class_names, title, f),
                           json_path: lambda f: f.write(json_bytes(result))})
    say(f"wrote {out} and {json_path}")
    return result


__all__ = ["encoder_path", "load_encoder", "pooled", "balanced_sample", "cv_accuracy", "separability", "project",
           "draw", "embedding_map", "summary_line"]
