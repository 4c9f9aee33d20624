from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from active_learning.sampling import STRATEGIES, parse_weights
from active_learning.simulation import simulate, write_json, write_png
from training.trainers import TRAINERS


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``digits`` (scikit-learn's 8x8 digits, pixels / 16) or a ``.npz`` file with arrays X and y."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0).astype(np.float32), digits.target
    path = Path(name)
    if path.suffix != ".npz":
        raise CommandError(f"--dataset must be 'digits' or a .npz file with arrays X and y, got {name!r}")
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
        "strategy over several seeds, the labels each needs to reach 95 % of the full-pool accuracy, curves.json "
        "and learning_curves.png in --out."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", default="digits", help="'digits' or a .npz file with arrays X and y")
        parser.add_argument(
            "--strategies", default=",".join(STRATEGIES), help=f"comma-separated, of {', '.join(STRATEGIES)}"
        )
        parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
        parser.add_argument("--initial", type=int, default=20, help="labels drawn at random to start")
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

        try:
            result = simulate(
                X,
                y,
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
        result["dataset"] = opts["dataset"]
        out = Path(opts["out"])
        json_path = write_json(result, out / "curves.json")
        png_path = write_png(result, out / "learning_curves.png", title=f"Active learning on {opts['dataset']}")
        self.stdout.write(self.table(result))
        self.stdout.write(f"curves: {json_path}\nplot:   {png_path}")

    @staticmethod
    def table(r) -> str:
        budget = r["budget"]
        lines = [
            f"{r['trainer']} on {r['n_pool']:,} pool / {r['n_test']:,} test items, {len(r['seeds'])} seed(s), "
            f"initial {r['initial_size']}, batch {r['batch']}, budget {budget}",
            f"full-pool accuracy {r['full_pool_accuracy']:.4f}; {r['target_fraction']:.0%} of it: "
            f"{r['target_accuracy']:.4f}",
            "",
            f"{'strategy':<18} {'labels to ' + format(r['target_fraction'], '.0%'):>16} "
            f"{'accuracy at ' + str(budget):>22}",
        ]
        for name, c in r["strategies"].items():
            reached = c["labels_to_target"]
            reached = f"{reached:,}" if reached is not None else f"not by {budget:,}"
            final = f"{c['final_accuracy']:.4f} ± {c['std'][-1]:.4f}"
            lines.append(f"{name:<18} {reached:>16} {final:>22}")
        return "\n".join(lines) + "\n"
