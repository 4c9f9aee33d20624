import json

from django.core.management.base import BaseCommand

from annotation.management.lookup import project_named
from annotation.services.quality import QualityStatus, compute_quality_report, fingerprint


def _num(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value):
    return "—" if value is None else f"{value:.1%}"


class Command(BaseCommand):
    help = (
        "Compute a project's label-quality report now (agreement, HLP per labeler, slice and class, ambiguity, "
        "consensus accuracy against gold), store it, and print a summary or, with --json, the API's JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug (or numeric id)")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON, as the API returns it")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        current = fingerprint(project)
        report = compute_quality_report(project, current)
        payload = QualityStatus(report, current, stale=False, refresh_queued=False, computed_inline=True).payload()
        if opts["json"]:
            self.stdout.write(json.dumps(payload, indent=2, allow_nan=False))
            return
        self.stdout.write(self.summary(payload))

    def summary(self, r):
        lines = [f"Label quality of {r['project']['name']} ({r['project']['slug']}), computed {r['computed_at']}"]
        if not r.get("supported"):
            return "\n".join([*lines, r["reason"]])
        c, a, h = r["counts"], r["agreement"], r["hlp"]
        lines += [
            f"{c['annotations']:,} current labels on {c['items']:,} items by {c['labelers']:,} labelers; "
            f"ground truth on {c['truth_items']:,} items "
            f"({c['gold_items']:,} gold, {c['resolution_items']:,} resolved)",
            f"Krippendorff's alpha {_num(a['krippendorff_alpha'])}   Fleiss' kappa {_num(a['fleiss_kappa'])}   "
            f"pairwise agreement {_pct(a['percent_agreement'])}   (N = {a['paired_items']:,} items with 2+ labels)",
            f"HLP: {_pct(h['value'])} [{_pct(h['ci_low'])}, {_pct(h['ci_high'])}]  {h['label']}"
            + (f"; mean of labelers {_pct(h['labeler_mean'])}" if h["basis"] == "ground_truth" else ""),
        ]
        cons = r["consensus"]
        if cons["gold_items"]:
            mv, ds = cons["majority_vote"], cons["dawid_skene"]
            lines.append(
                f"Consensus vs gold ({cons['gold_items']:,} items): majority vote {_pct(mv['accuracy'])} "
                f"({mv['ties_on_gold']:,} ties broken at random), Dawid-Skene {_pct(ds['accuracy'])}"
                + ("" if ds.get("converged", True) else f" (did not converge in {ds['n_iter']} rounds)")
            )
        head = f"{'labeler':<28} {'labels':>7} {'agree':>7} {'kappa':>7} {'accuracy':>9} {'95% CI':>17} {'/hour':>7}"
        lines += ["", head]
        for row in r["labelers"][:25]:
            ci = f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]" if row["accuracy"] is not None else ""
            per_hour = "—" if row["labels_per_hour"] is None else f"{row['labels_per_hour']:.0f}"
            lines.append(
                f"{row['name'][:28]:<28} {row['labels']:>7,} {_pct(row['agreement']):>7} {_num(row['kappa'], 2):>7} "
                f"{_pct(row['accuracy']):>9} {ci:>17} {per_hour:>7}"
            )
        if len(r["labelers"]) > 25:
            lines.append(f"... and {len(r['labelers']) - 25:,} more labelers (see --json)")
        pairs = r["ambiguity"]["confused_pairs"][:5]
        if pairs:
            lines += ["", "Most confused class pairs:"]
            for p in pairs:
                lines.append(f"  {p['a_name']} / {p['b_name']}: {p['disagreements']:,} disagreements -> {p['action']}")
        d = r["duplicates"]
        lines += [
            "",
            f"History: {d['edited_pairs']:,} edited (item, labeler) pairs, "
            f"{d['conflicting_pairs']:,} with a changed label",
            f"Computed in {r['timing']['load_seconds'] + r['timing']['compute_seconds']:.2f} s",
        ]
        return "\n".join(lines)
