"""The per-epoch history every training stage keeps beside its checkpoint: history.csv (epoch,
train losses, validation losses, seconds, training windows/s), curve.png (the learning curves)
and, with --tensorboard, the same scalars as TensorBoard events in tensorboard/. A resumed run
keeps the rows up to the epoch it resumes after and appends."""
import csv
import io
import time
from pathlib import Path

from common.errors import UserError
from common.io import atomic_write, atomic_write_many

DRAW_EVERY_S = 60      # the curve is redrawn at most this often while a run goes on


def summary_writer():
    """TensorBoard's SummaryWriter class, or one UserError line when it is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard: the tensorboard package is not installed; pip install "
                        "tensorboard, or run without --tensorboard") from None
    return SummaryWriter


class History:
    """live=True (pretraining): the CSV is rewritten after every epoch, so it is on disk with
    last.pt; live=False (the classifier, saved only when it ends): the caller writes files()."""

    def __init__(self, folder, resume_epoch=0, tensorboard=False, live=True):
        self.folder, self.live = Path(folder), live
        self.csv, self.png = self.folder / "history.csv", self.folder / "curve.png"
        self.rows = [r for r in self._read() if int(r["epoch"]) <= resume_epoch] if resume_epoch else []
        self.tb = (summary_writer()(str(self.folder / "tensorboard"), purge_step=resume_epoch + 1)
                   if tensorboard else None)
        self.drawn = time.monotonic()

    def _read(self):
        try:
            with open(self.csv, newline="") as f:
                return list(csv.DictReader(f))
        except (OSError, csv.Error):
            return []       # a lost history is not a reason to stop a resume

    def log(self, epoch, train, val, seconds, train_seconds, windows):
        row = {"epoch": epoch, **{f"train_{k}": float(v) for k, v in train.items()},
               **{f"val_{k}": float(v) for k, v in val.items()},
               "seconds": round(seconds, 3), "windows_per_s": round(windows / max(train_seconds, 1e-9), 1)}
        self.rows.append(row)
        if self.tb:
            for k, v in row.items():
                if k != "epoch":
                    self.tb.add_scalar(k, v, epoch)
            self.tb.flush()
        if self.live:
            atomic_write(self.csv, self._write_csv)
            if time.monotonic() - self.drawn > DRAW_EVERY_S:
                atomic_write(self.png, self._draw)
                self.drawn = time.monotonic()

    def _columns(self):
        """epoch, train_*, val_*, seconds, windows_per_s (phase 2 adds a train column)."""
        seen = list(dict.fromkeys(k for r in self.rows for k in r))
        return sorted(seen, key=lambda k: (0 if k == "epoch" else 1 if k.startswith("train_")
                                           else 2 if k.startswith("val_") else 3))

    def _write_csv(self, f):
        columns = self._columns()
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        f.write(text.getvalue().encode())

    def _draw(self, f):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for column in [k for k in self._columns() if k.startswith(("train_", "val_"))]:
            points = [(int(r["epoch"]), float(r[column])) for r in self.rows if r.get(column) not in (None, "")]
            if points:
                ax.plot(*zip(*points), marker=".", label=column,
                        linestyle="--" if column.startswith("val_") else "-")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(self.folder.name, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(f, format="png", dpi=100)
        plt.close(fig)

    def files(self):
        """{path: writer} of the CSV and the curve, for a caller's all-or-nothing write."""
        return {self.csv: self._write_csv, self.png: self._draw}

    def close(self):
        if self.live and self.rows:
            atomic_write_many(self.files())
        if self.tb:
            self.tb.close()
