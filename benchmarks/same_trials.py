"""Does a change keep the search's results? A `tune` study's trials, before and after, compared.

Runs the `tune` entry point as a user does (one worker, so the trials come in one order) in a
throw-away folder, and keeps what the study decided: every trial's state, parameters, objective value
and label-free and label metrics (timings and run ids left out), the study's summary metrics, and a
digest of the chosen clustering's ``clusters.csv``. ``--save`` writes them to a JSON file;
``--against`` runs again and compares, writing ``docs/benchmarks/<name>.md`` with "identical" or the
differences.

    python benchmarks/same_trials.py --save /tmp/before.json              # on the old code
    python benchmarks/same_trials.py --against /tmp/before.json           # on the new code
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Everything a trial records that is not a time, a process or a run id: what the search decided.
NOT_RESULTS = ("_seconds", "mlflow_run_id", "worker_run_id")


def snapshot(dataset: str, encoder: str, n_trials: int, seed: int) -> dict:
    import mlflow
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "SELECTOR_JOURNAL": f"{tmp}/journal.log"}
        subprocess.run([sys.executable, str(ROOT / "entrypoints" / "tune.py"), "--dataset", dataset,
                        "--encoder", encoder, "--n_trials", str(n_trials), "--seed", str(seed), "--workers", "1"],
                       cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{tmp}/journal.log"))
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                   "attrs": {k: v for k, v in sorted(t.user_attrs.items()) if not k.endswith(NOT_RESULTS)}}
                  for t in study.trials]
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName LIKE 'tune-%'",
                                    output_format="list")[0]
        csv = Path(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="clusters.csv",
                                                       dst_path=tmp)).read_bytes()
        metrics = {k: v for k, v in sorted(parent.data.metrics.items()) if not k.endswith(NOT_RESULTS)
                   and k not in ("reductions_fitted", "neighbour_graphs_built")}
    return {"dataset": dataset, "encoder": encoder, "n_trials": n_trials, "seed": seed, "trials": trials,
            "summary": metrics, "clusters_csv_sha256": hashlib.sha256(csv).hexdigest()}


def differences(before: dict, after: dict) -> list[str]:
    found = []
    if len(before["trials"]) != len(after["trials"]):
        found.append(f"{len(before['trials'])} trials before, {len(after['trials'])} after")
    for old, new in zip(before["trials"], after["trials"]):
        for key in ("state", "value", "params", "attrs"):
            if old[key] != new[key]:
                changed = sorted(k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k)) \
                    if isinstance(old[key], dict) else [f"{old[key]} → {new[key]}"]
                found.append(f"trial {old['number']}: {key} differs ({', '.join(map(str, changed))})")
    changed = sorted(k for k in set(before["summary"]) | set(after["summary"])
                     if before["summary"].get(k) != after["summary"].get(k))
    if changed:
        found.append(f"summary metrics differ: {', '.join(changed)}")
    if before["clusters_csv_sha256"] != after["clusters_csv_sha256"]:
        found.append("clusters.csv differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--encoder", default="raw")
    parser.add_argument("--n_trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="", help="write this run's trials to a JSON file")
    parser.add_argument("--against", default="", help="compare this run's trials with a saved JSON file")
    parser.add_argument("--name", default="same_trials")
    args = parser.parse_args()
    if bool(args.save) == bool(args.against):
        raise SystemExit("give one of --save FILE or --against FILE")
    if args.against:
        before = json.loads(Path(args.against).read_text())
        args.dataset, args.encoder, args.n_trials, args.seed = (before[k] for k in ("dataset", "encoder", "n_trials",
                                                                                   "seed"))
    now = snapshot(args.dataset, args.encoder, args.n_trials, args.seed)
    if args.save:
        now["commit"] = report.commit()
        Path(args.save).write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"{len(now['trials'])} trials written to {args.save}")
        return
    found = differences(before, now)
    verdict = "identical" if not found else f"{len(found)} differences"
    body = (f"`tune` on `{args.dataset}` with `{args.encoder}`, {args.n_trials} trials, seed {args.seed}, one "
            f"worker; compared with `{args.against}` (commit recorded there: {before.get('commit', 'unknown')}): "
            f"every trial's state, parameters, objective value and metrics (not timings), the summary metrics "
            f"and the chosen `clusters.csv`.\n\n**{verdict}**\n" + "".join(f"\n- {line}" for line in found))
    print(body)
    report.write(args.name, "same_trials: the same study before and after a change", body)
    raise SystemExit(0 if not found else 1)


if __name__ == "__main__":
    main()
