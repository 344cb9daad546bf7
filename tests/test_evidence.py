"""Evidence as message ids plus arguments: every id speaks English and Spanish, rows keep the
English text, and a Spanish report rendered from real rows has no English evidence sentence."""

from __future__ import annotations

import html
import pickle
import re
import string
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.data import load_run
from reports.render import render_run
from tempbench.cli import app
from tempbench.evidence import Say, catalogue, evidence_params, localise

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("scenarios", "backends", "tempbench") for p in (ROOT / d).rglob("*.py")]


def _fields(template: str) -> set[str]:
    return {name.split(".")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_message_has_english_and_spanish_text_with_the_same_placeholders() -> None:
    en, es = catalogue()["en"], catalogue()["es"]
    assert set(en) == set(es)
    for msg_id, text in en.items():
        assert es[msg_id].strip(), msg_id
        assert _fields(text) == _fields(es[msg_id]), msg_id


def test_every_message_is_emitted_by_the_code_and_every_emitted_id_exists() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    literal = set(re.findall(r'Say\(\s*"([a-z0-9_]+)"', code))
    prefixes = re.findall(r'Say\(\s*f"([a-z0-9_]+)\{', code)
    indirect = set(re.findall(r'"([a-z0-9_]+)"', code))  # ids chosen by a conditional or a table
    assert literal <= set(catalogue()["en"]), literal - set(catalogue()["en"])
    unused = [m for m in catalogue()["en"] if m not in literal | indirect
              and not any(m.startswith(p) for p in prefixes)]
    assert unused == []


def test_a_say_is_its_english_text_and_renders_again_in_spanish() -> None:
    clause = Say("conc_torn_sizes", sizes="[3, 5]")
    say = Say("conc_same_key", writers=4, readers=2, duration_s=1.0, size=64, reads=10, torn=1, sizes=clause)
    assert say == ("4 writers and 2 readers on one key for 1.0 s with distinct 64-byte payloads: 10 reads, "
                   "1 matched no payload any writer started (sizes of torn reads: [3, 5])")
    assert "torn reads" in say and pickle.loads(pickle.dumps(say)).params() == say.params()
    params = evidence_params(say)
    assert params["evidence"] == str(say)
    assert localise(params, "es") == ("4 escritores y 2 lectores sobre una misma clave durante 1.0 s con "
                                      "contenidos distintos de 64 bytes: 10 lecturas, 1 no coincidieron con "
                                      "ningún contenido que un escritor hubiera empezado (tamaños de las "
                                      "lecturas rotas: [3, 5])")
    # a row from before ids existed, or with an id this version does not know: its English text
    assert localise({"evidence": "old text"}, "es") == "old text"
    assert localise({"evidence": "new", "evidence_id": "from_the_future", "evidence_args": {}}, "es") == "new"
    assert evidence_params("plain") == {"evidence": "plain"}
    with pytest.raises(KeyError, match="no evidence message"):
        Say("no_such_message")


@pytest.mark.slow
def test_both_languages_render_from_the_same_rows_and_the_spanish_report_has_no_english_evidence(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "--quick", "--scenarios", "load,security,leak,concurrency,capacity,static,faults",
        "--backends", "disk,cookie,encrypted-disk:aesgcm-stream", "--out", str(out), "--no-report",
        "--set", "security.hostile_keys=64", "--set", "concurrency_test.duration_s=0.3",
        "--set", "duration_s=0.6", "--set", "warmup_s=0", "--set", "sizes=64KiB"])
    assert result.exit_code == 0, result.output
    rows = [r for r in load_run(out).rows if r.params.get("evidence")]
    assert len({r.scenario for r in rows}) == 7
    assert [r.params["evidence"][:80] for r in rows if "evidence_id" not in r.params] == []
    en = html.unescape(render_run(out, lang="en", out_dir=tmp_path / "en").report_html.read_text())
    es = html.unescape(render_run(out, lang="es", out_dir=tmp_path / "es").report_html.read_text())
    shown = [r for r in rows if f'id="row-{r.row_id}"' in en or r.scenario != "load"]
    for row in shown:
        english, spanish = row.params["evidence"], localise(row.params, "es")
        assert english != spanish, english
        assert english[:120] in en, english
        assert english[:120] not in es, english
        assert spanish[:120] in es, spanish
