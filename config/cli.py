"""The `rsa` command: composition of every package's click commands.

Each package's `cli.py` exposes COMMANDS, a list of click commands or groups added at the root
(e.g. imports → `rsa import …`, orientation → `rsa orient …`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys

import click

from config import clock
from config.bootstrap import init_database
from config.modules import package_modules
from config.runtime import Runtime, build_runtime
from config.settings import Settings


class DateParam(click.ParamType):
    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} n'est pas une date AAAA-MM-JJ", param, ctx)


DATE = DateParam()


def as_of_option(f):
    """--as-of DATE, default today: every command that depends on "today" takes it."""
    return click.option("--as-of", "as_of", type=DATE, default=None,
                        help="Date de référence (AAAA-MM-JJ), aujourd'hui par défaut.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Sortie JSON pour les machines.")(f)


def resolve_as_of(as_of: dt.date | None) -> dt.date:
    return as_of or clock.today()


def emit(data, as_json: bool, human=None) -> None:
    """Print JSON with --json, else the human rendering (a callable or a plain string)."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif callable(human):
        human(data)
    elif human is not None:
        click.echo(human)
    else:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def get_runtime(ctx: click.Context | None = None) -> Runtime:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "runtime" not in root.obj:
        settings = Settings.from_env()
        if root.params.get("database_url"):
            settings = settings.with_(database_url=root.params["database_url"])
        root.obj["runtime"] = build_runtime(settings)
        root.call_on_close(root.obj["runtime"].dispose)
    return root.obj["runtime"]


def get_migrate_runtime(ctx: click.Context | None = None) -> Runtime:
    """The runtime of the schema owner (RSA_MIGRATE_DATABASE_URL, else the application's URL):
    migrations and reference data run as the owner; the application's role only gets row rights."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    app = get_runtime(ctx)
    url = app.settings.migrate_database_url
    if not url or url == app.settings.database_url:
        return app
    if "migrate_runtime" not in root.obj:
        root.obj["migrate_runtime"] = build_runtime(app.settings.with_(database_url=url))
        root.call_on_close(root.obj["migrate_runtime"].dispose)
    return root.obj["migrate_runtime"]


def grant_app_role(app: Runtime, owner: Runtime) -> str | None:
    """After a migration, give the application's role its rights (PostgreSQL, two distinct roles)."""
    from config.roles import app_role_of
    from config.roles import grant_app_role as grant

    role = app_role_of(app.settings.database_url, owner.settings.database_url)
    if role is None:
        return None
    with owner.engine.begin() as conn:
        grant(conn, role)
    return role


pass_runtime = click.make_pass_decorator(Runtime)


def with_runtime(f):
    """Inject the Runtime as first argument."""
    import functools

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(get_runtime(), *args, **kwargs)

    return wrapper


_MISSING_TABLE = re.compile(r'no such table: (\w+)|relation "(\w+)" does not exist|UndefinedTable')


class RsaGroup(click.Group):
    """The root group: a command run on a database not yet initialised says so in French, and how
    to fix it, instead of a SQL traceback."""

    def invoke(self, ctx):
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            found = _MISSING_TABLE.search(str(exc.orig) if exc.orig is not None else str(exc))
            if found is None:
                raise
            table = found.group(1) or found.group(2)
            click.echo("Erreur: la base de données n'est pas initialisée"
                       + (f" (table « {table} » absente)" if table else "")
                       + ". Lancez d'abord « rsa init » (schéma et données de référence), puis relancez la commande.",
                       err=True)
            ctx.exit(3)


@click.group(cls=RsaGroup)
@click.option("--database-url", envvar="RSA_DATABASE_URL", default=None,
              help="URL SQLAlchemy de la base (défaut: SQLite sous var/).")
@click.version_option(package_name="rsa31")
def main(database_url):
    """RSA Haute-Garonne: orientation, Kiosque Insertion, parcours et indicateurs."""
    from config.logging import configure

    configure(Settings.from_env().log_level)


@main.group()
def db():
    """Schéma de la base (migrations Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head")
@json_option
def db_upgrade(revision, as_json):
    """Applique les migrations (sans effet sur une base à jour)."""
    from config import migrate

    rt = get_migrate_runtime()
    before = migrate.current_revision(rt.engine)
    changed = migrate.upgrade(rt.engine, revision)
    after = migrate.current_revision(rt.engine)
    grant_app_role(get_runtime(), rt)
    emit({"from": before, "to": after, "changed": changed}, as_json,
         f"base {'migrée' if changed else 'déjà à jour'}: {before} → {after}")


@db.command("current")
@json_option
def db_current(as_json):
    """Révision courante de la base."""
    from config import migrate

    rt = get_migrate_runtime()
    emit({"current": migrate.current_revision(rt.engine), "head": migrate.head_revision()}, as_json)


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision):
    """Revient à une révision antérieure."""
    from config import migrate

    migrate.downgrade(get_migrate_runtime().engine, revision)
    click.echo(f"base ramenée à {revision}")


@main.command()
@json_option
def init(as_json):
    """Crée ou met à jour la base et charge les données de référence (idempotent)."""
    owner = get_migrate_runtime()
    result = init_database(owner)
    grant_app_role(get_runtime(), owner)
    emit(result, as_json, lambda r: click.echo(
        "rien à faire: base à jour" if not r["changed"] else
        f"base initialisée: {r['loaded']}"))


# The access log: who asked which path, the answer and how long it took to serve (milliseconds).
# Never the query string nor the referer: a search carries a name or a birth date ("?q=MARTIN"),
# which has no place in a server log.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
# One request at a time per process, several processes per vCPU (docs/scaling.md "Application
# servers"): threads of one process share the interpreter lock, and a request back from the database
# then waits for another thread's Python (session 9, 1M persons: agents' p95 47.5–50.7 ms with 8 × 1,
# 49.0–56.3 with 4 × 4).
@click.option("--workers", default=4, show_default=True, type=int,
              help="Processus gunicorn: 4 par vCPU.")
@click.option("--threads", default=1, show_default=True, type=int,
              help="Fils par processus: 1 (un processus par requête en cours).")
@click.option("--access-log-format", default=ACCESS_LOG_FORMAT, show_default=True,
              help="Format du journal d'accès (atomes de gunicorn); par défaut sans la chaîne de requête.")
def serve(bind, workers, threads, access_log_format):
    """Sert l'application avec gunicorn (serveur WSGI de production)."""
    from gunicorn.app.base import BaseApplication

    from config import secrets

    settings = Settings.from_env()
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    try:
        secrets.check(settings, host)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None

    from config.app import create_app
    from config.edges import install_gunicorn_error_headers

    install_gunicorn_error_headers()  # gunicorn's own 400/414 answers carry the security headers too

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", access_log_format)
            self.cfg.set("timeout", 120)
            self.cfg.set("post_worker_init", _settle_worker)

        def load(self):
            return create_app()

    _App().run()


def _settle_worker(worker) -> None:
    """gunicorn's post_worker_init: the worker's application built and frozen (config.app.settle)."""
    from config.app import settle

    worker.log.info("worker %s settled: %d objects frozen", worker.pid, settle(worker.wsgi))


@main.command()
@as_of_option
def scheduler(as_of):
    """Lance le planificateur (import de la boîte de dépôt, orientation, kiosques, rapports)."""
    from config.scheduler import run_forever

    run_forever(get_runtime())


@main.command()
@click.option("--database-url", "demo_url", default=None,
              help="Base de la démo (défaut: var/demo.sqlite3, recréée à chaque fois).")
@click.option("--keep", is_flag=True, help="Ne pas recréer la base de démo.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Dossier de la démo (base, flux, courriers, classeur; défaut: var/demo).")
@as_of_option
@json_option
def demo(demo_url, keep, workdir, as_of, as_json):
    """Le travail principal sur la base embarquée: import → orientation → kiosque → rapport."""
    import logging

    from config.demo import run_demo

    if not Settings.is_set("log_level"):  # the demo prints its own lines; keep the log for problems
        logging.getLogger().setLevel(logging.WARNING)
    from pathlib import Path

    result = run_demo(demo_url=demo_url, keep=keep, as_of=as_of, echo=None if as_json else click.echo,
                      workdir=Path(workdir) if workdir else None)
    if as_json:
        emit(result, True)


@main.command("config")
@json_option
def show_config(as_json):
    """Affiche la configuration effective (sans les secrets)."""
    s = Settings.from_env()
    secret = {"secret_key", "nir_key", "smtp_password", "sms_token"}
    data = {k: ("***" if k in secret and v else v) for k, v in vars(s).items()}
    for k in ("database_url", "migrate_database_url"):
        if data.get(k) and "@" in data[k]:
            from sqlalchemy.engine import make_url

            data[k] = make_url(data[k]).render_as_string(hide_password=True)
    emit(data, as_json)


# The commands that change in bulk the data the reports summarise: when one ends, the stored
# reports (the dashboards' snapshots, reports/snapshots.py) are stale. Checked by the tests: each
# names a real command.
REPORTS_STALE_AFTER = frozenset({
    "init", "rgpd purge", "referents load-sectorisation", "orient run", "orient validate", "kiosque plan",
    "kiosque phoning-results", "import flux", "import replay", "import stock", "import france-travail",
    "import spreadsheet", "import provider-return", "import france-travail-orientations",
    "france-travail read", "france-travail apply", "report refresh",
})


def _reports_stale_after(command: click.Command, path: str) -> None:
    """Wrap the command's callback: when it ends (even by an error, after a partial commit), the
    stored reports are marked stale in the command's own database."""
    import functools

    callback = command.callback
    if getattr(callback, "_reports_stale", False):  # `python -m config.cli` loads this module twice
        return

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        finally:
            from config.scheduler import reports_stale

            reports_stale(get_runtime(), f"rsa {path}")

    wrapper._reports_stale = True
    command.callback = wrapper


def commands(group: click.Group, prefix: str = ""):
    """(path, command) of every leaf command under `group` ("import flux", …)."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, path + " ")
        else:
            yield path, command


def _register_packages() -> None:
    for _package, module in package_modules("cli"):
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register_packages()
from config.plan_cli import plan as _plan  # noqa: E402 - `rsa plan` (issue 20): drives several packages

main.add_command(_plan)
for _path, _command in commands(main):
    if _path in REPORTS_STALE_AFTER:
        _reports_stale_after(_command, _path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
