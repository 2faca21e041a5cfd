"""The two formatting helpers every README section shares: a signed number to three places, and a pandas
frame as a markdown table.
"""

from __future__ import annotations

import pandas as pd


def signed(v: float) -> str:
    return "n/a" if v != v else f"{v:+.3f}"


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)
