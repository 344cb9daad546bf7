"""The celery strategy with real worker processes: results, message size, faults, clean stop.

One store with its workers serves the module (worker start-up costs about a second);
tests that must kill or stop workers build their own.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from celery.signals import before_task_publish
from kombu import Connection

from backends import NotFound, get_store
from backends.celery_store import CeleryStore
from tempbench import services
from tempbench.processing import compare_images, process_session
from tests.conftest import unavailable

pytestmark = pytest.mark.service

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
TTL_S = 120.0


@pytest.fixture(scope="module")
def real_redis() -> services.RedisService:
    redis = services.resolve_redis()
    if redis.emulated or not redis.detail.get("reachable", False):
        unavailable(f"celery workers need a real Redis; resolved {redis.name}")
    return redis


@pytest.fixture(scope="module")
def store(real_redis: services.RedisService) -> Iterator[CeleryStore]:
    with CeleryStore(inner="redis", url=real_redis.url, workers=1, concurrency=2) as built:
        yield built


def _put_pair(store: CeleryStore, session_id: str, size: int = 20_000, seed: int = 0) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    original = rng.randbytes(size)
    modified = bytearray(original)
    for offset in rng.sample(range(size), 5):
        modified[offset] ^= 0x5A
    store.put(session_id, "original", original, TTL_S)
    store.put(session_id, "modified", bytes(modified), TTL_S)
    return original, bytes(modified)


def _assert_no_process_alive(pids: list[int]) -> None:
    """Every pid is gone (or a zombie awaiting its parent); SIGKILL lands asynchronously."""

    def alive() -> list[int]:
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    found.append(pid)
        return found

    for _ in range(50):
        if not alive():
            return
        time.sleep(0.05)
    assert alive() == [], f"processes still alive: {alive()}"


def test_put_and_get_do_not_start_workers(real_redis: services.RedisService) -> None:
    with CeleryStore(inner="redis", url=real_redis.url) as lazy:
        lazy.put("lazy1", "original", b"x" * 1000, TTL_S)
        assert lazy.get("lazy1", "original") == b"x" * 1000
        assert lazy.worker_pids() == []
        assert lazy.capabilities.async_processing is True
        lazy.delete_session("lazy1")


def test_worker_result_equals_inline_processing(store: CeleryStore) -> None:
    _put_pair(store, "same1", size=300_000)
    job = store.submit("same1", ttl_s=TTL_S)
    from_worker = store.wait(job, timeout=30)
    assert store.status(job) == "success"
    stored = json.loads(store.get("same1", "result"))
    inline = process_session(store.inner, "same1", TTL_S)  # overwrites: the job is idempotent
    assert from_worker == stored == inline
    assert from_worker["changed_bytes"] == 5
    assert store.get("same1", "result") == json.dumps(
        inline, sort_keys=True, separators=(",", ":")
    ).encode()
    store.delete_session("same1")


def test_worker_processes_are_real_and_labelled_real(store: CeleryStore) -> None:
    main_and_children = store.worker_pids()
    assert len(main_and_children) >= 3  # 1 worker main process + 2 prefork children
    info = store.service()
    assert info.emulated is False
    assert info.detail["in_process_worker"] is False
    assert "redis-server" in info.detail["broker"]


def test_job_for_missing_files_raises_not_found(store: CeleryStore) -> None:
    store.put("half1", "original", b"only the original", TTL_S)
    job = store.submit("half1", ttl_s=TTL_S)
    with pytest.raises(NotFound):
        store.wait(job, timeout=30)
    assert store.status(job) == "failure"
    with pytest.raises(NotFound):
        store.get("half1", "result")
    store.delete_session("half1")


def test_task_message_carries_references_not_file_bytes(real_redis: services.RedisService) -> None:
    published: list[dict] = []

    def capture(sender: str, body: object, headers: dict, **_: object) -> None:
        published.append({"headers": headers, "body": body})

    session_id = uuid.uuid4().hex  # the shape of a Flask session id
    before_task_publish.connect(capture)
    # workers=0: jobs stay in the queue, so messages can also be read as the broker holds them
    try:
        with CeleryStore(inner="redis", url=real_redis.url, workers=0) as producer:
            client = real_redis.client()
            task_sizes, wire_sizes = [], []
            for size in (1024, 256 * 1024):
                original, _ = _put_pair(producer, session_id, size=size)
                producer.submit(session_id, ttl_s=TTL_S)
                (wire,) = client.lrange(producer.store_id, 0, -1)
                client.delete(producer.store_id)
                message = json.dumps(published[-1]).encode()  # Celery protocol 2: headers + body
                task_sizes.append(len(message))
                wire_sizes.append(len(wire))  # plus the transport's envelope (base64 body...)
                assert original[100:132] not in wire
            producer.delete_session(session_id)
    finally:
        before_task_publish.disconnect(capture)
    assert task_sizes[0] < 1024, f"task message is {task_sizes[0]} bytes"
    # the message does not grow with the file: it names the file, it does not carry it
    assert task_sizes[1] == task_sizes[0] and wire_sizes[1] == wire_sizes[0]
    assert published[-1]["body"][0] == [session_id, TTL_S]
    assert client.exists(producer.store_id) == 0  # close() dropped the private queue
    client.close()


def test_sigkilled_pool_process_loses_no_job(store: CeleryStore) -> None:
    inputs = {f"kill{i}": _put_pair(store, f"kill{i}", size=8_000, seed=i) for i in range(20)}
    jobs = {sid: store.submit(sid, ttl_s=TTL_S, delay_s=0.15) for sid in inputs}
    killed = store.kill_worker_child(timeout=10)
    _assert_no_process_alive([killed])
    results = {sid: store.wait(job, timeout=60) for sid, job in jobs.items()}
    assert len(results) == 20
    for sid, (original, modified) in inputs.items():
        expected = {"session_id": sid, **compare_images(original, modified)}
        assert results[sid] == expected
        assert json.loads(store.get(sid, "result")) == expected
        store.delete_session(sid)
    assert killed not in store.worker_pids()  # the pool replaced the killed process


@pytest.mark.slow
def test_whole_worker_killed_jobs_return_after_visibility_timeout(
    real_redis: services.RedisService,
) -> None:
    visibility_s = 2.0
    with CeleryStore(
        inner="redis", url=real_redis.url, workers=1, concurrency=1, visibility_timeout_s=visibility_s
    ) as crashing:
        sessions = [f"crash{i}" for i in range(6)]
        for i, sid in enumerate(sessions):
            _put_pair(crashing, sid, size=4_000, seed=100 + i)
        jobs = [crashing.submit(sid, ttl_s=TTL_S, delay_s=0.3) for sid in sessions]
        crashing.kill_worker_child(timeout=10)  # waits for a job to be running, kills it
        crashing.kill_workers()  # then the whole worker: its jobs stay unacknowledged
        assert crashing.worker_pids() == []
        time.sleep(visibility_s + 0.5)  # Redis broker redelivers only after the timeout
        crashing.restart_workers()
        results = [crashing.wait(job, timeout=60) for job in jobs]
        assert [r["session_id"] for r in results] == sessions
        for sid in sessions:
            crashing.delete_session(sid)


def test_close_leaves_no_worker_process(real_redis: services.RedisService) -> None:
    stopping = CeleryStore(inner="redis", url=real_redis.url, workers=2, concurrency=2)
    _put_pair(stopping, "stop1")
    stopping.wait(stopping.submit("stop1", ttl_s=TTL_S), timeout=30)
    pids = stopping.worker_pids()
    assert len(pids) == 6  # 2 main processes + 2 x 2 prefork children
    stopping.delete_session("stop1")
    stopping.close()
    _assert_no_process_alive(pids)


def test_memory_broker_falls_back_to_an_in_process_worker_labelled_emulated(
    real_redis: services.RedisService,
) -> None:
    with CeleryStore(inner="redis", url=real_redis.url, broker_url="memory://") as emulated:
        original, modified = _put_pair(emulated, "mem1")
        result = emulated.wait(emulated.submit("mem1", ttl_s=TTL_S), timeout=30)
        assert result == {"session_id": "mem1", **compare_images(original, modified)}
        assert emulated.worker_pids() == []  # no worker process: a thread in this process
        info = emulated.service()
        assert info.emulated is True
        assert info.detail["in_process_worker"] is True
        emulated.delete_session("mem1")


def test_rabbitmq_broker_is_swappable(real_redis: services.RedisService) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError as exc:
        unavailable(f"no RabbitMQ on 127.0.0.1:5672: {exc}")
    rabbit = get_store("celery+redis", url=real_redis.url, broker_url=RABBITMQ_URL)
    try:
        original, modified = _put_pair(rabbit, "amqp1")
        result = rabbit.wait(rabbit.submit("amqp1", ttl_s=TTL_S), timeout=30)
        assert result == {"session_id": "amqp1", **compare_images(original, modified)}
        info = rabbit.service()
        assert info.detail["broker_url"].startswith("amqp://")
        assert "RabbitMQ" in info.detail["broker"]
        assert info.emulated is False
        rabbit.delete_session("amqp1")
        pids, queue = rabbit.worker_pids(), rabbit.store_id
    finally:
        rabbit.close()
    _assert_no_process_alive(pids)
    with Connection(RABBITMQ_URL) as conn, pytest.raises(conn.channel_errors):
        conn.default_channel.queue_declare(queue, passive=True)  # the queue was deleted


def test_pool_processes_die_when_their_worker_is_sigkilled(real_redis: services.RedisService) -> None:
    with CeleryStore(inner="redis", url=real_redis.url, workers=1, concurrency=2) as orphaning:
        _put_pair(orphaning, "orphan1")
        job = orphaning.submit("orphan1", ttl_s=TTL_S, delay_s=30)
        deadline = time.monotonic() + 30
        while orphaning.status(job) != "started" and time.monotonic() < deadline:
            time.sleep(0.1)
        main = psutil.Process(orphaning._pool._workers[0].process.pid)
        pool = main.children()
        assert len(pool) == 2
        # no warm shutdown: the worker cannot stop its pool, and the busy pool process would
        # only notice its parent is gone after its 30 s job
        main.kill()
        _assert_no_process_alive([p.pid for p in pool])
        orphaning.delete_session("orphan1")


def test_worker_output_goes_to_the_celery_log_with_its_errors_counted(
    real_redis: services.RedisService, tmp_path
) -> None:
    from tempbench import processes

    processes.use_log_dir(tmp_path)
    try:
        with CeleryStore(inner="redis", url=real_redis.url, workers=1) as logging_store:
            logging_store.put("logged1", "original", b"only the original", TTL_S)
            with pytest.raises(NotFound):
                logging_store.wait(logging_store.submit("logged1", ttl_s=TTL_S), timeout=30)
            logging_store.delete_session("logged1")
    finally:
        processes.use_log_dir(None)
    text = (tmp_path / "celery.log").read_text()
    assert "NotFound" in text  # the worker's own report of the failed job
    assert processes.log_errors(tmp_path)["celery"].count >= 1
