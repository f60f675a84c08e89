"""`rsa demo`, orientation step: orient the imported persons and explain one decision in French."""

from __future__ import annotations

from sqlalchemy import select

from orientation.models import Orientation
from orientation.service import run
from referents.vocabulary import Outcome

ORDER = 30  # after the replayed weeks: decisions on the imported households


def demo(ctx) -> dict:
    """`rsa demo`: orient the imported persons and explain one decision in French."""
    with ctx.runtime.session() as s:
        result = run(s, ctx.as_of)
    d = result["decisions"]
    ctx.echo(f"[orientation] {result['considered']} personne(s) à orienter (règles v{result['rule_set_version']}): "
             + ", ".join(f"{Outcome(k).label}: {v}" for k, v in d.items()))
    ctx.echo(f"[orientation] {result['validated']} validée(s) d'office, {result['proposed']} proposition(s) à "
             f"valider, {result['kiosque']} invitation(s) au kiosque, {result['unsectorised']} hors "
             f"sectorisation, {result['awaiting_capacity']} en attente de place")
    with ctx.runtime.session() as s:
        o = s.scalar(select(Orientation).where(Orientation.algorithmic.is_(True), Orientation.structure_id.is_not(None))
                     .order_by(Orientation.id).limit(1)) or s.scalar(
            select(Orientation).where(Orientation.algorithmic.is_(True)).order_by(Orientation.id).limit(1))
        if o is not None:
            ctx.echo(f"[orientation] exemple (personne {o.person_id}): {o.explanation}")
            result["example"] = {"person_id": o.person_id, "explanation": o.explanation}
    return result
