"""The Markdown table of docs/MODEL.md, "Many looks from one photo", from the *_diversity.json files
that scripts/compare_msgan.sh writes: one row per latent variant and its matched pixel noise, and
one for the deterministic variant (the same in every file).

    python scripts/msgan_table.py work/compare-msgan/results
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

VARIANTS = {"latent": "latent, no term", "msgan": "msgan (term 1)", "msgan_regression": "msgan + regression 10"}
METRICS = {"looks covered (of 4)": "looks covered (of 4)", "looks per photo": "looks per photo",
           "look shares, JSD to uniform": "JSD of look shares to uniform ↓",
           "pairwise Inception distance": "pairwise Inception distance",
           "pairwise pixel L1 (levels)": "pairwise pixel L1 (levels)", "NDB (of 15 bins)": "NDB (of 15) ↓",
           "FID": "FID ↓", "KID x100": "KID x100 ↓"}


def cell(figure: dict, column: str) -> str:
    value, (low, high) = figure["values"][column], figure["intervals"][column]
    digits = 0 if figure["metric"].startswith(("looks covered", "NDB")) else 2
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def row(label: str, figures: dict[str, dict], column: str) -> str:
    return "| " + " | ".join([label] + [cell(figures[m], column) for m in METRICS]) + " |"


def main(results: Path) -> None:
    runs = {name: {f["metric"]: f for f in json.loads((results / f"{name}_diversity.json").read_text())["figures"]}
            for name in VARIANTS if (results / f"{name}_diversity.json").is_file()}
    if not runs:
        raise SystemExit(f"{results}: no *_diversity.json of {', '.join(VARIANTS)}; run scripts/compare_msgan.sh")
    lines = ["| variant | " + " | ".join(METRICS.values()) + " |", "|---" * (len(METRICS) + 1) + "|",
             row("deterministic", next(iter(runs.values())), "deterministic")]
    for name, figures in runs.items():
        lines += [row(VARIANTS[name], figures, "model"), row(f"pixel noise matched to {name}", figures, "pixel noise")]
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("work/compare-msgan/results"))
