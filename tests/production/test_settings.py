"""DJANGO_ENV=production: a clean `check --deploy`, and no start-up without the required settings."""

import json

import pytest

from .helpers import PRODUCTION_ENV, run_manage, run_python


def test_deploy_check_reports_nothing_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_same_check_fails_in_development():
    # Proves that the check above can fail: development settings are not deployable.
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={"DEBUG": "1"})
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on


def test_it_refuses_to_start_without_the_required_settings_and_names_them():
    result = run_manage("check", env={"DJANGO_ENV": "production"})
    assert result.returncode != 0
    assert (
        "DJANGO_ENV=production needs these environment variables: "
        "SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL" in result.stderr
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
def test_it_names_only_the_missing_setting(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert f"needs these environment variables: {missing}\n" in result.stderr


def test_debug_cannot_be_turned_on_in_production():
    result = run_manage("check", env={**PRODUCTION_ENV, "DEBUG": "1"})
    assert result.returncode != 0
    assert "DEBUG must be off when DJANGO_ENV=production" in result.stderr


def test_production_turns_on_https_cookies_hsts_and_compressed_static_files():
    code = (
        "import json; from django.conf import settings as s\n"
        "print(json.dumps({'debug': s.DEBUG, 'redirect': s.SECURE_SSL_REDIRECT,"
        " 'proxy': s.SECURE_PROXY_SSL_HEADER, 'hsts': s.SECURE_HSTS_SECONDS,"
        " 'session': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE,"
        " 'hosts': s.ALLOWED_HOSTS, 'static': s.STORAGES['staticfiles']['BACKEND'],"
        " 'mail': s.MAILERS['default']['BACKEND']}))"
    )
    result = run_python(
        code, env={**PRODUCTION_ENV, "ALLOWED_HOSTS": "a.example.com,b.example.com"}
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "debug": False,
        "redirect": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "hsts": 31_536_000,
        "session": True,
        "csrf": True,
        "hosts": ["a.example.com", "b.example.com"],
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "mail": "django.core.mail.backends.smtp.EmailBackend",
    }


def test_the_engine_prepares_its_statements_unless_the_database_url_says_not_to():
    from config.settings import database_from_url

    assert database_from_url("postgres://u@h/db")["OPTIONS"]["prepare_threshold"] == 5
    options = database_from_url("postgres://u@h/db?prepare_threshold=&sslmode=require")["OPTIONS"]
    assert options == {"prepare_threshold": None, "sslmode": "require"}
    assert database_from_url("postgres://u@h/db?prepare_threshold=2")["OPTIONS"] == {
        "prepare_threshold": 2
    }


def test_a_bad_prepare_threshold_is_refused_with_its_name():
    from django.core.exceptions import ImproperlyConfigured

    from config.settings import database_from_url

    with pytest.raises(ImproperlyConfigured, match="prepare_threshold must be a whole number"):
        database_from_url("postgres://u@h/db?prepare_threshold=lots")
