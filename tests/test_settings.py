"""Configuration: layering of defaults, --config file, ENGAGE_* variables and
overrides; type coercion; validation; redaction for logs."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from engage.errors import ConfigError
from engage.settings import DEFAULT_CONFIG, Settings, load_settings


@pytest.fixture
def config_file(tmp_path):
    """Write a TOML file and return its path: ``config_file('port = 1')``."""

    def write(text: str):
        path = tmp_path / "engage.toml"
        path.write_text(text)
        return path

    return write


# -- defaults -----------------------------------------------------------------


def test_default_file_covers_every_setting_with_the_documented_defaults():
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(data) == names
    assert load_settings(env={}) == Settings()


def test_environment_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("ENGAGE_PORT", "9999")
    assert load_settings().port == 9999
    assert load_settings(env={}).port == 8080


# -- layering -----------------------------------------------------------------


def test_layers_override_in_order(config_file):
    path = config_file('host = "0.0.0.0"\nport = 9000\napplause_cap = 10\n')
    env = {"ENGAGE_PORT": "9100", "ENGAGE_DEV_MODE": "yes", "ENGAGE_LOG_LEVEL": "debug"}
    settings = load_settings(path, env=env, port=9200, log_level=None)
    assert settings.port == 9200            # override beats env beats file
    assert settings.dev_mode is True        # env beats default
    assert settings.log_level == "debug"    # a None override does not hide env
    assert settings.host == "0.0.0.0"       # file beats default
    assert settings.applause_cap == 10
    assert settings.flush_interval == 1.0   # untouched default


def test_env_beats_config_file(config_file):
    path = config_file("applause_cap = 10\n")
    assert load_settings(path, env={"ENGAGE_APPLAUSE_CAP": "20"}).applause_cap == 20
    assert load_settings(path, env={}).applause_cap == 10


def test_env_ignores_unrelated_and_unknown_variables():
    env = {"PORT": "1", "ENGAGE_NO_SUCH_THING": "x", "engage_port": "2", "ENGAGE_HOST": "::1"}
    settings = load_settings(env=env)
    assert settings.port == 8080
    assert settings.host == "::1"


def test_config_file_accepts_path_strings(config_file):
    path = config_file('redis_prefix = "other:"\n')
    assert load_settings(str(path), env={}).redis_prefix == "other:"


# -- errors -------------------------------------------------------------------


def test_unknown_key_in_config_file(config_file):
    path = config_file("prot = 8080\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings(path, env={})


def test_unknown_override():
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings(env={}, no_such_setting=1)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "nope.toml", env={})


def test_invalid_toml(config_file):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(config_file("port = = 1\n"), env={})


@pytest.mark.parametrize(("name", "raw"), [
    ("port", "eighty"),
    ("port", "80.5"),
    ("port", ""),
    ("flush_interval", "soon"),
    ("dev_mode", "maybe"),
    ("dev_mode", "2"),
])
def test_bad_env_values(name, raw):
    with pytest.raises(ConfigError, match=f"setting {name}"):
        load_settings(env={f"ENGAGE_{name.upper()}": raw})


def test_non_integral_float_for_an_int_setting(config_file):
    with pytest.raises(ConfigError, match="setting port: not an integer"):
        load_settings(config_file("port = 8080.5\n"), env={})
    assert load_settings(config_file("port = 8081.0\n"), env={}).port == 8081


@pytest.mark.parametrize(("changes", "message"), [
    ({"applause_cap": 0}, "applause_cap"),
    ({"flush_interval": 0}, "flush_interval"),
    ({"counter_ttl": 0}, "counter_ttl"),
    ({"content_idle_timeout": -1}, "content_idle_timeout"),
    ({"events_max_batch": 0}, "events_max_batch"),
    ({"events_max_batch": 100_001}, "events_max_batch"),
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
])
def test_out_of_range_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, **changes)


def test_range_limits_are_inclusive():
    settings = load_settings(env={}, port=65535, events_max_batch=100_000, applause_cap=1)
    assert (settings.port, settings.events_max_batch, settings.applause_cap) == (65535, 100_000, 1)


# -- coercion -----------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_boolean_spellings(raw, expected):
    assert load_settings(env={"ENGAGE_DEV_MODE": raw}).dev_mode is expected


def test_env_strings_are_coerced_to_each_type():
    env = {"ENGAGE_PORT": "8443", "ENGAGE_FLUSH_INTERVAL": "0.5", "ENGAGE_HOST": "10.0.0.1",
           "ENGAGE_SHUTDOWN_TIMEOUT": "3"}
    settings = load_settings(env=env)
    assert settings.port == 8443 and type(settings.port) is int
    assert settings.flush_interval == 0.5 and type(settings.flush_interval) is float
    assert settings.shutdown_timeout == 3.0 and type(settings.shutdown_timeout) is float
    assert settings.host == "10.0.0.1"


def test_overrides_are_coerced_too():
    settings = load_settings(env={}, port="9001", dev_mode="on", flush_interval=2)
    assert settings.port == 9001
    assert settings.dev_mode is True
    assert type(settings.flush_interval) is float


def test_toml_booleans_pass_through(config_file):
    assert load_settings(config_file("dev_mode = true\n"), env={}).dev_mode is True


# -- derived values and redaction ----------------------------------------------


def test_origins_and_embedded():
    settings = load_settings(env={}, allowed_origins=" https://a.example/, ,https://b.example ")
    assert settings.origins == frozenset({"https://a.example", "https://b.example"})
    assert settings.embedded is True
    both = settings.replace(database_url="postgresql://h/db", redis_url="redis://h")
    assert both.embedded is False
    assert settings.replace(database_url="postgresql://h/db").embedded is True


def test_redacted_hides_secrets_and_url_passwords():
    settings = load_settings(
        env={}, jwt_secret="s3cret",
        database_url="postgresql://app:pa55@db.internal:5432/engage",
        redis_url="redis://:hunter2@cache:6379/0")
    out = settings.redacted()
    assert out["jwt_secret"] == "***"
    assert out["database_url"] == "postgresql://app:***@db.internal:5432/engage"
    assert out["redis_url"] == "redis://:***@cache:6379/0"
    assert "pa55" not in repr(out) and "hunter2" not in repr(out) and "s3cret" not in repr(out)
    assert out["port"] == settings.port
    assert set(out) == {f.name for f in dataclasses.fields(Settings)}
    # The settings themselves are untouched.
    assert settings.jwt_secret == "s3cret"
    assert settings.database_url.endswith("pa55@db.internal:5432/engage")


def test_redacted_password_containing_at_sign():
    out = Settings(database_url="postgresql://u:p@ss@host/db").redacted()
    assert out["database_url"] == "postgresql://u:***@host/db"


@pytest.mark.parametrize("url", ["", "redis://cache:6379/0", "postgresql://user@db/engage",
                                 "not a url @ all"])
def test_redacted_leaves_urls_without_passwords_alone(url):
    assert Settings(redis_url=url).redacted()["redis_url"] == url


def test_redacted_keeps_an_empty_secret_empty():
    assert Settings().redacted()["jwt_secret"] == ""
