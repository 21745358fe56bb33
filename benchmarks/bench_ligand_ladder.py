"""Where the ligand analysis's LogIC50 error comes from: a removal ladder and per-well contributions.

Issue 19, item 1. For each seed, the embedded default plate (``python -m analysis.ligand_affinity
--seed S``: manual, ArtSeg and no removal) and the same plate with the masks of a strongly
supervised artifact U-Net trained on the same 480 fields with their pixel masks (the analyses'
recipe and budget): the ladder manual / strong / ArtSeg (weak) / none. Then, from the per-field
intensities, per well and per artifact kind: how far each mode's specific signal is from manual
removal's, and which share of the no-removal bias each model's masks remove.

    python benchmarks/bench_ligand_ladder.py --seeds 0 1 2 --out benchmarks/out/ladder

Field-level bias of a mode = its ``cell_mean - background_mean`` minus manual removal's for the
same field; a well's bias is the mean of its fields' (wells average fields with equal weight).
The strong model is cached like the default models (``<cache>/default/models``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import defaults, ligand_affinity  # noqa: E402
from artseg.io import atomic_write_csv  # noqa: E402

RUNGS = {"manual": ("weak", "manual"), "strong": ("strong", "model"), "weak": ("weak", "model"),
         "none": ("weak", "none")}
LADDER_COLUMNS = {"mean_abs_delta_log_ic50_vs_manual": "abs_delta_vs_manual", "mean_abs_error_vs_truth":
                  "abs_error_vs_truth", "mean_r_squared": "r_squared", "pearson_r_vs_manual": "pearson_r_vs_manual",
                  "n_fitted": "n_fitted"}


def ladder(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per rung (manual, strong, weak, none) from the runs' ``summary.csv`` tables.

    Parameters
    ----------
    summaries : dict
        ``"weak"`` (the default run: modes manual, model, none) and ``"strong"`` (modes
        manual, model with the strong U-Net's masks) → their summary tables.
    """
    rows = []
    for rung, (run, mode) in RUNGS.items():
        found = summaries[run][summaries[run]["mode"] == mode]
        if len(found):
            rows.append({"rung": rung, **{new: found.iloc[0][old] for old, new in LADDER_COLUMNS.items()}})
    return pd.DataFrame(rows)


def field_biases(fields: dict[str, pd.DataFrame], plate: pd.DataFrame) -> pd.DataFrame:
    """Per field: specific signal per rung, bias against manual, coverage and artifact kinds.

    Parameters
    ----------
    fields : dict
        ``"weak"`` and ``"strong"`` runs' ``fields.csv`` tables.
    plate : pandas.DataFrame
        The plate manifest (``experiment, well, field``, optional ``artifact_types``).
    """
    keys = ["Metadata_Experiment", "Metadata_Well", "Metadata_Site"]
    weak, strong = fields["weak"], fields["strong"]

    def specific(table: pd.DataFrame, mode: str) -> pd.Series:
        return table[f"cell_mean_{mode}"] - table[f"background_mean_{mode}"]

    table = weak[keys].copy()
    table["manual"], table["weak"], table["none"] = (specific(weak, m) for m in ("manual", "model", "none"))
    table["coverage_manual"] = weak["artifact_coverage_manual"]
    table["coverage_weak"] = weak["artifact_coverage_model"]
    other = strong[keys].assign(strong=specific(strong, "model"), coverage_strong=strong["artifact_coverage_model"])
    table = table.merge(other, on=keys, how="left", validate="one_to_one")
    for rung in ("strong", "weak", "none"):
        table[f"bias_{rung}"] = table[rung] - table["manual"]
    kinds = plate[["experiment", "well", "field"]].copy()
    kinds["artifact_types"] = (plate["artifact_types"].fillna("") if "artifact_types" in plate.columns
                               else "not recorded")
    kinds.columns = [*keys, "artifact_types"]
    return table.merge(kinds, on=keys, how="left", validate="one_to_one")


def _removed(bias: pd.Series, bias_none: pd.Series) -> float:
    """Share of the summed absolute no-removal bias that is gone: 1 - sum|bias| / sum|bias_none|."""
    total = float(np.nansum(np.abs(bias_none)))
    return float("nan") if total == 0 else 1.0 - float(np.nansum(np.abs(bias))) / total


def well_biases(field_table: pd.DataFrame) -> pd.DataFrame:
    """Per well: mean field bias of each rung, and the kinds of artifact in its fields."""
    keys = ["Metadata_Experiment", "Metadata_Well"]
    grouped = field_table.groupby(keys, sort=True)
    wells = grouped[["manual", "bias_strong", "bias_weak", "bias_none"]].mean()
    wells["artifact_types"] = grouped["artifact_types"].agg(
        lambda kinds: ";".join(sorted({k for text in kinds for k in str(text).split(";") if k})))
    wells = wells.reset_index()
    wells["relative_bias_none"] = wells["bias_none"] / wells["manual"].abs()
    return wells.sort_values("bias_none", key=np.abs, ascending=False, ignore_index=True)


def kind_contributions(field_table: pd.DataFrame) -> pd.DataFrame:
    """Per artifact kind: the fields holding it, their share of the plate's no-removal bias, and what each model removes.

    A field with several kinds counts for each of them, so shares can add up to more than 1.
    """
    total = float(np.nansum(np.abs(field_table["bias_none"])))
    rows = []
    kinds = sorted({k for text in field_table["artifact_types"] for k in str(text).split(";") if k})
    for kind in kinds:
        holding = field_table[field_table["artifact_types"].astype(str).str.split(";").apply(lambda ks: kind in ks)]
        rows.append({
            "kind": kind, "n_fields": len(holding),
            "share_of_bias_none": float(np.nansum(np.abs(holding["bias_none"]))) / total if total else float("nan"),
            "mean_abs_bias_none": float(np.nanmean(np.abs(holding["bias_none"]))),
            "removed_by_weak": _removed(holding["bias_weak"], holding["bias_none"]),
            "removed_by_strong": _removed(holding["bias_strong"], holding["bias_none"]),
            "coverage_manual": float(holding["coverage_manual"].mean()),
            "coverage_weak": float(holding["coverage_weak"].mean()),
            "coverage_strong": float(holding["coverage_strong"].mean()),
        })
    return pd.DataFrame(rows).sort_values("share_of_bias_none", ascending=False, ignore_index=True)


def run_seed(seed: int, out: Path, *, progress: bool) -> dict[str, pd.DataFrame]:
    """Both analysis runs of one seed (the default one and the strong-mask one); their tables."""
    root = defaults.ensure_dataset("cho_m4r", seed, progress=progress)
    strong_dir = defaults.models_dir() / f"strong_artifacts_cho_m4r_seed{seed}"
    defaults.train_or_load(root / "manifest.csv", strong_dir, strong=True, seed=seed, what="strong artifact U-Net",
                           overrides=defaults.ANALYSIS_ARTIFACT_OVERRIDES, progress=progress)
    quiet = [] if progress else ["--quiet"]
    runs = {"weak": ["--seed", str(seed)],
            "strong": ["--seed", str(seed), "--manifest", str(root / "plate.csv"), "--truth", str(root / "truth.json"),
                       "--model", str(strong_dir), "--modes", "manual,model"]}
    tables = {}
    for name, argv in runs.items():
        target = out / f"seed{seed}_{name}"
        if not (target / "summary.csv").is_file():
            if ligand_affinity.main([*argv, "--out", str(target), *quiet]) != 0:
                raise SystemExit(f"the {name} run of seed {seed} failed")
        tables[name] = {table: pd.read_csv(target / f"{table}.csv") for table in ("summary", "fields")}
    plate = pd.read_csv(root / "plate.csv")
    fields = field_biases({name: t["fields"] for name, t in tables.items()}, plate)
    return {"ladder": ladder({name: t["summary"] for name, t in tables.items()}).assign(seed=seed),
            "fields": fields.assign(seed=seed), "wells": well_biases(fields).assign(seed=seed),
            "kinds": kind_contributions(fields).assign(seed=seed)}


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown table (pandas' ``to_markdown`` needs the tabulate package)."""
    shown = table.round(digits)
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ladder"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = [run_seed(seed, args.out, progress=not args.quiet) for seed in args.seeds]
    combined = {name: pd.concat([r[name] for r in results], ignore_index=True) for name in results[0]}
    for name, table in combined.items():
        atomic_write_csv(table, args.out / f"{name}.csv")
    metrics = list(LADDER_COLUMNS.values())
    mean = combined["ladder"].groupby("rung", sort=False)[metrics].mean().reset_index()
    print(f"## Removal ladder, mean over seeds {' '.join(map(str, args.seeds))}\n\n{markdown(mean)}\n")
    print(f"## Per seed\n\n{markdown(combined['ladder'])}\n")
    kinds = combined["kinds"].groupby("kind")[[c for c in combined["kinds"].columns if c not in ("kind", "seed")]].mean()
    print(f"## Artifact kinds (mean over seeds)\n\n{markdown(kinds.reset_index().sort_values('share_of_bias_none', ascending=False))}\n")
    worst = combined["wells"].groupby("seed", group_keys=False).head(5)
    print(f"## The five wells of each seed with the largest no-removal bias\n\n{markdown(worst)}\n")
    removed = {rung: _removed(combined["fields"][f"bias_{rung}"], combined["fields"]["bias_none"])
               for rung in ("weak", "strong")}
    print("share of the summed |field bias| without removal that each model's masks remove: "
          + ", ".join(f"{rung} {value:.3f}" for rung, value in removed.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
