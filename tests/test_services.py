"""Service resolution: which real (or emulated) Redis, S3 and broker serve a run, and labels."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tempbench import processes, services
from tests.conftest import unavailable


@pytest.fixture
def no_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (services.REDIS_URL_ENV, services.S3_ENDPOINT_ENV, services.BROKER_URL_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def redis_binary() -> str:
    binary = services.redis_binary()
    if binary is None:
        unavailable("redis-server is not on PATH")
    return binary


@pytest.fixture
def private_redis(redis_binary: str) -> Iterator[services.ManagedRedis]:
    server = services.start_redis_server()
    yield server
    server.cleanup()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_private_redis_server_is_resolved_once_per_process(no_service_env, redis_binary) -> None:
    first = services.resolve_redis()
    assert services.resolve_redis() is first
    assert first.emulated is False
    assert first.name.startswith("redis-server ")
    assert first.managed is not None
    assert first.url == f"redis://:{first.managed.password}@127.0.0.1:{first.managed.port}/0"
    assert first.describe()["url"] == f"redis://:***@127.0.0.1:{first.managed.port}/0"


def test_private_redis_server_binds_loopback_without_persistence(private_redis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    try:
        config = client.config_get("*")
    finally:
        client.close()
    assert config["bind"] == "127.0.0.1"
    assert config["save"] == ""
    assert config["appendonly"] == "no"
    assert config["dir"] == str(private_redis.dir)


def test_fresh_resolution_starts_another_server_that_stop_ends(no_service_env, redis_binary) -> None:
    cached = services.resolve_redis()
    fresh = services.resolve_redis(fresh=True)
    try:
        assert fresh.url != cached.url
        client = fresh.client()
        assert client.ping()
        client.close()
    finally:
        fresh.stop()
        fresh.managed.cleanup()
    assert not _listening(fresh.managed.port)
    assert services.resolve_redis().client().ping()  # the cached one is untouched


def test_redis_service_records_the_settings_that_change_a_temp_store(private_redis) -> None:
    service = services.resolve_redis(private_redis.url)
    assert service.name == f"redis-server {service.detail['version']}"
    assert service.detail["maxmemory_policy"] == "noeviction"
    assert service.detail["save"] == ""
    assert service.detail["appendonly"] == "no"
    assert service.detail["mode"] == "url"


def test_redis_url_env_is_used_as_given(private_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.REDIS_URL_ENV, private_redis.url)
    service = services.resolve_redis()
    assert service.url == private_redis.url
    assert service.managed is None  # nothing was started for it
    assert service.detail["mode"] == "url"


def test_unreachable_redis_url_is_labelled_not_replaced_by_a_fallback() -> None:
    url = f"redis://:secret@127.0.0.1:{services.free_port()}/0"
    service = services.resolve_redis(url)
    assert service.emulated is False
    assert "unreachable" in service.name
    assert service.detail["reachable"] is False
    assert "secret" not in str(service.describe())


def test_fakeredis_is_the_labelled_fallback_without_a_binary(
    no_service_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "redis_binary", lambda: None)
    service = services.resolve_redis(fresh=True)
    assert service.emulated is True
    assert service.name.startswith("fakeredis ")
    one, two = service.client(), service.client()
    one.set("k", b"v")
    assert two.get("k") == b"v"  # every client of the service sees the same data
    plan = services.plan_redis()
    assert plan["emulated"] is True and "fakeredis" in plan["why"]


def test_restarted_redis_server_keeps_its_url(private_redis) -> None:
    url = private_redis.url
    private_redis.stop()
    assert not _listening(private_redis.port)
    private_redis.start()
    assert private_redis.url == url
    client = redis.Redis.from_url(url)
    assert client.ping()
    client.close()


def test_persistent_redis_server_writes_plaintext_to_dump_rdb(redis_binary) -> None:
    server = services.start_redis_server(persistence=True)
    try:
        client = redis.Redis.from_url(server.url)
        client.set("temp_file:s:original", b"ECU-PLAINTEXT-MARKER")
        client.save()
        client.close()
        assert b"ECU-PLAINTEXT-MARKER" in (server.dir / "dump.rdb").read_bytes()
    finally:
        server.cleanup()


def test_describe_services_starts_nothing(no_service_env, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("describe_services() started a server")

    monkeypatch.setattr(services, "_cache", {})
    monkeypatch.setattr(services, "start_redis_server", refuse)
    monkeypatch.setattr(services, "start_moto_server", refuse)
    described = services.describe_services()
    assert set(described) == {"redis", "s3", "broker"}
    assert described["s3"]["emulated"] is True
    assert all(entry["state"] in ("planned", "unavailable") for entry in described.values())


def test_moto_server_serves_s3_over_http_on_loopback(no_service_env) -> None:
    server = services.start_moto_server()
    try:
        service = services.S3Service(
            endpoint_url=server.url, name="moto", emulated=True, managed=server
        )
        client = service.client()
        client.create_bucket(Bucket="tempbench-services-test")
        client.put_object(Bucket="tempbench-services-test", Key="k", Body=b"bytes over http")
        body = client.get_object(Bucket="tempbench-services-test", Key="k")["Body"].read()
        assert body == b"bytes over http"
        assert server.url.startswith("http://127.0.0.1:")
        port = server.port
        server.stop()
        assert not _listening(port)
        server.start()
        assert server.port == port
        assert client.list_buckets()["Buckets"]  # moto's data lives in-process: it survives
    finally:
        server.stop()


def test_resolved_s3_is_a_labelled_moto_emulator(no_service_env) -> None:
    service = services.resolve_s3()
    assert service.emulated is True
    assert service.name.startswith("moto ") and service.name.endswith(" emulator")
    assert service.endpoint_url.startswith("http://127.0.0.1:")


def test_a_moto_server_given_by_url_stays_labelled_emulated(no_service_env) -> None:
    started = services.resolve_s3(fresh=True)
    try:
        given = services.resolve_s3(started.endpoint_url)
        assert given.emulated is True
        assert given.name.startswith("moto ") and "emulator" in given.name
        assert given.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        started.stop()


def test_s3_endpoint_env_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.S3_ENDPOINT_ENV, "http://127.0.0.1:9000")
    service = services.resolve_s3()
    assert service.endpoint_url == "http://127.0.0.1:9000"
    assert service.emulated is False and service.name == "127.0.0.1:9000"
    assert service.credentials == {}  # a user endpoint never gets moto's dummy credentials


def test_broker_defaults_to_the_resolved_real_redis(no_service_env, redis_binary) -> None:
    broker = services.resolve_broker()
    assert broker.url == services.resolve_redis().url
    assert broker.emulated is False


def test_broker_falls_back_to_memory_transport_when_redis_is_emulated(
    no_service_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_cache", {})
    monkeypatch.setattr(services, "redis_binary", lambda: None)
    broker = services.resolve_broker()
    assert broker.url == "memory://"
    assert broker.emulated is True


def test_rabbitmq_broker_url_is_named_from_its_handshake() -> None:
    url = "amqp://guest:guest@127.0.0.1:5672//"
    broker = services.resolve_broker(url)
    if "unreachable" in broker.name:
        unavailable(f"RabbitMQ on 127.0.0.1:5672: {broker.name}")
    assert broker.name.startswith("RabbitMQ ")
    assert broker.emulated is False
    assert "guest:guest" not in broker.describe()["url"]


def test_redact_url_hides_only_the_password() -> None:
    assert services.redact_url("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert services.redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_backends_command_shows_what_would_serve_each_strategy(
    no_service_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tempbench.cli import app

    monkeypatch.setattr(services, "_cache", {})
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["backends"])
    assert result.exit_code == 0, result.output
    assert "served by" in result.output
    assert "[emulated]" in result.output  # the moto emulator is labelled
    assert services._cache == {}  # listing resolved (and started) nothing


# ------------------------------------------------ what a private server exposes (issue 13.5)


def test_private_redis_refuses_a_client_without_its_password(private_redis) -> None:
    anonymous = redis.Redis(host="127.0.0.1", port=private_redis.port, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("temp_file:s:original")
    anonymous.close()
    wrong = redis.Redis.from_url(f"redis://:guess@127.0.0.1:{private_redis.port}/0")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()
    assert services.resolve_redis(private_redis.url).detail["unauthenticated_clients"] == "refused"


def test_private_redis_password_is_on_no_command_line_and_its_file_is_private(private_redis) -> None:
    import psutil

    assert len(private_redis.password) >= 32
    assert private_redis.password not in " ".join(psutil.Process(private_redis.pid).cmdline())
    config = private_redis.dir / "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert private_redis.dir.stat().st_mode & 0o777 == 0o700
    assert private_redis.password not in repr(services.resolve_redis(private_redis.url))


def test_an_open_redis_the_user_supplies_is_described_as_exposed(redis_binary, tmp_path) -> None:
    port = services.free_port()
    open_server = subprocess.Popen(
        [redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        detail = services.resolve_redis(f"redis://127.0.0.1:{port}/0").detail
    finally:
        open_server.terminate()
        open_server.wait()
    assert detail["unauthenticated_clients"] == "accepted"
    assert f"redis at 127.0.0.1:{port} accepts unauthenticated clients" in detail["exposure"]


def test_the_moto_server_says_it_checks_no_credentials(no_service_env) -> None:
    detail = services.resolve_s3().describe()["detail"]
    assert detail["unauthenticated_clients"] == "accepted"
    assert "checks no credentials" in detail["exposure"]


# ------------------------------------------------------- service output in files (issue 15.1)


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    processes.use_log_dir(tmp_path / "logs")
    yield tmp_path / "logs"
    processes.use_log_dir(None)


def test_moto_server_errors_go_to_its_log_not_the_terminal_and_are_counted(log_dir, capfd) -> None:
    import requests

    server = services.start_moto_server()
    try:
        s3 = services.S3Service(server.url, "moto", True)
        s3.client().create_bucket(Bucket="tb-log-test")
        # moto fails inside its XML parser on a malformed tagging body and answers 500
        for _ in range(3):
            answer = requests.put(f"{server.url}/tb-log-test?tagging", data=b"<unclosed", timeout=10)
            assert answer.status_code == 500
        assert requests.get(f"{server.url}/tb-log-test", timeout=10).status_code == 200
    finally:
        server.stop()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ExpatError" not in out + err
    log_text = (log_dir / "moto.log").read_text()
    assert "ExpatError" in log_text  # the traceback is kept, in the file
    assert '"GET /tb-log-test HTTP/1.1" 200' not in log_text  # only failed requests are written
    assert processes.log_errors(log_dir)["moto"].count == 3


def test_a_redis_server_start_and_stop_log_no_error_line(log_dir, redis_binary) -> None:
    server = services.start_redis_server()
    server.cleanup()
    assert "Ready to accept connections" in (log_dir / "redis.log").read_text()
    assert "redis" not in processes.log_errors(log_dir)
