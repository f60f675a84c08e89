"""Kiosque Insertion's vocabulary: session statuses, phoning results, attendance, with French labels.

`PhoningOutcome.label` is the text of the phoning workbook's drop-down (read back on import);
`Attendance.phrase` is the summary of the person's timeline event."""

from __future__ import annotations

from referents.vocabulary import LabelledEnum


class SessionStatus(LabelledEnum):
    PLANNED = ("planned", "Prévue")
    HELD = ("held", "Tenue")
    CANCELLED = ("cancelled", "Annulée")


class PhoningOutcome(LabelledEnum):
    """Result of the call before the kiosque. Order: the drop-down of the phoning workbook."""

    REACHED = ("reached", "Joint(e)")
    WILL_COME = ("will_come", "Viendra")
    DECLINED = ("declined", "Refuse de venir")
    NO_ANSWER = ("no_answer", "Pas de réponse")
    WRONG_NUMBER = ("wrong_number", "Faux numéro")


class Attendance(LabelledEnum):
    """What the MDS records after the session (an invitation's status besides pending / cancelled)."""

    PRESENT = ("present", "Présent(e)", "Présent(e) au Kiosque Insertion")
    ABSENT = ("absent", "Absent(e)", "Absent(e) au Kiosque Insertion")
    EXCUSED = ("excused", "Absence excusée", "Absence excusée au Kiosque Insertion")


class InvitationStatus(LabelledEnum):
    """An invitation: waiting for the session, then the attendance recorded, or cancelled."""

    PENDING = ("pending", "En attente")
    PRESENT = (Attendance.PRESENT.value, Attendance.PRESENT.label)
    ABSENT = (Attendance.ABSENT.value, Attendance.ABSENT.label)
    EXCUSED = (Attendance.EXCUSED.value, Attendance.EXCUSED.label)
    CANCELLED = ("cancelled", "Annulée")


P = PhoningOutcome
PHONING_OUTCOMES: tuple[str, ...] = tuple(m.value for m in (P.REACHED, P.NO_ANSWER, P.WRONG_NUMBER, P.DECLINED, P.WILL_COME))
# "Reached by phone" in the funnel: the person answered, whatever they said.
REACHED_OUTCOMES: tuple[str, ...] = tuple(m.value for m in (P.REACHED, P.DECLINED, P.WILL_COME))
# A call that failed through the person: with an absence, it opens the law's default to the MDS.
FAILED_PHONING: tuple[str, ...] = tuple(m.value for m in (P.WRONG_NUMBER, P.DECLINED))
ATTENDANCE: tuple[str, ...] = Attendance.codes()
SESSION_STATUSES: tuple[str, ...] = SessionStatus.codes()
INVITATION_STATUSES: tuple[str, ...] = InvitationStatus.codes()
