"""Message templates (Jinja2, plain text): `<kind>.<channel>.j2` in the folders the composers
register, each file overridable from the folder of the setting RSA_KIOSQUE_TEMPLATE_DIR."""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

_DIRS: list[Path] = []


def add_template_dir(path: Path) -> None:
    """A composer's bundled templates (called when its module is imported)."""
    if path not in _DIRS:
        _DIRS.append(path)


def template_env(override: str | None = None) -> Environment:
    """Templates of `override` (the setting kiosque_template_dir, when set) win over the bundled
    ones, file by file."""
    if override is None:
        from config.settings import Settings

        override = Settings.from_env().kiosque_template_dir
    loaders = [FileSystemLoader(override)] if override else []
    loaders += [FileSystemLoader(str(d)) for d in _DIRS]
    return Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False,
                       keep_trailing_newline=False)


def template_kind(kind: str) -> str:
    return "reminder" if kind.startswith("reminder") else kind


def render(kind: str, channel: str, context: dict, env: Environment | None = None) -> tuple[str | None, str]:
    """(subject, body). A first line "Objet: …" is the subject (e-mail) or stays in the body (letter)."""
    env = env or template_env()
    text = env.get_template(f"{template_kind(kind)}.{channel}.j2").render(**context).strip()
    subject = None
    if channel == "email" and text.lower().startswith("objet"):
        first, _, rest = text.partition("\n")
        subject, text = first.split(":", 1)[1].strip(), rest.strip()
    return subject, text + "\n"
