from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from active_learning.sampling import ALL_STRATEGIES, parse_weights
from active_learning.simulation import aggregate, simulate_splits, write_json, write_png
from training.trainers import TRAINERS

# Datasets that ship inside scikit-learn's wheel (read from the installed files, no download).
BUNDLED = ("digits", "breast_cancer", "wine", "iris")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``digits`` (scikit-learn's 8x8 digits, pixels / 16), ``breast_cancer``, ``wine`` or ``iris``
    (scikit-learn's bundled tables, raw unscaled features), or a ``.npz`` file with arrays X and y."""
    if name in BUNDLED:
        from sklearn import datasets

        data = getattr(datasets, f"load_{name}")()
        if name == "digits":
            return (data.images / 16.0).astype(np.float32), data.target
        return data.data.astype(np.float32), data.target
    path = Path(name)
    if path.suffix != ".npz":
        raise CommandError(
            f"--dataset must be one of {', '.join(BUNDLED)} or a .npz file with arrays X and y, got {name!r}"
        )
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    try:
        # No pickles: an .npz can carry code in object arrays.
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("X", "y") if key not in data.files]
            if missing:
                held = ", ".join(data.files) or "nothing"
                raise CommandError(f"{path} has no array named {' or '.join(missing)} (it holds {held})")
            X, y = data["X"], data["y"]
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path} as .npz with numeric X and numeric or string y: {exc}") from None
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise CommandError(f"X in {path} must be numeric, got {X.dtype}")
    if len(X) != len(y):
        raise CommandError(f"X has {len(X)} rows but y has {len(y)} labels in {path}")
    return X, y


class Command(BaseCommand):
    help = (
        "Simulate active learning with an oracle: learning curves (labels vs held-out test accuracy) per sampling "
        "strategy over several seeds and test splits; per strategy the area under the curve and the labels it needs "
        "to reach 95 % of the full-pool accuracy, with 95 % intervals over splits and seeds; curves.json and "
        "learning_curves.png (the first split) in --out."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dataset", default="digits", help=f"{', '.join(BUNDLED)} or a .npz file with arrays X and y"
        )
        parser.add_argument(
            "--strategies", default=",".join(ALL_STRATEGIES), help=f"comma-separated, of {', '.join(ALL_STRATEGIES)}"
        )
        parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
        parser.add_argument("--splits", type=int, default=3, help="number of test splits (split seeds 0, 1, ...)")
        parser.add_argument("--initial", type=int, default=20, help="labels drawn at random (label-blind) to start")
        parser.add_argument("--batch", type=int, default=20, help="labels chosen per round")
        parser.add_argument("--budget", type=int, default=500, help="labels at which a run stops")
        parser.add_argument("--test-size", type=float, default=0.3, help="share of the data held out for testing")
        parser.add_argument("--trainer", default="sklearn_logreg", choices=sorted(TRAINERS))
        parser.add_argument("--weights", default="", help="mix weights, e.g. margin:0.45,diversity:0.4,random:0.15")
        parser.add_argument("--out", required=True, help="folder for curves.json and learning_curves.png")

    def handle(self, *args, **opts):
        X, y = load_dataset(opts["dataset"])
        strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
        try:
            weights = parse_weights(opts["weights"])
        except ValueError as exc:
            raise CommandError(f"--weights: {exc}") from None

        def progress(strategy, seed, accuracies):
            if opts["verbosity"] >= 2:
                self.stdout.write(f"  {strategy} seed {seed}: accuracy {accuracies[0]:.3f} -> {accuracies[-1]:.3f}")

        if opts["splits"] < 1:
            raise CommandError("--splits must be at least 1")
        try:
            results = simulate_splits(
                X,
                y,
                split_seeds=range(opts["splits"]),
                strategies=strategies,
                seeds=opts["seeds"],
                initial=opts["initial"],
                batch=opts["batch"],
                budget=opts["budget"],
                trainer=opts["trainer"],
                test_size=opts["test_size"],
                weights=weights,
                progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        summary = aggregate(results, reference="random")
        result = {**results[0], "dataset": opts["dataset"], "splits": results, "summary": summary}
        out = Path(opts["out"])
        json_path = write_json(result, out / "curves.json")
        png_path = write_png(
            results[0], out / "learning_curves.png", title=f"Active learning on {opts['dataset']} (split 0)"
        )
        self.stdout.write(self.table(results, summary))
        self.stdout.write(f"curves: {json_path}\nplot:   {png_path}")

    @staticmethod
    def table(results, summary) -> str:
        r = results[0]
        budget = r["budget"]
        n_runs = len(results) * len(r["seeds"])
        lines = [
            f"{r['trainer']} on {r['n_pool']:,} pool / {r['n_test']:,} test items, {len(results)} test split(s) x "
            f"{len(r['seeds'])} seed(s) = {n_runs} runs, initial {r['initial_size']}, batch {r['batch']}, "
            f"budget {budget}",
            "full-pool accuracy per split (best of a C grid): "
            + ", ".join(f"{x['full_pool_accuracy']:.4f}" for x in results)
            + f"; target {r['target_fraction']:.0%} of it",
            "intervals: 95 % bootstrap over splits, then seeds; a run that never reaches the target counts as "
            f"{budget + r['batch']} labels",
            "",
            f"{'strategy':<18} {'AUC':>22} {'labels to ' + format(r['target_fraction'], '.0%'):>24} "
            f"{'x random':>20} {'accuracy at ' + str(budget):>22}",
        ]
        for name, s in summary.items():
            auc, n, ratio = s["auc"], s["labels"], s["vs_reference"]
            final = np.mean([x["strategies"][name]["final_accuracy"] for x in results])
            never = f" ({s['censored']} never)" if s["censored"] else ""
            lines.append(
                f"{name:<18} {auc['mean']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}] "
                f"{n['mean']:>6.0f} [{n['low']:.0f}, {n['high']:.0f}]{never:>10} "
                f"{ratio['mean']:>5.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}] {final:>14.4f}"
                if ratio
                else f"{name:<18} {auc['mean']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}] {n['mean']:>6.0f}{never}"
            )
        return "\n".join(lines) + "\n"
