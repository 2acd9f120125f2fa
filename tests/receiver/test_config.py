"""receiver.yml: defaults with no file, secrets from files and env, errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import DEFAULT_LISTEN, ReceiverConfig, load_config
from receiver.errors import ConfigError
from receiver.recovery import RecoveryConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "receiver.yml"
    path.write_text(text)
    return path


def test_no_config_runs_on_the_embedded_defaults() -> None:
    config = load_config(None)
    assert config == ReceiverConfig()
    assert config.listen == DEFAULT_LISTEN == "127.0.0.1:9099"
    assert config.store_url == "sqlite:///pipemedic-receiver.db"
    assert not config.auth.enabled
    assert config.body_limit_bytes == 1024 * 1024
    assert (config.worker_concurrency, config.lease_seconds) == (4, 300.0)
    assert config.prometheus_url == "http://127.0.0.1:9090"
    assert config.recovery == RecoveryConfig()
    assert config.source == "<defaults>"


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing set\n")
    config = load_config(path)
    assert config.source == str(path)
    assert config == ReceiverConfig(source=str(path))


def test_fields_are_read_with_durations_and_a_trailing_slash_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        listen: 0.0.0.0:9199
        store: postgresql://pipemedic@127.0.0.1:5432/pipemedic
        body_limit_bytes: 2048
        queue: {max_depth: 10}
        workers: {concurrency: 0, lease_seconds: 2m, poll_interval_seconds: 0.25}
        prometheus_url: http://127.0.0.1:9090/
        spec: rules/pipelines.yml
        reopen_window: 30m
        recovery: {dry_run: true, lease_seconds: 10m}
        notify: {paging: {alertmanager_url: http://127.0.0.1:9093/, resend_interval: 30s}}
        """.replace("\n        ", "\n"),
    )
    config = load_config(path)
    assert config.listen == "0.0.0.0:9199"
    assert config.store_url.startswith("postgresql://")
    assert (config.body_limit_bytes, config.queue_max_depth) == (2048, 10)
    assert (config.worker_concurrency, config.lease_seconds) == (0, 120.0)
    assert config.poll_interval_seconds == 0.25
    assert config.prometheus_url == "http://127.0.0.1:9090"
    assert config.spec_path == "rules/pipelines.yml"
    assert config.reopen_window_seconds == 1800.0
    assert config.recovery.dry_run is True and config.recovery.lease_seconds == 600.0
    assert config.notify.alertmanager_url == "http://127.0.0.1:9093"
    assert config.notify.page_resend_seconds == 30.0


def test_secrets_come_from_files_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")  # surrounding whitespace is not part of it
    monkeypatch.setenv("PIPEMEDIC_TEST_PASSWORD", "pa:ss word")
    path = write(
        tmp_path,
        f"""
auth:
  bearer: {{token_file: "{token}"}}
  basic: {{username: alertmanager, password_env: PIPEMEDIC_TEST_PASSWORD}}
""",
    )
    auth = load_config(path).auth
    assert auth.enabled
    assert auth.bearer_token == "s3cr3t-token"
    assert (auth.basic_username, auth.basic_password) == ("alertmanager", "pa:ss word")

    monkeypatch.setenv("PIPEMEDIC_TEST_TOKEN", "from-env")
    path = write(tmp_path, "auth: {bearer: {token_env: PIPEMEDIC_TEST_TOKEN}}\n")
    assert load_config(path).auth.bearer_token == "from-env"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("listen: 9099\n", "listen", "must be a non-empty string"),
        ("listen: localhost\n", "listen", "HOST:PORT"),
        ("lisen: 127.0.0.1:1\n", "lisen", "unknown field"),
        ("workers: {concurrency: -1}\n", "workers.concurrency", "integer >= 0"),
        ("workers: {threads: 2}\n", "workers.threads", "unknown field"),
        ("workers: {lease_seconds: soon}\n", "workers.lease_seconds", "soon"),
        ("workers: {lease_seconds: 0}\n", "workers.lease_seconds", "must be positive"),
        ("queue: [1]\n", "queue", "must be a mapping"),
        ("body_limit_bytes: true\n", "body_limit_bytes", "integer >= 1024"),
        ("prometheus_url: file:///etc/passwd\n", "prometheus_url", "http(s) URL"),
        ("reopen_window: -5m\n", "reopen_window", ""),
        ("auth: {bearer: {token: inline}}\n", "auth.bearer.token", "not written inline"),
        ("auth: {bearer: {}}\n", "auth.bearer", "needs token_file or token_env"),
        (
            "auth: {bearer: {token_file: a, token_env: B}}\n",
            "auth.bearer",
            "not both",
        ),
        ("auth: {basic: {password_env: X}}\n", "auth.basic.username", "non-empty string"),
        ("auth: {basic: {username: 'a:b', password_env: X}}\n", "auth.basic.username", "':'"),
        (
            "auth: {basic: {username: am, password_env: PIPEMEDIC_TEST_UNSET}}\n",
            "auth.basic.password_env",
            "PIPEMEDIC_TEST_UNSET is not set",
        ),
        ("recovery: {max_concurrent_actions: many}\n", "recovery", "max_concurrent_actions"),
        (
            "notify: {paging: {resend_interval: 0s}}\n",
            "notify.paging.resend_interval",
            "must be positive",
        ),
    ],
)
def test_errors_name_the_file_and_the_field_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, field: str, message: str
) -> None:
    monkeypatch.delenv("PIPEMEDIC_TEST_UNSET", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.source, error.path) == (str(path), field)
    assert str(error).startswith(f"{path}: {field}: ")
    assert message in error.message


def test_secret_files_that_cannot_be_used_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    path = write(tmp_path, f'auth: {{bearer: {{token_file: "{missing}"}}}}\n')
    with pytest.raises(ConfigError, match=r"auth\.bearer\.token_file: cannot read .*no-such-token"):
        load_config(path)
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    path = write(tmp_path, f'auth: {{bearer: {{token_file: "{empty}"}}}}\n')
    with pytest.raises(ConfigError, match=r"auth\.bearer\.token_file: .*empty-token is empty"):
        load_config(path)


def test_unreadable_files_and_invalid_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yml: cannot read"):
        load_config(tmp_path / "missing.yml")
    path = write(tmp_path, "listen: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:")  # file:line
    assert "invalid YAML" in str(caught.value)
    assert "line 1" in str(caught.value)


def test_receiver_yml_is_loaded_with_the_specs_bounds(tmp_path: Path) -> None:
    """Duplicate keys and alias bombs are refused with file:line, as in the spec."""
    path = write(tmp_path, "listen: 127.0.0.1:9099\nlisten: 127.0.0.1:9100\n")
    with pytest.raises(ConfigError, match=r"receiver\.yml:2: listen: .*duplicate"):
        load_config(path)
    laughs = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join(laughs) + "\n")
    with pytest.raises(ConfigError, match=r"receiver\.yml:\d+: "):
        load_config(path)
