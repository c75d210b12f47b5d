"""Classification metrics, their summary over seeds and the confusion-matrix figure: computed
in one place."""
import statistics

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score


def percent_mean_sd(values):
    """Fractions over seeds as "mean ± sd" in percent (sample sd); one value alone, since one
    seed gives no spread."""
    v = [100 * x for x in values]
    return f"{v[0]:.1f}" if len(v) == 1 else f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"


def percent_mean_se(differences):
    """Paired differences (fractions) as "+mean ± standard error" in percentage points, and how
    many are above zero; the standard error treats the differences as independent. One
    difference alone has no spread."""
    d = [100 * x for x in differences]
    wins = sum(x > 0 for x in d)
    if len(d) == 1:
        return f"{d[0]:+.1f}", wins
    return f"{statistics.mean(d):+.1f} ± {statistics.stdev(d) / len(d) ** 0.5:.1f}", wins


def classification_metrics(y_true, y_pred, n_classes):
    labels = list(range(n_classes))
    kw = dict(labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision_score(y_true, y_pred, average="macro", **kw)),
        "macro_recall": float(recall_score(y_true, y_pred, average="macro", **kw)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", **kw)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", **kw)),
        "majority_rate": float(np.bincount(y_true, minlength=n_classes).max() / max(1, len(y_true))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def save_confusion_png(cm, class_names, title, path):
    """Row-normalised confusion matrix with counts; written by the caller's atomic writer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.0 * len(class_names) + 1.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
