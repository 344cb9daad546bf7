"""The app path: the reference app's own cost per uploaded MiB, the proxy's body-limit wall,
and the presigned flow offered by celery+s3 (the review's recommendation) but not celery+redis."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from backends import get_store
from backends.base import MiB
from scenarios.core import RunFolder
from scenarios.runner import BackendTarget, Runner, StoreFactory
from scenarios.workload import load_workload
from tempbench.webapp import app_store, create_app


def test_a_body_over_the_proxy_limit_is_refused_before_the_store_sees_it(tmp_path: Path) -> None:
    app = create_app("disk", store=get_store("disk", root=tmp_path / "s"), proxy_body_limit=MiB,
                     secret_key="k" * 32)
    client = app.test_client()
    client.environ_base["HTTP_X_TEMPBENCH_CLIENT"] = "test"
    over = client.post("/api/files/original", data=b"x" * (MiB + 1), content_type="application/octet-stream")
    assert over.status_code == 413 and over.get_json()["error"] == "proxy_limit"
    assert app_store(app).footprint().objects == 0  # nothing reached the medium
    under = client.post("/api/files/original", data=b"y" * MiB, content_type="application/octet-stream")
    assert under.status_code == 201 and under.get_json()["bytes"] == MiB
    sid = under.get_json()["session_id"]
    assert app_store(app).open(sid, "original").read() == b"y" * MiB


def test_without_a_proxy_limit_only_the_apps_own_file_limit_applies(tmp_path: Path) -> None:
    app = create_app("disk", store=get_store("disk", root=tmp_path / "s"), max_content_length=4 * MiB,
                     secret_key="k" * 32)
    client = app.test_client()
    client.environ_base["HTTP_X_TEMPBENCH_CLIENT"] = "test"
    ok = client.post("/api/files/original", data=io.BytesIO(b"z" * (2 * MiB)), content_type="application/octet-stream")
    assert ok.status_code == 201


@pytest.mark.service
def test_celery_offers_direct_upload_exactly_when_its_wrapped_store_does(request: pytest.FixtureRequest) -> None:
    from tempbench.services import resolve_s3
    from tests.conftest import build_celery_store

    plain = build_celery_store(request, workers=0)
    recommended = get_store("celery+s3", workers=0, endpoint_url=resolve_s3().endpoint_url)
    try:
        assert not hasattr(plain, "presign_upload") and not hasattr(plain, "confirm_upload")
        assert recommended.presign_upload.__self__ is recommended.inner
        form = recommended.presign_upload("sess0001", "original", ttl_s=60, max_bytes=MiB)
        assert form["method"] == "POST" and "policy" in {k.lower() for k in form["fields"]}
        assert recommended.capabilities.direct_upload and recommended.capabilities.async_processing
    finally:
        plain.close()
        recommended.close()


@pytest.mark.service
def test_app_path_scenario_measures_cost_and_the_wall_through_a_real_gunicorn(tmp_path: Path) -> None:
    workload = load_workload("quick")
    workload.sizes = [(512 * 1024, 1.0), (MiB, 1.0)]
    workload.sections["app_path"] = {"repeats": 2, "body_limit_bytes": "1MiB"}
    folder = RunFolder(tmp_path / "run", "test")
    runner = Runner(["app_path"], [BackendTarget("disk", StoreFactory("disk", {"root": tmp_path / "disk"}))],
                    workload, folder)
    assert [r.status for r in runner.run()] == ["ok"]
    rows = {(r.operation, r.metric, r.params.get("flow")): r for r in folder.read_rows()}
    cost = rows[("app_upload", "app_bytes_per_mib", "through_app")]
    assert cost.value >= MiB and not cost.emulated  # the whole file passed through the app
    assert rows[("app_upload", "app_cpu_s_per_mib", "through_app")].value >= 0
    assert rows[("upload", "accepted_share", "through_app")].value == 1.0
    wall = rows[("size_wall", "accepted", "through_app")]
    assert wall.outcome == "quota" and wall.value == 0.0 and wall.params["size_bytes"] > MiB
    assert "HTTP 413" in wall.params["evidence"]
    assert 0 < rows[("set_cookie", "set_cookie_bytes", None)].value < 4096
    assert ("size_wall", "accepted", "presigned") not in rows  # disk has no direct upload
