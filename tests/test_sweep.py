"""The sweep on two tiny synthetic datasets: complete, interrupted and resumed without redoing
finished runs, its job list run with xargs -P 2, and the aggregate table; run from a copy of
the repository whose path holds a space."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .stages import REPO, repo_copy, tiny_prepared


@pytest.fixture
def sweep_env(tmp_path):
    tiny_prepared(tmp_path / "data")
    repo_copy(tmp_path / "repo with space")
    pt = {"seed": 1, "batch_size": 64, "lr": 1e-3, "n_epochs": 2, "n_epochs_cl": 1, "lambda_recon": 6.0,
          "lambda_cl": 1.0, "train_rate": 0.8, "val_rate": 0.1}
    (tmp_path / "pt.json").write_text(json.dumps(pt))
    (tmp_path / "pt_recon.json").write_text(json.dumps({**pt, "n_epochs_cl": 0}))
    (tmp_path / "ct.json").write_text(json.dumps({"seed": 1, "batch_size": 32, "lr": 1e-3, "n_epochs": 2,
                                                  "train_rate": 0.8, "val_rate": 0.1}))
    env = {**os.environ, "DATASETS": "uci usc_had", "BACKBONES": "limu", "SEEDS": "1",
           "METHODS": "crosshar supervised", "LOO": "0", "AUG": "none", "PYTHON": sys.executable,
           "DATA_DIR": str(tmp_path / "data"), "PRETRAIN_CFG": str(tmp_path / "pt.json"),
           "RECON_CFG": str(tmp_path / "pt_recon.json"), "CLF_CFG": str(tmp_path / "ct.json"), "OMP_NUM_THREADS": "1"}
    return tmp_path, env


def sweep_script(tmp):
    return str(tmp / "repo with space" / "scripts" / "sweep.sh")


def run_sweep(workdir, env, *args, **kw):
    workdir.mkdir(exist_ok=True)
    return subprocess.run(["bash", sweep_script(workdir.parent), *args], cwd=workdir,
                          env={**env, "WORKDIR": str(workdir)}, capture_output=True, text=True, **kw)


def test_sweep_runs_from_a_path_with_a_space(sweep_env):
    """Every job command, eval'd by sweep.sh or run by xargs/sh, reaches sweep_job.sh whole
    (an unknown method is the cheapest thing that job can refuse)."""
    tmp, env = sweep_env
    env = {**env, "METHODS": "bogus"}
    direct = run_sweep(tmp / "w", env)
    assert direct.returncode == 2 and "unknown method bogus" in direct.stderr, direct.stderr
    listing = run_sweep(tmp / "w", env, "--list", check=True).stdout
    via_xargs = subprocess.run(["xargs", "-d", "\n", "-I{}", "sh", "-c", "{}"], input=listing, text=True,
                               capture_output=True, cwd=tmp / "w")
    assert via_xargs.stderr.count("unknown method bogus") == 2, via_xargs.stderr


def metrics(results):
    return {p.name: json.loads(p.read_text())["target_metrics"]["accuracy"] for p in sorted(results.glob("*.json"))}


@pytest.mark.slow
def test_sweep_interrupt_resume_xargs_and_aggregate(sweep_env):
    tmp, env = sweep_env
    jobs = run_sweep(tmp / "seq", env, "--list", check=True).stdout.splitlines()
    assert len(jobs) == 4 and all("sweep_job.sh" in j for j in jobs)

    # interrupt the sequential sweep once its first result exists, then rerun it
    seq = tmp / "seq"
    results = seq / "results" / "runs"
    proc = subprocess.Popen(["bash", sweep_script(tmp)], cwd=seq,
                            env={**env, "WORKDIR": str(seq)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(results.glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    first = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert 1 <= len(first) < 4, "interrupted part-way"
    rerun = run_sweep(seq, env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    done = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert len(done) == 4
    assert all(done[name] == mtime for name, mtime in first.items()), "finished runs not redone"
    assert "skip" in run_sweep(seq, env, timeout=600).stderr   # a third run does nothing

    # the job list under xargs -P 2 gives the same result files and numbers
    par = tmp / "par"
    par.mkdir()
    listing = run_sweep(par, env, "--list", check=True).stdout
    subprocess.run(["xargs", "-d", "\n", "-P", "2", "-I{}", "sh", "-c", "{}"], input=listing, text=True, cwd=par,
                   env={**env, "WORKDIR": str(par)}, check=True, capture_output=True, timeout=600)
    assert metrics(par / "results" / "runs") == metrics(results)

    agg = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), "--runs", str(results),
                          "--out", str(seq / "results")], capture_output=True, text=True, check=True)
    md = (seq / "results" / "summary.md").read_text()
    assert "uci -> usc_had" in md and "supervised" in md and "crosshar" in md
    assert (seq / "results" / "heatmap.png").stat().st_size > 1000
    assert len((seq / "results" / "summary.csv").read_text().splitlines()) == 5
    assert "from 4 runs" in agg.stdout


def test_aggregate_means_over_seeds_and_names_model_versions(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    accs = {("crosshar", "limu", "v1"): [0.5, 0.6, 0.7], ("supervised", "mamba", "cpu"): [0.4, 0.4],
            ("scratch", "limu", "v1"): [0.45]}
    for (method, backbone, mv), values in accs.items():
        for seed, acc in enumerate(values, 1):
            metrics = {"accuracy": acc, "macro_f1": acc / 2, "majority_rate": 0.39}
            (runs / f"{method}_{backbone}_{seed}.json").write_text(json.dumps({
                "method": method, "backbone": backbone, "model_version": mv, "source": "uci",
                "target": "usc_had", "seed": seed, "label_rate": 0.1, "target_metrics": metrics,
                "source_test_metrics": {"accuracy": 0.9}, "wall_seconds": 1.0}))
    subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), "--runs", str(runs),
                    "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    md = (tmp_path / "summary.md").read_text()
    assert "| 0.1 | crosshar | limu | 60.0 ± 10.0 (n=3) | 60.0 |" in md
    assert "| 0.1 | supervised | mamba -mv cpu | 40.0 ± 0.0 (n=2) | 40.0 |" in md
    assert "| 0.1 | scratch | limu | 45.0 (n=1) | 45.0 |" in md
    assert "usc_had 39.0" in md


def _write_runs(runs, accs, target="usc_had"):
    runs.mkdir(exist_ok=True)
    for (method, backbone, mv), values in accs.items():
        for seed, acc in enumerate(values, 1):
            metrics = {"accuracy": acc, "macro_f1": acc / 2, "majority_rate": 0.39}
            (runs / f"{method}_{backbone}_{mv}_{seed}_{target}.json").write_text(json.dumps({
                "method": method, "backbone": backbone, "model_version": mv, "source": "uci",
                "target": target, "seed": seed, "label_rate": 0.1, "target_metrics": metrics,
                "source_test_metrics": {"accuracy": 0.9}, "wall_seconds": 1.0}))


def test_aggregate_keep_grows_an_earlier_table_and_new_runs_replace_old_rows(tmp_path):
    aggregate = [sys.executable, str(REPO / "scripts" / "aggregate.py")]
    _write_runs(tmp_path / "old", {("crosshar", "limu", "v1"): [0.5, 0.6, 0.7],
                                   ("recon_only", "limu", "v1"): [0.4, 0.5, 0.9]})
    subprocess.run(aggregate + ["--runs", str(tmp_path / "old"), "--out", str(tmp_path / "t1")],
                   capture_output=True, text=True, check=True)
    # new: a mamba row, and recon_only seed 3 re-run (0.9 -> 0.3) replaces the kept row
    _write_runs(tmp_path / "new", {("crosshar", "mamba", "v1"): [0.55, 0.65]})
    (tmp_path / "new" / "r.json").write_text(json.dumps({
        "method": "recon_only", "backbone": "limu", "model_version": "v1", "source": "uci", "target": "usc_had",
        "seed": 3, "label_rate": 0.1, "target_metrics": {"accuracy": 0.3, "macro_f1": 0.15, "majority_rate": 0.39},
        "source_test_metrics": {"accuracy": 0.9}, "wall_seconds": 1.0}))
    out = subprocess.run(aggregate + ["--runs", str(tmp_path / "new"), "--out", str(tmp_path / "t2"),
                                      "--keep", str(tmp_path / "t1" / "summary.csv")],
                         capture_output=True, text=True, check=True)
    assert "from 8 runs" in out.stdout
    md = (tmp_path / "t2" / "summary.md").read_text()
    assert "| 0.1 | crosshar | limu | 60.0 ± 10.0 (n=3) | 60.0 |" in md
    assert "| 0.1 | recon_only | limu | 40.0 ± 10.0 (n=3) | 40.0 |" in md     # 0.4, 0.5, 0.3
    assert "| 0.1 | crosshar | mamba | 60.0 ± 7.1 (n=2) | 60.0 |" in md
    # paired: crosshar - recon_only (limu) = +10, +10, +40 -> mean 20, sd 17.3, se 10.0
    assert "| crosshar / limu | recon_only / limu | +20.0 ± 10.0 | 3 of 3 |" in md
    # mamba - limu (crosshar), seeds 1-2: +5, +5 -> se 0
    assert "| crosshar / mamba | crosshar / limu | +5.0 ± 0.0 | 2 of 2 |" in md


def test_aggregate_averages_pairs_and_unions_apart_and_pairs_their_differences_apart(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    # (method, source, target): accuracies at seeds 1, 2
    accs = {("crosshar", "uci", "usc_had"): [0.6, 0.7], ("recon_only", "uci", "usc_had"): [0.5, 0.5],
            ("crosshar", "uci,dsads", "usc_had"): [0.2, 0.4], ("recon_only", "uci,dsads", "usc_had"): [0.4, 0.4]}
    for (method, source, target), values in accs.items():
        for seed, acc in enumerate(values, 1):
            (runs / f"{method}_{source}_{seed}.json").write_text(json.dumps({
                "method": method, "backbone": "limu", "source": source, "target": target, "seed": seed,
                "label_rate": 0.1, "target_metrics": {"accuracy": acc, "macro_f1": acc, "majority_rate": 0.39}}))
    subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), "--runs", str(runs),
                    "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    md = (tmp_path / "summary.md").read_text()
    assert "| uci -> usc_had | mean over pairs | uci+dsads -> usc_had | mean over unions |" in md
    assert "| 0.1 | crosshar | limu | 65.0 ± 7.1 (n=2) | 65.0 | 30.0 ± 14.1 (n=2) | 30.0 |" in md
    # crosshar - recon_only: pairs +10, +20 -> +15 +- 5; unions -20, 0 -> -10 +- 10; never pooled
    pairs_part, unions_part = md.split("leave-one-out (union, seed) runs")[:2]
    assert "ordered (pair, seed) runs" in pairs_part
    assert "| crosshar / limu | recon_only / limu | +15.0 ± 5.0 | 2 of 2 |" in pairs_part
    assert "| crosshar / limu | recon_only / limu | -10.0 ± 10.0 | 0 of 2 |" in unions_part
    assert "+2.5" not in md     # the pooled mean of all four differences


def test_aggregate_keep_rejects_a_file_that_is_not_a_summary(tmp_path):
    _write_runs(tmp_path / "runs", {("crosshar", "limu", "v1"): [0.5]})
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), "--runs", str(tmp_path / "runs"),
                        "--out", str(tmp_path / "t"), "--keep", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "expected a summary.csv" in r.stderr
    assert not (tmp_path / "t" / "summary.md").exists()


def run_schedule_study(tmp, env, **settings):
    return subprocess.run(["bash", str(REPO / "scripts" / "schedule_study.sh")], cwd=tmp, capture_output=True,
                          text=True, timeout=900, env={**env, **settings})


def test_schedule_study_refuses_a_bad_length(sweep_env):
    tmp, env = sweep_env
    proc = run_schedule_study(tmp, env, EPOCHS="4 x", OUT=str(tmp / "sched"))
    assert proc.returncode == 2 and "EPOCHS: 'x' is not a positive whole number" in proc.stderr, proc.stderr
    assert not list((tmp / "sched").rglob("saved")), "nothing trained"


def test_schedule_study_list_writes_configs_and_prints_self_contained_jobs(sweep_env):
    """--list trains nothing: it writes each length's configs and prints one job per (seed,
    length, method) carrying the settings the job reads, so the lines can join another queue."""
    tmp, env = sweep_env
    out = tmp / "sched list"                      # a space: the job lines are quoted
    proc = subprocess.run(["bash", str(REPO / "scripts" / "schedule_study.sh"), "--list"], cwd=tmp,
                          capture_output=True, text=True, timeout=120,
                          env={**env, "EPOCHS": "3 8", "SEEDS": "1 2", "METHODS": "crosshar recon_only", "OUT": str(out), "PRECISION": "bf16"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 * 2 * 2                # seeds x lengths x methods
    assert all("PRECISION=bf16" in line and "OMP_NUM_THREADS=" in line and "CLF_CFG=" in line for line in lines)
    assert sum("sweep_job.sh recon_only limu 2 uci" in line and "e8/config/pretrain_recon.json" in line
               for line in lines) == 1
    assert json.loads((out / "e8" / "config" / "pretrain.json").read_text())["n_epochs_cl"] == 4
    assert not list(out.rglob("saved")) and not list(out.rglob("schedule.md")), "nothing ran"


@pytest.mark.slow
def test_schedule_study_one_work_folder_per_length(sweep_env):
    """Each length pretrains its own encoder (crosshar: half contrastive; recon_only: none) in its
    own folder; the table has one column per length and one row per method and pair."""
    tmp, env = sweep_env
    out = tmp / "sched"
    proc = run_schedule_study(tmp, env, EPOCHS="1 2", SEEDS="1", METHODS="crosshar recon_only", SOURCE="uci", TARGETS="usc_had", OUT=str(out),
                              PRETRAIN_CFG=str(tmp / "pt.json"), CLF_CFG=str(tmp / "ct.json"), PRECISION="fp32")
    assert proc.returncode == 0, proc.stderr
    for e in (1, 2):
        cfg = out / f"e{e}" / "config"
        assert json.loads((cfg / "pretrain.json").read_text())["n_epochs_cl"] == e // 2
        assert json.loads((cfg / "pretrain_recon.json").read_text())["n_epochs_cl"] == 0
        results = [json.loads(p.read_text()) for p in (out / f"e{e}").glob("*.json")]
        assert sorted(r["method"] for r in results) == ["crosshar", "recon_only"]
        histories = list((out / f"e{e}" / "saved").glob("pretrain*/history.csv"))
        assert len(histories) == 2   # one encoder per method, trained for this length's epochs
        assert all(len(h.read_text().strip().splitlines()) == 1 + e for h in histories)
    table = (out / "schedule.md").read_text()
    assert "| crosshar | uci -> usc_had |" in table and "| recon_only | uci -> usc_had |" in table
    assert "1 epochs" in table and "2 epochs" in table
    assert (out / "schedule.png").stat().st_size > 0
