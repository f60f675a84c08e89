"""`rsa serve` refuses weak secrets on any non-loopback bind (issue 22, item 6)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from config import secrets
from config.cli import main
from config.runtime import Runtime

STRONG = "k" * 24 + "-strong-secret-key-0123456789"
NIR = "n" * 20 + "-strong-nir-key-0123456789"


@pytest.mark.parametrize("env,reason", [
    ({"RSA_SECRET_KEY": ""}, "RSA_SECRET_KEY est vide"),
    ({"RSA_SECRET_KEY": "short-key", "RSA_NIR_KEY": NIR}, "RSA_SECRET_KEY est trop courte (9 octets"),
    ({"RSA_NIR_KEY": NIR}, "RSA_SECRET_KEY vaut la valeur par défaut"),
    ({"RSA_SECRET_KEY": STRONG}, "RSA_NIR_KEY n'est pas configurée"),
    ({"RSA_SECRET_KEY": STRONG, "RSA_NIR_KEY": "abc"}, "RSA_NIR_KEY est trop courte"),
])
def test_serve_refuses_weak_secrets_off_loopback(rt, env, reason, monkeypatch):
    for name in ("RSA_SECRET_KEY", "RSA_NIR_KEY"):
        monkeypatch.delenv(name, raising=False)
    out = CliRunner().invoke(main, ["serve", "--bind", "0.0.0.0:8000"], env=env)
    assert out.exit_code == 1 and "refus de servir" in out.output and reason in out.output, out.output


def test_empty_key_is_refused_even_on_loopback(rt, monkeypatch):
    out = CliRunner().invoke(main, ["serve", "--bind", "127.0.0.1:8000"], env={"RSA_SECRET_KEY": ""})
    assert out.exit_code == 1 and "RSA_SECRET_KEY est vide" in out.output
    from config.app import create_app

    with pytest.raises(RuntimeError, match="vide"):
        create_app(runtime=Runtime(settings=rt.settings.with_(secret_key=""), engine=rt.engine, sessions=rt.sessions,
                                   vault=rt.vault))


def test_strong_keys_pass_and_loopback_allows_the_development_default(base_settings):
    strong = base_settings.with_(secret_key=STRONG, nir_key=NIR)
    assert secrets.problems(strong, "0.0.0.0") == [] and secrets.problems(strong, "10.1.2.3") == []
    assert secrets.problems(base_settings.with_(secret_key="dev-only-change-me", nir_key=""), "127.0.0.1") == []
    assert secrets.problems(base_settings.with_(secret_key="dev-only-change-me", nir_key=""), "localhost") == []
