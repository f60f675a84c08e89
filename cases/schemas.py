"""Marshmallow schemas of the persons / path API: input validation, the formatting of what the
services return (domain objects and typed rows: dates → ISO strings, labels), and the OpenAPI
documentation of every field, the person file included."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from cases.appointments import APPOINTMENT_KINDS, APPOINTMENT_STATUSES
from cases.contracts import CONTRACT_KINDS, REVIEW_OUTCOMES
from cases.procedure import exit_reasons, procedure
from cases.sanctions import LIFT_CAUSES, ep_deemed_on, sanction_end
from cases.views import SEARCH_COUNT_CAP
from referents.fields import ParisDateTime
from referents.text import FrenchDate
from referents.vocabulary import REFERENT_TYPES

_DATE = {"type": "string", "format": "date", "nullable": True}


def _iso(day):
    return day.isoformat() if day else None


class AsOfQuerySchema(Schema):
    as_of = fields.Date(load_default=None, metadata={"description": "Date de référence (défaut: aujourd'hui)"})


class PersonQuerySchema(Schema):
    q = fields.String(load_default=None, validate=validate.Length(max=100),
                      metadata={"description": "Début du nom, du nom de naissance ou du prénom"})
    birth_date = FrenchDate(load_default=None, metadata={"description": "Date de naissance, JJ/MM/AAAA ou AAAA-MM-JJ"})
    caf_number = fields.String(load_default=None, validate=validate.Length(max=15),
                               metadata={"description": "Matricule CAF/MSA du foyer"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PersonRowSchema(Schema):
    id = fields.Integer()
    last_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    birth_date = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    sdd = fields.Boolean()
    caf_number = fields.String(allow_none=True)
    organism = fields.String(allow_none=True)
    commune_insee = fields.String(allow_none=True)
    path_open = fields.Boolean()
    referent_type = fields.String(allow_none=True)
    structure_id = fields.Integer(allow_none=True)


class PersonPageSchema(Schema):
    items = fields.List(fields.Nested(PersonRowSchema))
    total = fields.Integer(metadata={"description": "Nombre de personnes trouvées; le décompte s'arrête à "
                                                    f"{SEARCH_COUNT_CAP} (voir total_capped)"})
    total_capped = fields.Boolean(metadata={"description": f"Plus de {SEARCH_COUNT_CAP} personnes trouvées: "
                                                           "« total » est un minimum, précisez la recherche"})
    page = fields.Integer()
    per_page = fields.Integer()


class TimelineEventSchema(Schema):
    id = fields.Integer()
    occurred_on = fields.String()
    kind = fields.String()
    source = fields.String()
    author_id = fields.Integer(allow_none=True)
    author = fields.String(allow_none=True)
    summary = fields.String()
    path_id = fields.Integer(allow_none=True)
    data = fields.Dict()


class AppointmentInSchema(Schema):
    scheduled_at = ParisDateTime(required=True)
    status = fields.String(load_default="planned", validate=validate.OneOf(APPOINTMENT_STATUSES))
    kind = fields.String(load_default="first", validate=validate.OneOf(APPOINTMENT_KINDS))
    structure_id = fields.Integer(load_default=None)
    agent_id = fields.Integer(load_default=None)
    notes = fields.String(load_default=None, validate=validate.Length(max=2000))


class AppointmentStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(APPOINTMENT_STATUSES))


class AppointmentSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    scheduled_at = ParisDateTime()
    kind = fields.String()
    status = fields.String()
    structure_id = fields.Integer(allow_none=True)
    agent_id = fields.Integer(allow_none=True)
    source = fields.String()
    notes = fields.String(allow_none=True)


class ObjectiveSchema(Schema):
    theme = fields.String(required=True, validate=validate.OneOf(list(procedure()["contract"]["themes"])))
    text = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ContractInSchema(Schema):
    signed_on = fields.Date(required=True, allow_none=True)
    kind = fields.String(load_default="engagement", validate=validate.OneOf(CONTRACT_KINDS))
    weekly_hours = fields.Float(load_default=None, validate=validate.Range(min=0, max=35))
    hours_reduction_reason = fields.String(
        load_default=None, validate=validate.OneOf(list(procedure()["contract"]["hours_reduction_reasons"])))
    objectives = fields.List(fields.Nested(ObjectiveSchema), load_default=list)
    duration_months = fields.Integer(load_default=None, validate=validate.Range(min=1, max=60))
    vulnerability = fields.Boolean(load_default=False, metadata={
        "description": "Obsolète: préciser review_reason (un vrai sans motif est refusé)"})
    review_reason = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(procedure()["review"]["long_reasons"])), metadata={
        "description": "Difficulté qui porte le bilan du parcours social à 12 mois (D262-65-2-1 CASF)"})


class ContractSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    due_on = fields.Date(allow_none=True)
    signed_on = fields.Date(allow_none=True)
    duration_months = fields.Integer(allow_none=True)
    weekly_hours = fields.Float()
    hours_reduction_reason = fields.String(allow_none=True)
    objectives = fields.Function(lambda c: c.objectives or [], metadata={
        "type": "array", "items": {"type": "object", "properties": {"theme": {"type": "string"},
                                                                   "text": {"type": "string"}}}})
    vulnerability = fields.Boolean()
    review_reason = fields.String(allow_none=True, metadata={
        "description": "Motif légal du bilan à 12 mois: health, disability, invalidity, housing, family"})
    source = fields.String()


class ReviewInSchema(Schema):
    held_on = fields.Date(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(REVIEW_OUTCOMES))
    review_id = fields.Integer(load_default=None)
    notes = fields.String(load_default=None, validate=validate.Length(max=4000))
    reorientation_reason = fields.String(load_default=None, validate=validate.Length(max=2000))
    wanted_referent_type = fields.String(load_default=None,
                                         validate=validate.OneOf(REFERENT_TYPES))
    wanted_structure_id = fields.Integer(load_default=None)
    referent_participant = fields.String(load_default=None, validate=validate.Length(max=200), metadata={
        "description": "Qui a tenu le bilan pour l'organisme référent (diagnostic conjoint)"})
    france_travail_participant = fields.String(load_default=None, validate=validate.Length(max=200), metadata={
        "description": "Qui y a pris part pour France Travail (diagnostic conjoint)"})
    next_review_reason = fields.String(allow_none=True, validate=validate.OneOf(list(procedure()["review"]["long_reasons"])), metadata={
        "description": "Difficulté qui porte le prochain bilan à 12 mois (absent: celle du contrat)"})


class ReviewSchema(Schema):
    id = fields.Integer()
    contract_id = fields.Integer(allow_none=True)
    due_on = fields.Date()
    held_on = fields.Date(allow_none=True)
    outcome = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={
        "description": "Motif légal qui porte ce bilan à 12 mois (NULL: 6 mois)"})
    referent_participant = fields.String(allow_none=True)
    france_travail_participant = fields.String(allow_none=True)


class DiagnosticInSchema(Schema):
    recorded_on = fields.Date(required=True)
    constraints = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    education_level = fields.String(load_default=None, validate=validate.Length(max=20))
    can_seek_work = fields.Boolean(load_default=None, allow_none=True)
    notes = fields.String(load_default=None, validate=validate.Length(max=4000))


class DiagnosticSchema(Schema):
    id = fields.Integer()
    recorded_on = fields.Date()
    constraints = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Niveau de chaque frein, par frein (health, housing, mobility, family…)"})
    education_level = fields.String(allow_none=True)
    can_seek_work = fields.Boolean(allow_none=True)
    notes = fields.String(allow_none=True)
    author_id = fields.Integer(allow_none=True)


class ExitInSchema(Schema):
    exit_on = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(list(exit_reasons())))
    details = fields.String(load_default=None, validate=validate.Length(max=2000))


class ExitSchema(Schema):
    id = fields.Integer()
    exit_on = fields.Date()
    reason = fields.String()
    label = fields.Function(lambda e: exit_reasons().get(e.reason, {}).get("label", e.reason),
                            metadata={"type": "string", "description": "Libellé du motif (configuration)"})
    positive = fields.Boolean()
    source = fields.String()
    structure_id = fields.Integer(allow_none=True)
    path_id = fields.Integer(allow_none=True)


class BreachInSchema(Schema):
    breach_on = fields.Date(required=True)
    breach = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class ObservationsInSchema(Schema):
    observations_on = fields.Date(required=True)
    observations = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class EpRequestInSchema(Schema):
    requested_on = fields.Date(required=True)


class EpOpinionInSchema(Schema):
    opinion_on = fields.Date(required=True)
    opinion = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class DecisionInSchema(Schema):
    decided_on = fields.Date(required=True)
    kind = fields.String(load_default="suspension", validate=validate.OneOf(["suspension", "suppression"]))
    rate_percent = fields.Integer(load_default=None)
    duration_months = fields.Integer(load_default=None)


class LiftInSchema(Schema):
    lifted_on = fields.Date(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=1000))
    cause = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LIFT_CAUSES), metadata={
        "description": "contract (contrat signé ou actualisé), complied (mise en conformité), dropped (sans suite)"})


class SanctionSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    breach_on = fields.Date()
    breach = fields.String()
    repeated = fields.Boolean()
    observations_on = fields.Date(allow_none=True)
    ep_requested_on = fields.Date(allow_none=True)
    ep_deemed_on = fields.Function(lambda s: _iso(ep_deemed_on(s)), metadata={
        **_DATE, "description": "Avis de l'équipe pluridisciplinaire réputé rendu ce jour-là sans réponse"})
    ep_opinion_on = fields.Date(allow_none=True)
    decided_on = fields.Date(allow_none=True)
    rate_percent = fields.Integer(allow_none=True)
    duration_months = fields.Integer(allow_none=True)
    ends_on = fields.Function(lambda s: _iso(sanction_end(s)), metadata={
        **_DATE, "description": "Fin de la suspension ou de la suppression"})
    lifted_on = fields.Date(allow_none=True)
    lift_reason = fields.String(allow_none=True, metadata={"description": "contract, complied ou dropped"})
    cap_percent = fields.Integer(allow_none=True, metadata={
        "description": "Taux maximal applicable au foyer (50 % au-delà d'une personne ou avec majoration, R262-68-6)"})
    cap_reason = fields.String(allow_none=True, metadata={
        "description": "household_size, single_parent_increase ou unknown"})
    base_amount = fields.Decimal(as_string=True, allow_none=True, metadata={
        "description": "Montant mensuel de l'allocation auquel s'applique le taux"})
    withheld_amount = fields.Decimal(as_string=True, allow_none=True, metadata={
        "description": "Montant retenu à la levée"})
    repaid_amount = fields.Decimal(as_string=True, allow_none=True, metadata={
        "description": "Montant à reverser à la personne qui s'est remobilisée"})
    radiation_proposed_on = fields.Date(allow_none=True, metadata={
        "description": "Radiation de la liste de France Travail proposée (suppression totale de 4 mois)"})


class ListQuerySchema(AsOfQuerySchema):
    days = fields.Integer(load_default=None, validate=validate.Range(min=0, max=3650))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000),
                           metadata={"description": "Taille de la page (100 par défaut, 1 000 au plus)"})
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


def _day(description: str) -> fields.String:
    return fields.String(allow_none=True, metadata={"format": "date", "description": description})


class ListedPersonSchema(Schema):
    """What every working list shows of a person (cases.followup._listed)."""

    person_id = fields.Integer()
    last_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    birth_date = _day("Date de naissance")


class MyPeopleRowSchema(ListedPersonSchema):
    """my-people: the person's next due dates (cases.followup._due_dates)."""

    contract_due_on = _day("Échéance du contrat d'engagement (1 mois après l'orientation)")
    contract_overdue = fields.Boolean(metadata={"description": "Contrat non signé après l'échéance"})
    review_due_on = _day("Prochain réexamen à tenir")
    review_id = fields.Integer(allow_none=True)
    next_appointment_at = fields.String(allow_none=True, metadata={"format": "date-time",
                                                                   "description": "Prochain rendez-vous prévu"})
    suspension_ends_on = _day("Fin de la suspension en cours")
    next_due_on = _day("La plus proche de ces échéances")
    next_due = fields.String(allow_none=True, metadata={"description": "Laquelle (contract, review, appointment…)"})


class OverdueContractRowSchema(ListedPersonSchema):
    """overdue-contracts."""

    contract_due_on = _day("Échéance du contrat d'engagement")
    days_late = fields.Integer(metadata={"description": "Jours de retard au jour de référence"})


class ReviewDueRowSchema(ListedPersonSchema):
    """reviews-due."""

    review_id = fields.Integer()
    due_on = _day("Date du réexamen")
    overdue = fields.Boolean(metadata={"description": "Réexamen en retard"})


class AppointmentToUpdateRowSchema(ListedPersonSchema):
    """appointments-to-update."""

    appointment_id = fields.Integer()
    scheduled_at = fields.String(metadata={"format": "date-time", "description": "Rendez-vous passé sans suite"})
    kind = fields.String(allow_none=True)
    structure_id = fields.Integer(allow_none=True)


class WithoutAppointmentRowSchema(ListedPersonSchema):
    """without-appointment."""

    oriented_on = _day("Date de validation de l'orientation")
    structure_id = fields.Integer(allow_none=True)
    last_appointment_on = _day("Dernier rendez-vous honoré")


LIST_ROW_SCHEMAS = {
    "my-people": MyPeopleRowSchema,
    "overdue-contracts": OverdueContractRowSchema,
    "reviews-due": ReviewDueRowSchema,
    "appointments-to-update": AppointmentToUpdateRowSchema,
    "without-appointment": WithoutAppointmentRowSchema,
}


class ListRowSchema(MyPeopleRowSchema, OverdueContractRowSchema, ReviewDueRowSchema, AppointmentToUpdateRowSchema,
                    WithoutAppointmentRowSchema):
    """A row of any working list: the person, then the fields of its list (LIST_ROW_SCHEMAS says which;
    a field its list does not fill is absent)."""


class _ListItems(fields.List):
    """The rows of a list, each dumped by its own list's schema (LIST_ROW_SCHEMAS): a my-people row is
    its 12 fields, not a test of ListRowSchema's 21 (a third of a my-people page's time went to that).
    Documented as ListRowSchema rows."""

    def __init__(self, **kwargs):
        super().__init__(fields.Nested(ListRowSchema), **kwargs)
        self._by_list = {name: schema(many=True) for name, schema in LIST_ROW_SCHEMAS.items()}

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return self._by_list[obj["name"]].dump(value)


class ListResultSchema(Schema):
    name = fields.String(metadata={"enum": list(LIST_ROW_SCHEMAS)})
    as_of = fields.String()
    count = fields.Integer(metadata={"description": "Nombre total de lignes de la liste (toutes pages)"})
    limit = fields.Integer()
    offset = fields.Integer()
    items = _ListItems(metadata={"description": (
        "Lignes de la liste; chaque liste a ses champs: " + "; ".join(
            f"{name}: {', '.join(f for f in schema._declared_fields if f not in ListedPersonSchema._declared_fields)}"
            for name, schema in LIST_ROW_SCHEMAS.items()))})


class ExitReasonSchema(Schema):
    reason = fields.String()
    label = fields.String()
    positive = fields.Boolean()


# --- the person file ------------------------------------------------------------------------------

class IdentitySchema(Schema):
    civility = fields.String(allow_none=True, metadata={"description": "Qualité (MR, MME)"})
    last_name = fields.String(allow_none=True)
    birth_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    birth_date = fields.Date(allow_none=True)
    sex = fields.String(allow_none=True)
    nir = fields.String(allow_none=True, metadata={"description": "NIR selon le rôle (masqué ou absent hors Département)"})
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    role = fields.String(allow_none=True, metadata={"description": "Rôle dans le foyer (DEM, CJT…)"})
    sdd = fields.Boolean(metadata={"description": "Soumis aux droits et devoirs"})


class MemberSchema(Schema):
    id = fields.Integer()
    role = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    sdd = fields.Boolean()


class HouseholdSchema(Schema):
    id = fields.Integer()
    organism = fields.String(metadata={"description": "CAF ou MSA"})
    caf_number = fields.String(metadata={"description": "Matricule CAF/MSA"})
    right_state = fields.String(allow_none=True, metadata={"description": "État du droit (ETATDOSRSA)"})
    right_state_on = fields.Date(allow_none=True)
    commune_insee = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    mds_id = fields.Integer(allow_none=True)
    territory_id = fields.Integer(allow_none=True)
    family_situation = fields.String(allow_none=True, metadata={"description": "Personnel du Département seulement"})
    children_count = fields.Integer(allow_none=True)
    rsa_amount = fields.Float(allow_none=True, metadata={"description": "Personnel du Département seulement"})
    members = fields.List(fields.Nested(MemberSchema),
                          metadata={"description": "Autres membres du foyer (personnel du Département seulement)"})


class PathSchema(Schema):
    id = fields.Integer()
    clock_start = fields.Date(metadata={"description": "Début du délai légal d'orientation"})
    request_date = fields.Date(allow_none=True)
    opening_reason = fields.String(metadata={"description": "entry, transfer_in ou reopening"})
    closed_on = fields.Date(allow_none=True)
    close_reason = fields.String(allow_none=True)


class OrientationSummarySchema(Schema):
    referent_type = fields.String(allow_none=True)
    rule = fields.String(allow_none=True)
    status = fields.String()
    origin = fields.String(allow_none=True)
    decided_on = fields.String(allow_none=True, metadata={"format": "date"})
    structure = fields.String(allow_none=True, metadata={"description": "Code de la structure référente"})


class PreviousExitSchema(Schema):
    exit_on = fields.String(metadata={"format": "date"})
    reason = fields.String()
    source = fields.String()


class ReopeningSchema(Schema):
    reopened = fields.Boolean()
    reopened_on = fields.String(allow_none=True, metadata={"format": "date"})
    previous_exit = fields.Nested(PreviousExitSchema, allow_none=True)
    needs_contract = fields.Boolean()
    contract_due_on = fields.String(allow_none=True, metadata={"format": "date"})


class DueSchema(Schema):
    contract_due_on = fields.String(allow_none=True, metadata={"format": "date"})
    contract_overdue = fields.Boolean()
    review_due_on = fields.String(allow_none=True, metadata={"format": "date"})
    review_id = fields.Integer(allow_none=True)
    next_appointment_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    suspension_ends_on = fields.String(allow_none=True, metadata={"format": "date"})
    next_due_on = fields.String(allow_none=True, metadata={"format": "date"})
    next_due = fields.String(allow_none=True, metadata={"description": "contract, review, appointment ou suspension_end"})


class DiagnosticSummarySchema(Schema):
    """The latest diagnostic as shown in the person file (no notes, no author)."""

    recorded_on = fields.Date()
    constraints = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Niveau de chaque frein, par frein (health, housing, mobility, family…)"})
    education_level = fields.String(allow_none=True)
    can_seek_work = fields.Boolean(allow_none=True)


class PersonDetailSchema(Schema):
    """The person file (cases.views.PersonFile)."""

    id = fields.Integer()
    identity = fields.Nested(IdentitySchema)
    household = fields.Nested(HouseholdSchema, allow_none=True)
    path = fields.Nested(PathSchema, allow_none=True)
    orientation = fields.Nested(OrientationSummarySchema, allow_none=True)
    contract = fields.Nested(ContractSchema, allow_none=True)
    diagnostic = fields.Nested(DiagnosticSummarySchema, allow_none=True)
    open_sanctions = fields.List(fields.Nested(SanctionSchema))
    exit = fields.Nested(ExitSchema, allow_none=True)
    reopening = fields.Nested(ReopeningSchema)
    due = fields.Nested(DueSchema)


class ExitCorrectionInSchema(Schema):
    """Correct an exit recorded by mistake (within 30 days): cancel it, or give its date / reason."""

    cancel = fields.Boolean(load_default=False)
    exit_on = fields.Date(load_default=None)
    reason = fields.String(load_default=None, validate=validate.OneOf(list(exit_reasons())))
    note = fields.String(load_default=None, validate=validate.Length(max=2000))
    as_of = fields.Date(load_default=None)
