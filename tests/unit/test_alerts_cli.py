"""`hazwatch alerts list|show|ack|resolve`: tables with Chinese headings (English with
HAZWATCH_LANG=en), China time, --json, the token, and refusals as exit codes.

The commands talk to the API (hazwatch/commands/alerts.py says why); here the API is the real
app in process, its client handed to the command in place of the network one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.statedb import StateDB
from hazwatch.commands import alerts as alerts_cli
from hazwatch.devices.camera import snapshot_name
from hazwatch.parts import alerts as wiring_alerts

TOKEN = "cli-token"
T0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z = 08:00 China time
SNAPSHOT = snapshot_name("jy-0012", "cam-2", T0, 1, "occlusion")


@pytest.fixture()
def store(tmp_path: Path) -> AlertStore:
    store = AlertStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))
    store.raise_alert(
        AlertSignal(
            "tamper_occlusion", "jy-0012/cam-2", Severity.CRITICAL, "镜头被遮挡", "jy-0012",
            T0, {}, evidence=SNAPSHOT,
        )
    )  # fmt: skip
    store.raise_alert(
        AlertSignal(
            "air_exceedance", "jy-0013/aq-07/pm25", Severity.WARNING, "PM2.5 超标", "jy-0013",
            T0 + 60 * 10**9, {"hour_ns": T0},
        )
    )  # fmt: skip
    return store


@pytest.fixture()
def cli(store: AlertStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("HAZWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HAZWATCH_API_TOKEN", TOKEN)
    monkeypatch.delenv("HAZWATCH_LANG", raising=False)
    ctx = ApiContext(
        db=store.db,
        reader=None,  # type: ignore[arg-type]
        alerts=store,
        data_dir=tmp_path,
        api_token=TOKEN,
    )
    app = create_app(ctx, wiring_alerts.routers())
    seen: list[str] = []

    def client(api: str) -> TestClient:
        seen.append(api)
        return TestClient(app, base_url=api, headers=alerts_cli.auth_headers())

    monkeypatch.setattr(alerts_cli, "_client", client)
    root = typer.Typer()
    root.callback()(lambda: None)
    alerts_cli.register(root)
    root.seen = seen  # type: ignore[attr-defined]
    return root


def run(cli: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(cli, ["alerts", *args])


def the_id(store: AlertStore, rule: str) -> str:
    (alert,) = store.list(rule=rule)
    return alert.alert_id


def test_list_in_chinese_by_default_in_china_time(cli: typer.Typer) -> None:
    out = run(cli, "list")
    assert out.exit_code == 0, out.output
    for heading in ("编号", "状态", "级别", "规则", "站点", "对象", "开始时间", "次数", "说明"):
        assert heading in out.output
    assert "2026-11-24 08:01:00" in out.output and "2026-11-24 08:00:00" in out.output
    # critical is 紧急, as in the messages and on the screen (alerts/messages.py)
    assert "未处理" in out.output and "紧急" in out.output and "共 2 条" in out.output
    assert "严重" not in out.output
    assert "空气质量超标" in out.output and "镜头遮挡" in out.output  # the rules by name (and id)
    assert out.output.index("air_exceedance") < out.output.index("tamper_occlusion")
    assert cli.seen == ["http://127.0.0.1:8080"]  # type: ignore[attr-defined]


def test_list_in_english_with_hazwatch_lang(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAZWATCH_LANG", "en")
    out = run(cli, "list", "--severity", "critical")
    assert out.exit_code == 0, out.output
    assert "Severity" in out.output and "Opened" in out.output and "编号" not in out.output
    assert "tamper_occlusion" in out.output and "air_exceedance" not in out.output
    assert "of 1" in out.output


def test_list_json_is_the_api_page(cli: typer.Typer) -> None:
    out = run(cli, "list", "--json", "--site", "jy-0013", "--api", "http://hw.example:9000/")
    page = json.loads(out.output)
    assert page["total"] == 1 and page["alerts"][0]["rule"] == "air_exceedance"
    assert cli.seen == ["http://hw.example:9000"]  # type: ignore[attr-defined]


def test_ack_and_resolve_then_show_the_history(cli: typer.Typer, store: AlertStore) -> None:
    aid = the_id(store, "tamper_occlusion")
    acked = run(cli, "ack", aid, "--by", "张工", "--comment", "已派人查看")
    assert acked.exit_code == 0, acked.output
    assert "已确认" in acked.output and "处理记录" in acked.output and "已派人查看" in acked.output
    done = json.loads(run(cli, "resolve", aid, "--by", "李工", "-m", "镜头已清理", "--json").output)
    assert done["state"] == "resolved" and done["resolved_by"] == "李工"
    shown = run(cli, "show", aid)
    assert shown.exit_code == 0, shown.output
    # the state, then the history's changes, in the words of the messages and the screen
    for text in ("已解除", "新告警", "已确认", "已处理", "张工", "李工", "镜头已清理"):
        assert text in shown.output
    assert f"http://127.0.0.1:8080/api/snapshots/{SNAPSHOT}" in shown.output
    doc = json.loads(run(cli, "show", aid, "--json").output)
    assert [(h["change"], h["actor"]) for h in doc["history"]] == [
        ("opened", "tamper_occlusion"),
        ("acknowledged", "张工"),
        ("resolved", "李工"),
    ]


def test_refusals_are_one_line_and_an_exit_code(cli: typer.Typer, store: AlertStore) -> None:
    aid = the_id(store, "air_exceedance")
    assert run(cli, "resolve", aid, "--by", "张工").exit_code == 0
    again = run(cli, "ack", aid, "--by", "张工")
    assert again.exit_code == 3 and "resolved" in again.output
    missing = run(cli, "show", "0000000000000000")
    assert missing.exit_code == 1 and "no alert" in missing.output
    bad = run(cli, "list", "--state", "closed")
    assert bad.exit_code == 2 and "state" in bad.output


def test_a_wrong_token_is_refused(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch, store: AlertStore
) -> None:
    monkeypatch.setenv("HAZWATCH_API_TOKEN", "wrong")
    out = run(cli, "ack", the_id(store, "air_exceedance"), "--by", "张工")
    assert out.exit_code == 2 and "HAZWATCH_API_TOKEN" in out.output
    assert store.get(the_id(store, "air_exceedance")).state.value == "open"


def test_an_api_that_does_not_answer_is_one_line() -> None:
    from hazwatch.base.errors import ConfigError

    with pytest.raises(ConfigError, match="did not answer"):
        alerts_cli._call("http://127.0.0.1:9", "GET", "/api/alerts")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_cli_says_what_the_messages_and_the_screen_say(lang: str) -> None:
    """One source of words: a severity, a state or a change reads the same in a message, in
    `hazwatch alerts` and on the screen (its labels come from the same tables)."""
    from hazwatch.alerts.messages import CHANGE_WORDS, SEVERITY_WORDS, STATE_WORDS
    from hazwatch.alerts.model import AlertState, Change
    from hazwatch.api.routes.screen import labels

    words = alerts_cli.Words(lang)
    shown = labels()
    for severity in Severity:
        assert words.severity[severity.value] == SEVERITY_WORDS[lang][severity]
        assert shown["severities"][severity.value][lang] == SEVERITY_WORDS[lang][severity]
    for state in AlertState:
        assert words.state[state.value] == shown["states"][state.value][lang]
        assert words.state[state.value] == STATE_WORDS[lang][state.value]
    for change in Change:
        assert words.change[change.value] == CHANGE_WORDS[lang][change.value]
        assert shown["changes"][change.value][lang] == CHANGE_WORDS[lang][change.value]
    assert SEVERITY_WORDS["zh"][Severity.CRITICAL] == "紧急"


def test_the_screens_own_state_words_are_the_labels_ones() -> None:
    """The screen's pages word a state from i18n.js (`astate.*`): the same as STATE_WORDS."""
    import re

    from hazwatch.alerts.messages import STATE_WORDS
    from hazwatch.api.app import static_dir

    script = (Path(static_dir()) / "screen" / "i18n.js").read_text(encoding="utf-8")
    found = re.findall(r'"astate\.(\w+)": "([^"]+)"', script)
    assert found, "no astate.* words in i18n.js"
    zh, en = found[: len(found) // 2], found[len(found) // 2 :]
    assert dict(zh) == STATE_WORDS["zh"] and dict(en) == STATE_WORDS["en"]


def test_china_time() -> None:
    assert alerts_cli.china_time(T0) == "2026-11-24 08:00:00"
