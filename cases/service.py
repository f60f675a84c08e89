"""The cases package's services, re-exported from their sub-domain modules so that existing callers
keep `from cases.service import …` / `cases.service.x` while they move to the modules themselves:

- cases.procedure: legal parameters (procedure.yaml, exit reasons), sources, CaseValidationError;
- cases.scope: person_scope, the single scoping rule;
- cases.timeline: timeline events and alerts;
- cases.paths: open path, current orientation (read model), reopening;
- cases.exits: exits (record_exit and its batch form record_exits);
- cases.appointments, cases.contracts (contracts and reviews), cases.sanctions, cases.diagnostics;
- cases.followup: due dates, working lists, daily alerts;
- cases.views: search and the person file;
- cases.aggregates: aggregates over paths for the reports package;
- cases.sectors: sectorisation of households and paths;
- cases.demo: the `rsa demo` step (found by config/demo.py as cases.demo).

Nothing here imports a higher package: what cases needs from orientation, kiosque or imports goes
through cases/signals.py.
"""

# ruff: noqa: F401
from __future__ import annotations

from cases.aggregates import (
    _plus_days,
    _plus_months,
    contract_within,
    exits_by_reason,
    first_appointment_no_show_rate,
    first_appointment_within,
    mean_delays_after_orientation,
    positive_exit_rate,
)
from cases.appointments import (
    AppointmentIn,
    record_appointment,
    record_appointments,
    update_appointment_status,
)
from cases.contracts import (
    ContractIn,
    contract_deadline,
    needs_new_contract,
    record_contract,
    record_contracts,
    record_review,
)
from cases.diagnostics import (
    latest_diagnostic,
    record_diagnostic,
)
from cases.exits import (
    ExitIn,
    is_positive_exit,
    record_exit,
    record_exits,
)
from cases.followup import (
    LISTS,
    add_months,
    appointments_to_update,
    my_people,
    my_people_ids,
    my_people_page,
    overdue_contracts,
    raise_daily_alerts,
    refresh_next_due,
    reviews_due,
    store_next_due,
    touch_due,
    without_recent_appointment,
)
from cases.paths import (
    current_orientations,
    open_path,
    open_paths,
    reopening_applies,
)
from cases.procedure import (
    CaseValidationError,
    exit_reasons,
    procedure,
)
from cases.sanctions import (
    decide_sanction,
    ep_deemed_on,
    household_cap,
    lift_on_contract,
    lift_sanction,
    raise_sanction_alerts,
    record_breach,
    record_ep_opinion,
    record_observations,
    request_ep_opinion,
    sanction_end,
    withheld_amounts,
)
from cases.scope import (
    _system_user,
    get_person_in_scope,
    person_scope,
    scoped_person_ids,
    scoped_persons,
)
from cases.sectors import (
    apply_sectorisation,
    sync_path_sectors,
)
from cases.timeline import (
    add_event,
    raise_alert,
    timeline,
)
from cases.views import (
    next_due_dates,
    person_contracts,
    person_detail,
    person_sanctions,
    reopening_status,
    search_persons,
)
