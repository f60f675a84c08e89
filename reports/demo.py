"""`rsa demo`, reports step: the headline indicators, and the workbook in the demo folder."""

from __future__ import annotations

from pathlib import Path as FsPath

from referents.vocabulary import LEGAL_DAYS, TARGET_DAYS
from reports.indicators import ReportFilter
from reports.service import headline, write_workbook

ORDER = 60  # last: the indicators of the whole day


def _fmt_days(value) -> str:
    return "—" if value is None else f"{value:.1f} j".replace(".", ",")


def _fmt_share(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %".replace(".", ",")


def demo(ctx) -> dict:
    """Last step of `rsa demo`: the headline indicators, and the workbook in the demo folder."""
    f = ReportFilter(as_of=ctx.as_of)
    out = FsPath(ctx.workdir) / f"indicateurs-{ctx.as_of.isoformat()}.xlsx"
    with ctx.runtime.session() as s:
        report = write_workbook(s, f, out, person_level=True)
    h = headline(report)
    start, end = f.period
    ctx.echo(f"[rapports] cohorte du {start} au {end}: {h['cohort_size']} parcours")
    ctx.echo(f"[rapports] délai médian légal {_fmt_days(h['median_legal_days'])} "
             f"(objectif {TARGET_DAYS} j, limite légale {LEGAL_DAYS} j); "
             f"depuis la demande: médiane {_fmt_days(h['median_demande_days'])}, "
             f"moyenne {_fmt_days(h['mean_demande_days'])}")
    ctx.echo(f"[rapports] orientés sous 42 j: {_fmt_share(h['share_legal_within_42'])}; "
             f"restant à orienter: {h['backlog_total']} dont {h['backlog_over_42']} au-delà de 42 j")
    ctx.echo(f"[rapports] classeur écrit: {out}")
    return {"headline": h, "workbook": str(out)}
